"""A container's volumes over its life: made and referenced at create (undone if create
fails), seeded from the image, mounted at each start, released (anonymous ones removed
on request) at removal, and taken up again after a daemon restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from essaim.errors import Conflict, EssaimError, NotFound, SystemError_
from essaim.model.container import Container
from essaim.model.mount import BIND, VOLUME, MountPoint
from essaim.volume.copy_up import copy_if_empty, resolve_in_root
from essaim.volume.plan import plan_mounts
from essaim.volume.service import VolumeService
from essaim.volume.subpath import mount_subpath, populate_error, unmount_all

log = logging.getLogger(__name__)


def _make_source(path: str) -> None:
    """A `-v` bind's missing source becomes a directory, as under dockerd."""
    try:
        os.makedirs(path, mode=0o755, exist_ok=True)
    except FileExistsError:
        pass  # a file: bound as it is
    except OSError as exc:
        raise SystemError_(f"error while creating mount source path '{path}': {exc}") from None


def _volume_names(container: Container) -> list[str]:
    return [p.name for p in container.mount_points if p.type == VOLUME]


def _holders(directory: Path) -> list[str]:
    try:
        return [entry.name for entry in os.scandir(directory)]
    except FileNotFoundError:
        return []


class ContainerMounts:
    def __init__(self, volumes: VolumeService, subpaths: Path) -> None:
        self.volumes = volumes
        # Volume subpaths mounted for a holder (a run, a seeding) as <subpaths>/<holder>/<n>.
        self.subpaths = subpaths
        # Each run's subpath mounts by destination: what runc mounts them from.
        self._sources: dict[str, dict[str, str]] = {}

    def adopt(self, containers: list[Container]) -> None:
        """At start-up: every container references its volumes again; running ones
        still hold their mounts. Subpath mounts left by anything else (a crash during a
        start or a seeding) go; there are none at all but after a crash."""
        for container in containers:
            names = _volume_names(container)
            for name in names:
                self.volumes.reference(name, container.id)
            if container.state.running:
                self.volumes.adopt_mounted(container.id, names)
        running = {c.id for c in containers if c.state.running}
        for holder in _holders(self.subpaths):
            if holder not in running:
                try:
                    unmount_all(self.subpaths / holder)
                except OSError:
                    log.exception("subpath mounts of %s: unmount failed", holder[:12])

    def sources(self, cid: str) -> dict[str, str]:
        """The container's subpath mounts of this run, by destination."""
        return dict(self._sources.get(cid, {}))

    async def _mount_subpath(self, holder: str, index: int, point: MountPoint) -> str:
        target = self.subpaths / holder / str(index)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, mount_subpath, point.source, point.subpath, target)
        return str(target)

    async def create(
        self, container: Container, image_volumes: list[str], lookup: Callable[[str], Container]
    ) -> list[str]:
        """Resolve the container's mounts into `container.mount_points` (and merge the
        image's volumes into its Config.Volumes), making the volumes they need; returns
        the names of those it made. On failure nothing made here is left."""
        config, host = container.config, container.host_config
        config.volumes = sorted({*config.volumes, *image_volumes})
        planned = plan_mounts(config.volumes, host, lookup)
        made: list[str] = []
        try:
            for item in planned:
                point = item.point
                if point.type != VOLUME:
                    continue
                if item.volume is None:
                    self.volumes.get(point.name)  # taken over: it must still exist
                    self.volumes.reference(point.name, container.id)
                    continue
                request = item.volume
                volume, new = await self.volumes.create(
                    request.name, request.driver, request.options, request.labels,
                    ref=container.id,
                )  # fmt: skip
                if new:
                    made.append(volume.name)
                point.name, point.driver = volume.name, volume.driver
                point.source = self.volumes.mountpoint(volume.name)
        except BaseException:
            await self.release(container, [p.point for p in planned], remove=made)
            raise
        container.mount_points = [item.point for item in planned]
        return made

    def needs_seeding(self, container: Container) -> bool:
        return any(p.type == VOLUME and p.copy_data for p in container.mount_points)

    async def seed(self, container: Container, rootfs: Path) -> None:
        """Copy the image's content at each volume's path into the volume while empty
        (not for `nocopy` ones, nor those taken with `--volumes-from`)."""
        loop = asyncio.get_running_loop()
        holder = f"seed-{container.id}"
        for index, point in enumerate(container.mount_points):
            if point.type != VOLUME or not point.copy_data:
                continue
            source = await loop.run_in_executor(None, resolve_in_root, rootfs, point.destination)
            if source is None:
                continue
            await self.volumes.mount(holder, [point.name])
            try:
                target = Path(point.source)
                if point.subpath:
                    # As dockerd: the subpath is seeded, and one that is not there is not.
                    try:
                        target = Path(await self._mount_subpath(holder, index, point))
                    except NotFound:
                        continue
                    except EssaimError as exc:
                        raise populate_error(exc) from None
                if await loop.run_in_executor(None, target.is_dir):
                    await loop.run_in_executor(None, copy_if_empty, source, target)
            finally:
                await loop.run_in_executor(None, unmount_all, self.subpaths / holder)
                await self.volumes.unmount(holder)

    async def attach(self, container: Container) -> None:
        """Before each start: `-v` bind sources made, volumes with options mounted, their
        subpaths resolved and mounted (`sources`), and a volume `mount` event for each,
        with dockerd's attributes."""
        loop = asyncio.get_running_loop()
        cid = container.id
        for point in container.mount_points:
            if point.type == BIND and point.make_source:
                await loop.run_in_executor(None, _make_source, point.source)
        await self.volumes.mount(cid, _volume_names(container))
        await self._unmount_subpaths(cid)  # what a run cut short by a crash left
        sources = self._sources[cid] = {}
        try:
            for index, point in enumerate(container.mount_points):
                if point.type != VOLUME:
                    continue
                if point.subpath:
                    sources[point.destination] = await self._mount_subpath(cid, index, point)
                self.volumes.events.publish("volume", "mount", point.name, {
                    "container": cid, "destination": point.destination,
                    "driver": point.driver, "propagation": point.propagation,
                    "read/write": "true" if point.rw else "false",
                })  # fmt: skip
        except BaseException:
            await self._unmount_subpaths(cid)
            raise

    async def _unmount_subpaths(self, cid: str) -> None:
        self._sources.pop(cid, None)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, unmount_all, self.subpaths / cid)
        except OSError:
            log.exception("container %s: unmounting its volume subpaths failed", cid[:12])

    async def detach(self, cid: str) -> None:
        """After a run (or a failed start): its subpath mounts undone, its volume mounts
        dropped, each with a volume `unmount` event."""
        await self._unmount_subpaths(cid)
        for name in await self.volumes.unmount(cid):
            with contextlib.suppress(NotFound):
                driver = self.volumes.get(name).driver
                self.volumes.events.publish(
                    "volume", "unmount", name, {"container": cid, "driver": driver}
                )

    async def release(
        self, container: Container, points: list[MountPoint] | None = None,
        *, remove: list[str] | None = None, remove_anonymous: bool = False,
    ) -> None:  # fmt: skip
        """At removal: the container no longer uses its volumes; its anonymous ones
        go too when asked (`rm -v`, `--rm`) and nobody else uses them."""
        points = container.mount_points if points is None else points
        for point in points:
            if point.type == VOLUME and point.name:
                self.volumes.release(point.name, container.id)
        doomed = list(remove or [])
        if remove_anonymous:
            doomed += [p.name for p in points if p.type == VOLUME and p.anonymous and p.name]
        for name in doomed:
            # In use by another container is not an error here, as under dockerd.
            with contextlib.suppress(Conflict, NotFound):
                await self.volumes.remove(name)
