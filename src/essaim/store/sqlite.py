"""SQLite backend of the store, in WAL mode, for a single host.

One dedicated thread owns the connection, so every call is serialised off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from essaim.store.base import Change

R = TypeVar("R")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind  TEXT NOT NULL,
    key   TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
"""


class _SqliteTransaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.changes: list[Change] = []

    def get(self, kind: str, key: str) -> bytes | None:
        row = self._db.execute(
            "SELECT value FROM objects WHERE kind = ? AND key = ?", (kind, key)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def list(self, kind: str) -> list[tuple[str, bytes]]:
        rows = self._db.execute(
            "SELECT key, value FROM objects WHERE kind = ? ORDER BY key", (kind,)
        ).fetchall()
        return [(str(k), bytes(v)) for k, v in rows]

    def put(self, kind: str, key: str, value: bytes) -> None:
        self._db.execute(
            "INSERT INTO objects (kind, key, value) VALUES (?, ?, ?) "
            "ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value",
            (kind, key, value),
        )
        self.changes.append(Change(kind, key, value))

    def delete(self, kind: str, key: str) -> bool:
        cur = self._db.execute("DELETE FROM objects WHERE kind = ? AND key = ?", (kind, key))
        if cur.rowcount:
            self.changes.append(Change(kind, key, None))
        return cur.rowcount > 0


class _Watch:
    """One watcher's queue, registered when `watch` returns so that every change
    committed after the call reaches it, even before its first read."""

    def __init__(self, store: SqliteStore, kind: str | None) -> None:
        self._store = store
        self.kind = kind
        # None: closed, wakes a reader waiting on a quiet store.
        self._queue: asyncio.Queue[Change | None] = asyncio.Queue()
        self._closed = False

    def deliver(self, change: Change) -> None:
        if self.kind is None or self.kind == change.kind:
            self._queue.put_nowait(change)

    def __aiter__(self) -> _Watch:
        return self

    async def __anext__(self) -> Change:
        change = None if self._closed else await self._queue.get()
        if change is None:
            self._closed = True
            raise StopAsyncIteration
        return change

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._store._watchers.discard(self)
            self._queue.put_nowait(None)


class SqliteStore:
    """The `Store` for one host: `state.db` in the data root."""

    def __init__(self, path: Path) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="essaim-store")
        self._db = self._executor.submit(self._open, path).result()
        # Weak: a watch its reader dropped without closing stops collecting changes.
        self._watchers: weakref.WeakSet[_Watch] = weakref.WeakSet()

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        # FULL: a change is on disk before it is acknowledged (principle 5).
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=5000")
        db.executescript(_SCHEMA)
        return db

    async def _run(self, body: Callable[[_SqliteTransaction], R]) -> R:
        def in_thread() -> tuple[R, list[Change]]:
            txn = _SqliteTransaction(self._db)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = body(txn)
                self._db.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (disk full, I/O error) leaves the transaction open:
                # roll it back too, or every later BEGIN fails.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            return result, txn.changes

        loop = asyncio.get_running_loop()
        future = self._executor.submit(in_thread)

        def committed(done: Future[tuple[R, list[Change]]]) -> None:
            if not done.cancelled() and done.exception() is None:
                with contextlib.suppress(RuntimeError):  # the loop is gone: nobody watches
                    loop.call_soon_threadsafe(self._deliver, done.result()[1])

        # Registered before the caller awaits the future: the watchers see a change
        # before its writer resumes, and even if the writer was cancelled meanwhile.
        future.add_done_callback(committed)
        result, _ = await asyncio.wrap_future(future)
        return result

    def _deliver(self, changes: list[Change]) -> None:
        watchers = list(self._watchers)
        for change in changes:
            for watcher in watchers:
                watcher.deliver(change)

    async def get(self, kind: str, key: str) -> bytes | None:
        return await self._run(lambda t: t.get(kind, key))

    async def list(self, kind: str) -> list[tuple[str, bytes]]:
        return await self._run(lambda t: t.list(kind))

    async def put(self, kind: str, key: str, value: bytes) -> None:
        await self._run(lambda t: t.put(kind, key, value))

    async def delete(self, kind: str, key: str) -> bool:
        return await self._run(lambda t: t.delete(kind, key))

    async def transact(self, body: Callable[[_SqliteTransaction], R]) -> R:
        return await self._run(body)

    def watch(self, kind: str | None = None) -> AsyncIterator[Change]:
        """Changes (of `kind`, or all) committed after this call, in commit order. Close
        it with `aclose()`."""
        watcher = _Watch(self, kind)
        self._watchers.add(watcher)
        return watcher

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._db.close)
        self._executor.shutdown(wait=True)
