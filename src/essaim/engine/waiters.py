"""Waiting for containers: `docker wait`'s conditions (`not-running`, `next-exit`,
`removed`) and the futures a container's exit or removal answers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeAlias

from essaim.errors import InvalidParameter
from essaim.model.container import Container

WAIT_CONDITIONS = ("not-running", "next-exit", "removed")

# What a wait answers: the exit code and an error message ("" when none).
ExitStatus: TypeAlias = tuple[int, str]


def parse_wait_condition(condition: str) -> str:
    """The condition as the API takes it ("" is `not-running`), or Docker's 400."""
    if condition == "":
        return "not-running"
    if condition not in WAIT_CONDITIONS:
        raise InvalidParameter(f"invalid condition: {json.dumps(condition)}")  # Go's %q
    return condition


def answer(futures: Iterable[asyncio.Future[ExitStatus]], exit_code: int) -> None:
    for future in futures:
        if not future.done():
            future.set_result((exit_code, ""))


@dataclass
class _Waiting:
    next_exit: list[asyncio.Future[ExitStatus]] = field(default_factory=list)
    removed: list[asyncio.Future[ExitStatus]] = field(default_factory=list)


class ExitWaiters:
    """The waits registered per container, until its exit or its removal answers them."""

    def __init__(self) -> None:
        self._waiting: dict[str, _Waiting] = {}

    def _for(self, cid: str) -> _Waiting:
        return self._waiting.setdefault(cid, _Waiting())

    def wait(self, container: Container, condition: str) -> asyncio.Future[ExitStatus]:
        """Registers at once (before the client starts the container); resolves later.
        `condition` is one of WAIT_CONDITIONS."""
        loop = asyncio.get_running_loop()
        if condition == "removed":
            future: asyncio.Future[ExitStatus] = loop.create_future()
            self._for(container.id).removed.append(future)
            return future
        if condition == "not-running" and not container.state.running:
            future = loop.create_future()
            future.set_result((container.state.exit_code, ""))
            return future
        return self.next_exit(container.id)

    def next_exit(self, cid: str) -> asyncio.Future[ExitStatus]:
        future: asyncio.Future[ExitStatus] = asyncio.get_running_loop().create_future()
        self._for(cid).next_exit.append(future)
        return future

    def take_next_exit(self, cid: str) -> list[asyncio.Future[ExitStatus]]:
        """The waits the exit happening now answers; any registered from here on wait
        for the next run's."""
        waiting = self._for(cid)
        taken, waiting.next_exit = waiting.next_exit, []
        return taken

    def removed(self, cid: str, exit_code: int) -> None:
        """The container is gone: every wait on it ends with its last exit code."""
        waiting = self._waiting.pop(cid, None)
        if waiting:
            answer([*waiting.next_exit, *waiting.removed], exit_code)
