"""`docker pause` / `unpause`: the container's processes frozen and thawed through its
runtime (the freezer cgroup), the PAUSED state recorded and announced, in dockerd's words.
"""

from __future__ import annotations

import contextlib
import signal as signals

from essaim.engine.container_events import ContainerEvents
from essaim.engine.index import ContainerIndex
from essaim.engine.stopping import parse_signal
from essaim.errors import Conflict, EssaimError, SystemError_
from essaim.model.container import PAUSED, RESTARTING, RUNNING, Container
from essaim.runtime.base import OCIRuntime, RuntimeError_
from essaim.runtime.registry import Runtimes


class Pauser:
    def __init__(
        self, *, index: ContainerIndex, events: ContainerEvents, runtimes: Runtimes
    ) -> None:
        self.index = index
        self.events = events
        self.runtimes = runtimes

    async def pause(self, ref: str) -> None:
        container = self.index.get(ref)
        cid = container.id
        # Under the container's lock: an exit being recorded does not cross a pause.
        async with self.index.lock(cid):
            status = container.state.status
            if status == PAUSED:
                raise Conflict(f"container {cid} is already paused")
            if status == RESTARTING:
                raise Conflict(
                    f"Container {cid} is restarting, wait until the container is running"
                )
            if status != RUNNING:
                raise Conflict(f"container {cid} is not running")
            try:
                await self.runtimes.get(container.runtime).pause(cid)
            except RuntimeError_ as exc:
                raise SystemError_(f"Cannot pause container {cid}: {exc.message}") from None
            container.state.status = PAUSED
            await self.index.save(container)
        self.events.publish(container, "pause")

    async def unpause(self, ref: str) -> None:
        container = self.index.get(ref)
        cid = container.id
        async with self.index.lock(cid):
            if container.state.status != PAUSED:
                raise Conflict(f"Container {cid} is not paused")
            try:
                await self.runtimes.get(container.runtime).resume(cid)
            except RuntimeError_ as exc:
                raise SystemError_(f"Cannot unpause container {cid}: {exc.message}") from None
            container.state.status = RUNNING
            await self.index.save(container)
        self.events.publish(container, "unpause")


def signal_thaws(container: Container, sig: int) -> bool:
    """Whether a kill with `sig` resumes a paused container, as dockerd decides: SIGKILL,
    the container's stop signal, or any signal when it has none of its own."""
    own = container.config.stop_signal
    return not own or sig == signals.SIGKILL or sig == parse_signal(own)


async def thaw_after_signal(
    container: Container, runtime: OCIRuntime, index: ContainerIndex
) -> None:
    """Resume a paused container just signalled: a frozen process acts on nothing, not
    even SIGKILL under cgroup v1, until it is thawed."""
    with contextlib.suppress(EssaimError):
        await runtime.resume(container.id)
    if container.state.status == PAUSED:
        container.state.status = RUNNING
        await index.save(container)
