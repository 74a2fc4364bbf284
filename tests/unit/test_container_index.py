"""The container index: references resolved as dockerd does (id, name with or without its
slash, unique id prefix), names given to one container only, records kept in the store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from essaim.engine.index import ContainerIndex
from essaim.errors import Conflict, InvalidParameter, NotFound
from essaim.model.container import Container, ContainerConfig, HostConfig
from essaim.store import SqliteStore

WEB = "ab12" + "0" * 60
DB = "ab34" + "1" * 60


def container(cid: str, name: str) -> Container:
    return Container(
        id=cid,
        name=name,
        created="2026-01-01T00:00:00.000000000Z",
        image_id="sha256:" + "0" * 64,
        config=ContainerConfig(image="busybox"),
        host_config=HostConfig(),
        path="true",
        args=[],
    )


def with_index(path: Path, body: Callable[[ContainerIndex], Awaitable[None]]) -> None:
    async def main() -> None:
        store = SqliteStore(path / "state.db")
        try:
            index = ContainerIndex(store)
            await index.load()
            await asyncio.wait_for(body(index), 10)
        finally:
            await store.close()

    asyncio.run(main())


async def add(index: ContainerIndex, cid: str, name: str) -> Container:
    c = container(cid, index.reserve_name(name, cid))
    await index.save(c)
    return c


def test_references_resolve_as_dockerd_does(tmp_path: Path) -> None:
    async def body(index: ContainerIndex) -> None:
        web, db = await add(index, WEB, "web"), await add(index, DB, "db")
        assert index.get(WEB) is web
        assert index.get("web") is index.get("/web") is web
        assert index.get("ab3") is db
        with pytest.raises(InvalidParameter, match="multiple IDs found with provided prefix: ab"):
            index.get("ab")
        with pytest.raises(NotFound, match="No such container: nope"):
            index.get("nope")
        with pytest.raises(NotFound, match=r"^No such container: $"):
            index.get("")

    with_index(tmp_path, body)


def test_a_name_in_use_is_dockers_conflict(tmp_path: Path) -> None:
    async def body(index: ContainerIndex) -> None:
        await add(index, WEB, "web")
        with pytest.raises(Conflict, match=f'"/web" is already in use by container "{WEB}"'):
            index.check_name("/web")
        with pytest.raises(InvalidParameter):
            index.check_name("bad name")
        assert index.check_name("/db") == "db"

    with_index(tmp_path, body)


def test_two_creates_asking_for_one_name_cannot_both_have_it(tmp_path: Path) -> None:
    async def body(index: ContainerIndex) -> None:
        # Both checked before either reserved: create awaits the image in between.
        assert index.check_name("web") == index.check_name("web") == "web"
        assert index.reserve_name("web", WEB) == "web"
        with pytest.raises(Conflict, match=f'already in use by container "{WEB}"'):
            index.reserve_name("web", DB)
        assert index.reserve_name(None, DB) not in ("", "web")

    with_index(tmp_path, body)


def test_forgetting_a_container_frees_its_name(tmp_path: Path) -> None:
    async def body(index: ContainerIndex) -> None:
        web = await add(index, WEB, "web")
        index.forget(web)
        await index.delete_record(WEB)
        assert WEB not in index
        assert index.check_name("web") == "web"

    with_index(tmp_path, body)


def test_records_are_found_again_after_a_restart(tmp_path: Path) -> None:
    async def first(index: ContainerIndex) -> None:
        await add(index, WEB, "web")

    async def second(index: ContainerIndex) -> None:
        assert index.get("web").id == WEB
        assert [c.id for c in index.all()] == [WEB]

    with_index(tmp_path, first)
    with_index(tmp_path, second)
