"""Removing a container: marked REMOVING in its record first, so that a removal a crash
cuts short is finished at the next start; then its files, layers and record go together,
and its volumes are released (its anonymous ones removed with `rm -v` or `--rm`).
"""

from __future__ import annotations

import asyncio

from essaim.engine.container_events import ContainerEvents
from essaim.engine.index import ContainerIndex
from essaim.engine.storage import ContainerStorage
from essaim.engine.waiters import ExitWaiters
from essaim.model.container import REMOVING, Container
from essaim.volume.container_mounts import ContainerMounts


class Removal:
    def __init__(
        self,
        *,
        index: ContainerIndex,
        storage: ContainerStorage,
        events: ContainerEvents,
        waiters: ExitWaiters,
        mounts: ContainerMounts,
    ) -> None:
        self.mounts = mounts
        self.index = index
        self.storage = storage
        self.events = events
        self.waiters = waiters

    async def remove(self, container: Container, *, volumes: bool = False) -> None:
        """Remove a container that is not running, its lock held; `volumes` removes
        its anonymous volumes too (`rm -v`)."""
        container.state.status = REMOVING
        await self.index.save(container)
        await self.finish(container, volumes=volumes)

    async def finish(self, container: Container, *, volumes: bool = False) -> None:
        """Remove a container whose record already says REMOVING. An `--rm` container
        takes its anonymous volumes along, as under dockerd."""
        # The record and the files go together; a crash in between leaves files without
        # a record, which start-up collects (`ContainerStorage.load`).
        await asyncio.gather(self.storage.remove(container), self.index.delete_record(container.id))
        self.index.forget(container)
        await self.mounts.release(
            container, remove_anonymous=volumes or container.host_config.auto_remove
        )
        self.events.publish(container, "destroy")
        self.waiters.removed(container.id, container.state.exit_code)
