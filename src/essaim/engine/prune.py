"""`docker container prune`: every stopped container the caller's filters select is
removed; the report lists them with the space their writable layers took.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from essaim.engine.containers import ContainerService
from essaim.errors import Conflict, EssaimError
from essaim.model.container import REMOVING, Container

log = logging.getLogger(__name__)


@dataclass
class PruneReport:
    deleted: list[str] = field(default_factory=list)
    space_reclaimed: int = 0


def tree_size(top: Path) -> int:
    """Bytes of the regular files under `top` (hard links counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for directory, _, files in os.walk(top):
        for name in files:
            try:
                st = os.lstat(os.path.join(directory, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


class ContainerPruner:
    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers
        self._running = False

    async def prune(self, select: Callable[[Container], bool]) -> PruneReport:
        if self._running:
            raise Conflict("a prune operation is already running")
        self._running = True
        try:
            report = await self._prune(select)
        finally:
            self._running = False
        self.containers.events.bus.publish(
            "container", "prune", "", {"reclaimed": str(report.space_reclaimed)}
        )
        return report

    async def _prune(self, select: Callable[[Container], bool]) -> PruneReport:
        report = PruneReport()
        loop = asyncio.get_running_loop()
        for container in self.containers.list():
            if container.state.running or container.state.status == REMOVING:
                continue
            if not select(container):
                continue
            # The writable layer, measured before it goes.
            upper = self.containers.files(container.id).bundle / "upper"
            size = await loop.run_in_executor(None, tree_size, upper)
            try:
                await self.containers.remove(container.id, force=False)
            except EssaimError as exc:
                # As dockerd: one container that cannot go does not stop the others.
                log.warning("failed to prune container %s: %s", container.id[:12], exc.message)
                continue
            report.deleted.append(container.id)
            report.space_reclaimed += size
        return report
