"""What a container holds besides its record: its directory, its image layers (held with
the image service so that no `rmi` takes them), its rootfs mount and its runtime state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
from pathlib import Path

from essaim.engine.hostfiles import write_host_files
from essaim.engine.index import ContainerIndex
from essaim.errors import NotFound
from essaim.image.service import ImageService
from essaim.model.container import Container
from essaim.runtime.base import ContainerFiles, OCIRuntime
from essaim.runtime.registry import Runtimes
from essaim.volume.container_mounts import ContainerMounts

log = logging.getLogger(__name__)

_CONTAINER_ID = re.compile(r"[0-9a-f]{64}")


class ContainerStorage:
    def __init__(
        self,
        root: Path,
        *,
        images: ImageService,
        runtimes: Runtimes,
        index: ContainerIndex,
        mounts: ContainerMounts,
    ) -> None:
        self.root = root
        self.mounts = mounts
        self.root.mkdir(parents=True, exist_ok=True)
        self.images = images
        self.runtimes = runtimes
        self.index = index
        # Containers whose last run's runtime state and rootfs mount are already freed.
        self._released: set[str] = set()
        # Runtime state of removed containers being deleted.
        self._runtime_deletes: set[asyncio.Task[None]] = set()

    def files(self, cid: str) -> ContainerFiles:
        return ContainerFiles(self.root / cid)

    def hold_new_layers(self, cid: str, chain_ids: list[str], layer_digests: list[str]) -> None:
        """A new container's layers, as `rootfs_layers` gave them at create."""
        self.images.hold_layers(cid, chain_ids, layer_digests)

    async def make_dir(
        self, cid: str, hostname: str, domainname: str, *, host_network: bool
    ) -> None:
        await asyncio.get_running_loop().run_in_executor(
            None, _make_dir, self.root / cid, hostname, domainname, host_network
        )

    async def undo_create(self, cid: str) -> None:
        shutil.rmtree(self.root / cid, ignore_errors=True)
        with contextlib.suppress(Exception):
            await self.images.release_layers(cid)

    def new_run(self, cid: str) -> None:
        """A run starts: it holds a rootfs mount and runtime state until `release_run`."""
        self._released.discard(cid)

    async def mount_rootfs(self, container: Container) -> Path:
        # The recorded layers, not the image: `rmi -f` may have taken it.
        chain_ids, layer_digests = await self.hold_layers(container)
        rootfs = await self.images.mount_layers(chain_ids, layer_digests, self.root / container.id)
        # Its volumes too (bind sources made, option filesystems mounted); a failure
        # here is undone with the rootfs by `unmount_rootfs`.
        await self.mounts.attach(container)
        return rootfs

    async def seed_volumes(self, container: Container) -> None:
        """At create: copy the image's content into the container's empty volumes, from
        its rootfs mounted for the while."""
        if not self.mounts.needs_seeding(container):
            return
        chain_ids, layer_digests = await self.hold_layers(container)
        container_dir = self.root / container.id
        rootfs = await self.images.mount_layers(chain_ids, layer_digests, container_dir)
        try:
            await self.mounts.seed(container, rootfs)
        finally:
            await self.images.unmount_rootfs(container_dir)

    async def release_run(self, container: Container) -> None:
        """Free what a run held: the runtime's state and cgroup, the rootfs mount; both
        at once, since they are independent once the process is gone. Done once per run."""
        cid = container.id
        if cid in self._released:
            return
        runtime = self.runtimes.get(container.runtime)
        runtime.forget_sockets(cid)
        await asyncio.gather(runtime.delete(cid), self.unmount_rootfs(cid))
        self._released.add(cid)

    async def unmount_rootfs(self, cid: str) -> None:
        with contextlib.suppress(Exception):
            await self.mounts.detach(cid)
        with contextlib.suppress(Exception):
            await self.images.unmount_rootfs(self.root / cid)

    async def remove(self, container: Container) -> None:
        """The container's files and its hold on its layers (its record goes apart).
        The runtime's state of its last run is deleted after: with the record gone no run
        can reuse the id, and `docker run --rm` need not wait for the runtime (~7 ms)."""
        cid = container.id
        runtime = self.runtimes.get(container.runtime)
        if cid not in self._released:
            runtime.forget_sockets(cid)
            await self.unmount_rootfs(cid)
        loop = asyncio.get_running_loop()
        # Unmounted: the layers can go if only this container held them (their image
        # was force-deleted).
        await asyncio.gather(
            loop.run_in_executor(None, shutil.rmtree, self.root / cid, True),
            self._release_layers(cid),
        )
        if cid not in self._released:
            self._delete_runtime_state(runtime, cid)
        self._released.discard(cid)

    def _delete_runtime_state(self, runtime: OCIRuntime, cid: str) -> None:
        if cid not in runtime.state_ids():
            return  # never started
        task = asyncio.ensure_future(runtime.delete(cid))
        self._runtime_deletes.add(task)
        task.add_done_callback(self._runtime_deletes.discard)

    async def close(self) -> None:
        """Let runtime deletions under way finish (a crash leaves them to `load`)."""
        if self._runtime_deletes:
            await asyncio.gather(*self._runtime_deletes, return_exceptions=True)

    async def _release_layers(self, cid: str) -> None:
        try:
            await self.images.release_layers(cid)
        except Exception:
            log.exception("container %s: removing its unused layers failed", cid[:12])

    async def load(self) -> None:
        """Hold every container's layers again, collect what removals cut short by a
        crash left, then the layers nobody uses any more."""
        layers_known = True
        for container in self.index.all():
            try:
                await self.hold_layers(container)
            except NotFound:
                layers_known = False
                log.warning(
                    "container %s: its image %s is gone and its layers were never recorded",
                    container.id[:12],
                    container.image_id,
                )
        await self._collect_orphans()
        if layers_known:
            # Only when every container's layers are known can the unused ones be told.
            swept = await self.images.collect_unused_layers()
            if swept:
                log.info("removed %d unused layer snapshots", len(swept))

    async def hold_layers(self, container: Container) -> tuple[list[str], list[str]]:
        """Hold the container's layers with the image service so that no image removal
        takes them; returns them (chain ids bottom first, blobs). Records from before
        containers kept their layers get them from their image (NotFound if it is gone)."""
        chain_ids = container.chain_ids
        if chain_ids is None:
            image = await self.images.get(container.image_id)
            chain_ids, container.layer_digests = self.images.rootfs_layers(image)
            container.chain_ids = chain_ids
            await self.index.save(container)
        self.images.hold_layers(container.id, chain_ids, container.layer_digests)
        return chain_ids, container.layer_digests

    async def _collect_orphans(self) -> None:
        """Container directories or runtime state without a record: removals cut short
        by a crash."""
        loop = asyncio.get_running_loop()
        names = await loop.run_in_executor(None, _dir_names, self.root)
        for cid in names:
            if cid in self.index or not _CONTAINER_ID.fullmatch(cid):
                continue
            log.info("removing what is left of container %s", cid[:12])
            # No record says which runtime ran it: each forgets it (quiet when unknown).
            for runtime in self.runtimes:
                runtime.forget_sockets(cid)
                await runtime.delete(cid)
            await self.unmount_rootfs(cid)
            await loop.run_in_executor(None, shutil.rmtree, self.root / cid, True)
        for runtime in self.runtimes:
            for cid in runtime.state_ids():
                if cid not in self.index and _CONTAINER_ID.fullmatch(cid):
                    await runtime.delete(cid)


def _make_dir(container_dir: Path, hostname: str, domainname: str, host_network: bool) -> None:
    container_dir.mkdir(mode=0o710)
    write_host_files(container_dir, hostname, domainname, host_network=host_network)


def _dir_names(path: Path) -> list[str]:
    try:
        return [entry.name for entry in os.scandir(path) if entry.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []
