"""`docker wait` conditions and the futures a container's exit or removal answers: a wait
registered before a start sees that run's exit, one registered during an exit the next."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from essaim.engine.waiters import ExitWaiters, answer, parse_wait_condition
from essaim.errors import InvalidParameter
from essaim.model.container import Container, ContainerConfig, ContainerState, HostConfig

CID = "c" * 64


def container(status: str, exit_code: int = 0) -> Container:
    return Container(
        id=CID,
        name="job",
        created="2026-01-01T00:00:00.000000000Z",
        image_id="sha256:" + "0" * 64,
        config=ContainerConfig(image="busybox"),
        host_config=HostConfig(),
        path="true",
        args=[],
        state=ContainerState(status=status, exit_code=exit_code),
    )


def run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), 5))


def test_conditions_as_the_api_takes_them() -> None:
    assert parse_wait_condition("") == "not-running"
    for condition in ("not-running", "next-exit", "removed"):
        assert parse_wait_condition(condition) == condition
    with pytest.raises(InvalidParameter, match='invalid condition: "stopped"'):
        parse_wait_condition("stopped")


def test_not_running_on_a_stopped_container_answers_at_once() -> None:
    async def body() -> None:
        future = ExitWaiters().wait(container("exited", exit_code=3), "not-running")
        assert future.done() and future.result() == (3, "")

    run(body)


def test_not_running_and_next_exit_on_a_running_container_wait_for_its_exit() -> None:
    async def body() -> None:
        waiters = ExitWaiters()
        running = container("running")
        futures = [waiters.wait(running, "not-running"), waiters.wait(running, "next-exit")]
        assert not any(f.done() for f in futures)
        answer(waiters.take_next_exit(CID), 137)
        assert [f.result() for f in futures] == [(137, ""), (137, "")]

    run(body)


def test_a_wait_registered_during_an_exit_is_for_the_next_run() -> None:
    async def body() -> None:
        waiters = ExitWaiters()
        first = waiters.next_exit(CID)
        answered = waiters.take_next_exit(CID)
        later = waiters.next_exit(CID)
        answer(answered, 1)
        assert first.result() == (1, "")
        assert not later.done()
        answer(waiters.take_next_exit(CID), 2)
        assert later.result() == (2, "")

    run(body)


def test_removal_answers_every_wait_with_the_last_exit_code() -> None:
    async def body() -> None:
        waiters = ExitWaiters()
        stopped = container("exited", exit_code=5)
        removed = waiters.wait(stopped, "removed")
        next_exit = waiters.wait(stopped, "next-exit")
        answer(waiters.take_next_exit(CID), 9)  # an exit answers only the next-exit wait
        assert not removed.done()
        waiters.removed(CID, 9)
        assert removed.result() == (9, "")
        assert next_exit.result() == (9, "")

    run(body)


def test_a_cancelled_wait_is_skipped() -> None:
    async def body() -> None:
        waiters = ExitWaiters()
        gone, kept = waiters.next_exit(CID), waiters.next_exit(CID)
        gone.cancel()
        answer(waiters.take_next_exit(CID), 0)
        assert gone.cancelled() and kept.result() == (0, "")

    run(body)
