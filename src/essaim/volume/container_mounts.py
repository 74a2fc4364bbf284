"""A container's volumes over its life: made and referenced at create (undone if create
fails), seeded from the image, mounted at each start, released (anonymous ones removed
on request) at removal, and taken up again after a daemon restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from essaim.errors import Conflict, NotFound, SystemError_
from essaim.model.container import Container
from essaim.model.mount import BIND, VOLUME, MountPoint
from essaim.volume.copy_up import copy_if_empty, resolve_in_root
from essaim.volume.plan import plan_mounts
from essaim.volume.service import VolumeService


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


class ContainerMounts:
    def __init__(self, volumes: VolumeService) -> None:
        self.volumes = volumes

    def adopt(self, containers: list[Container]) -> None:
        """At start-up: every container references its volumes again; running ones
        still hold their mounts."""
        for container in containers:
            names = _volume_names(container)
            for name in names:
                self.volumes.reference(name, container.id)
            if container.state.running:
                self.volumes.adopt_mounted(container.id, names)

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
        for point in container.mount_points:
            if point.type != VOLUME or not point.copy_data:
                continue
            source = await loop.run_in_executor(None, resolve_in_root, rootfs, point.destination)
            if source is None:
                continue
            await self.volumes.mount(holder, [point.name])
            try:
                await loop.run_in_executor(None, copy_if_empty, source, Path(point.source))
            finally:
                await self.volumes.unmount(holder)

    async def attach(self, container: Container) -> None:
        """Before each start: `-v` bind sources made, volumes with options mounted, and
        a volume `mount` event for each, with dockerd's attributes."""
        loop = asyncio.get_running_loop()
        for point in container.mount_points:
            if point.type == BIND and point.make_source:
                await loop.run_in_executor(None, _make_source, point.source)
        await self.volumes.mount(container.id, _volume_names(container))
        for point in container.mount_points:
            if point.type == VOLUME:
                self.volumes.events.publish("volume", "mount", point.name, {
                    "container": container.id, "destination": point.destination,
                    "driver": point.driver, "propagation": point.propagation,
                    "read/write": "true" if point.rw else "false",
                })  # fmt: skip

    async def detach(self, cid: str) -> None:
        """After a run (or a failed start): its volume mounts dropped, each with a volume
        `unmount` event."""
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
