"""The SQLite store: put/get/list/delete, transactions that commit all or nothing,
durability across reopening, and watches that see every change after they start."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import msgspec
import pytest

from essaim.store import Change, Collection, SqliteStore, Store, Transaction

T = TypeVar("T")


def with_store(path: Path, body: Callable[[SqliteStore], Awaitable[T]]) -> T:
    async def main() -> T:
        store = SqliteStore(path)
        try:
            return await asyncio.wait_for(body(store), 10)
        finally:
            await store.close()

    return asyncio.run(main())


async def next_change(watch: AsyncIterator[Change], within: float = 1.0) -> Change:
    return await asyncio.wait_for(anext(watch), within)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


def test_the_sqlite_store_is_a_store(db: Path) -> None:
    async def body(store: SqliteStore) -> None:
        typed: Store = store  # checked by mypy: SqliteStore implements the protocol
        assert await typed.get("kind", "absent") is None

    with_store(db, body)


def test_put_get_list_delete(db: Path) -> None:
    async def body(store: SqliteStore) -> None:
        await store.put("containers", "b", b"2")
        await store.put("containers", "a", b"1")
        await store.put("images", "a", b"other kind")
        assert await store.get("containers", "a") == b"1"
        assert await store.list("containers") == [("a", b"1"), ("b", b"2")]
        await store.put("containers", "a", b"updated")
        assert await store.get("containers", "a") == b"updated"
        assert await store.delete("containers", "a") is True
        assert await store.delete("containers", "a") is False
        assert await store.get("containers", "a") is None
        assert await store.list("containers") == [("b", b"2")]
        assert await store.list("images") == [("a", b"other kind")]
        assert await store.list("volumes") == []

    with_store(db, body)


def test_values_are_kept_byte_for_byte(db: Path) -> None:
    blob = bytes(range(256)) * 4

    async def body(store: SqliteStore) -> bytes | None:
        await store.put("k", "\u00e9t\u00e9 \U0001f40d", blob)
        return await store.get("k", "\u00e9t\u00e9 \U0001f40d")

    assert with_store(db, body) == blob


def test_committed_writes_survive_reopening(db: Path) -> None:
    async def write(store: SqliteStore) -> None:
        await store.put("k", "x", b"1")

    async def read(store: SqliteStore) -> bytes | None:
        return await store.get("k", "x")

    with_store(db, write)
    assert with_store(db, read) == b"1"
    # WAL mode, as the architecture asks.
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_transact_commits_everything_and_returns_the_result(db: Path) -> None:
    async def body(store: SqliteStore) -> tuple[int, list[tuple[str, bytes]]]:
        await store.put("k", "old", b"0")

        def move(txn: Transaction) -> int:
            value = txn.get("k", "old")
            assert value is not None
            txn.delete("k", "old")
            txn.put("k", "new", value + b"!")
            return len(txn.list("k"))

        return await store.transact(move), await store.list("k")

    assert with_store(db, body) == (1, [("new", b"0!")])


def test_an_exception_inside_transact_leaves_nothing(db: Path) -> None:
    class Boom(Exception):
        pass

    async def body(store: SqliteStore) -> list[tuple[str, bytes]]:
        await store.put("k", "keep", b"1")

        def half_done(txn: Transaction) -> None:
            txn.put("k", "new", b"2")
            txn.delete("k", "keep")
            raise Boom

        with pytest.raises(Boom):
            await store.transact(half_done)
        # The store is usable afterwards: no transaction was left open.
        await store.put("k", "after", b"3")
        return await store.list("k")

    assert with_store(db, body) == [("after", b"3"), ("keep", b"1")]


def test_a_failed_commit_is_rolled_back_and_the_store_stays_usable(db: Path) -> None:
    async def body(store: SqliteStore) -> list[tuple[str, bytes]]:
        def deny_commits(action: int, arg1: str | None, *_: object) -> int:
            commit = action == sqlite3.SQLITE_TRANSACTION and arg1 == "COMMIT"
            return sqlite3.SQLITE_DENY if commit else sqlite3.SQLITE_OK

        def authorize(deny: bool) -> None:
            # On the store's own thread, where its connection lives.
            connection = store._db
            store._executor.submit(connection.set_authorizer, deny_commits if deny else None)

        authorize(True)
        with pytest.raises(sqlite3.DatabaseError):
            await store.put("k", "lost", b"x")
        authorize(False)
        await store.put("k", "after", b"y")
        return await store.list("k")

    assert with_store(db, body) == [("after", b"y")]


def test_watch_sees_changes_made_right_after_the_call(db: Path) -> None:
    async def body(store: SqliteStore) -> list[Change]:
        watch = store.watch()
        # Committed before the watcher's first read: still delivered.
        await store.put("k", "a", b"1")
        await store.delete("k", "a")
        try:
            return [await next_change(watch), await next_change(watch)]
        finally:
            await watch.aclose()  # type: ignore[attr-defined]

    assert with_store(db, body) == [Change("k", "a", b"1"), Change("k", "a", None)]


def test_watch_by_kind_and_in_commit_order(db: Path) -> None:
    async def body(store: SqliteStore) -> list[str]:
        watch = store.watch("containers")

        def several(txn: Transaction) -> None:
            txn.put("images", "i", b"")
            txn.put("containers", "c1", b"")
            txn.put("containers", "c2", b"")

        await store.transact(several)
        await asyncio.gather(*(store.put("containers", f"p{i}", b"") for i in range(5)))
        keys = [(await next_change(watch)).key for _ in range(7)]
        with pytest.raises(TimeoutError):
            await next_change(watch, within=0.05)
        await watch.aclose()  # type: ignore[attr-defined]
        return keys

    keys = with_store(db, body)
    assert keys[:2] == ["c1", "c2"]
    assert sorted(keys[2:]) == [f"p{i}" for i in range(5)]


def test_watch_sees_nothing_of_reads_failed_transactions_or_missing_deletes(db: Path) -> None:
    async def body(store: SqliteStore) -> None:
        watch = store.watch()
        await store.get("k", "a")
        await store.list("k")
        assert await store.delete("k", "absent") is False

        def fails(txn: Transaction) -> None:
            txn.put("k", "a", b"1")
            raise RuntimeError

        with pytest.raises(RuntimeError):
            await store.transact(fails)
        with pytest.raises(TimeoutError):
            await next_change(watch, within=0.05)
        await watch.aclose()  # type: ignore[attr-defined]

    with_store(db, body)


def test_a_cancelled_writer_still_notifies_watchers(db: Path) -> None:
    started, release = threading.Event(), threading.Event()

    def slow(txn: Transaction) -> None:
        txn.put("k", "a", b"1")
        started.set()
        release.wait(5)

    async def body(store: SqliteStore) -> Change:
        watch = store.watch()
        writer = asyncio.create_task(store.transact(slow))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
        writer.cancel()  # the transaction is already running: it will commit
        release.set()
        change = await next_change(watch)
        await watch.aclose()  # type: ignore[attr-defined]
        return change

    assert with_store(db, body) == Change("k", "a", b"1")


def test_closing_a_watch_ends_it(db: Path) -> None:
    async def body(store: SqliteStore) -> list[Change]:
        watch = store.watch()
        received: list[Change] = []

        async def read() -> None:
            async for change in watch:
                received.append(change)

        reader = asyncio.create_task(read())
        await asyncio.sleep(0)
        await watch.aclose()  # type: ignore[attr-defined]
        await asyncio.wait_for(reader, 1)
        await store.put("k", "a", b"1")
        return received

    assert with_store(db, body) == []


class Thing(msgspec.Struct):
    name: str
    count: int = 0


def test_collection_round_trips_structs(db: Path) -> None:
    async def body(store: SqliteStore) -> tuple[Thing | None, list[Thing], bool]:
        things = Collection(store, "things", Thing)
        await things.put("a", Thing("a", 1))
        await things.put("b", Thing("b"))
        return await things.get("a"), await things.list(), await things.delete("b")

    got, listed, deleted = with_store(db, body)
    assert got == Thing("a", 1)
    assert listed == [Thing("a", 1), Thing("b")]
    assert deleted is True


def test_collection_refuses_a_stored_value_of_the_wrong_shape(db: Path) -> None:
    async def body(store: SqliteStore) -> None:
        await store.put("things", "bad", b'{"name": 3}')
        with pytest.raises(msgspec.ValidationError):
            await Collection(store, "things", Thing).get("bad")

    with_store(db, body)
