"""SQLite backend of the store, in WAL mode, for a single host.

One dedicated thread owns the connection, so every call is serialised off the event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
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


class SqliteStore:
    """The `Store` for one host: `state.db` in the data root."""

    def __init__(self, path: Path) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="essaim-store")
        self._db = self._executor.submit(self._open, path).result()
        self._watchers: list[tuple[str | None, asyncio.Queue[Change]]] = []

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
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return result, txn.changes

        loop = asyncio.get_running_loop()
        result, changes = await loop.run_in_executor(self._executor, in_thread)
        for change in changes:
            for kind, queue in self._watchers:
                if kind is None or kind == change.kind:
                    queue.put_nowait(change)
        return result

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

    async def watch(self, kind: str | None = None) -> AsyncIterator[Change]:
        queue: asyncio.Queue[Change] = asyncio.Queue()
        entry = (kind, queue)
        self._watchers.append(entry)
        try:
            while True:
                yield await queue.get()
        finally:
            self._watchers.remove(entry)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._db.close)
        self._executor.shutdown(wait=True)
