"""The volume service: named volumes of the local driver, their records in the store,
which containers use each (refused removal while any does), and their mounts at start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

from essaim.errors import Conflict, NotFound
from essaim.model.volume import ANONYMOUS_LABEL, LOCAL_DRIVER, Volume
from essaim.store import Collection, Store
from essaim.store.events import EventBus
from essaim.volume.local import LocalDriver, created_now
from essaim.volume.names import new_anonymous_name, validate_local_options, validate_volume_name
from essaim.volume.query import VolumeQuery, matches

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def check_driver(driver: str) -> str:
    """The driver to use; only `local` exists here (plugins are not supported)."""
    driver = driver or LOCAL_DRIVER
    if driver != LOCAL_DRIVER:
        raise NotFound(f'error looking up volume plugin {driver}: plugin "{driver}" not found')
    return driver


class VolumeService:
    def __init__(self, data_root: Path, store: Store, events: EventBus) -> None:
        self.driver = LocalDriver(data_root / "volumes")
        self.records: Collection[Volume] = Collection(store, "volumes", Volume)
        self.events = events
        self._volumes: dict[str, Volume] = {}
        # Containers (ids) that reference each volume, from their create to their removal.
        self._refs: dict[str, set[str]] = {}
        # Holders (container ids) of each volume's mount, for volumes with options.
        self._active: dict[str, set[str]] = {}
        # One change at a time: a removal must not race a create that references.
        self._lock = asyncio.Lock()

    async def _blocking(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: fn(*args, **kwargs))

    async def load(self) -> None:
        for volume in await self.records.list():
            self._volumes[volume.name] = volume
            # A removal cut short between record and files is harmless; a record whose
            # directory went missing gets it back (empty) rather than failing starts.
            await self._blocking(self.driver.create, volume.name)

    def get(self, name: str) -> Volume:
        volume = self._volumes.get(name)
        if volume is None:
            raise NotFound(f"get {name}: no such volume")
        return volume

    def mountpoint(self, name: str) -> str:
        return str(self.driver.mountpoint(name))

    def users(self, name: str) -> list[str]:
        return sorted(self._refs.get(name, ()))

    def find(self, query: VolumeQuery) -> list[Volume]:
        return [
            v
            for v in sorted(self._volumes.values(), key=lambda v: v.name)
            if matches(query, v, in_use=bool(self._refs.get(v.name)))
        ]

    async def create(
        self,
        name: str,
        driver: str = "",
        options: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
        *,
        ref: str | None = None,
    ) -> tuple[Volume, bool]:
        """The volume `name` (a new anonymous one if empty), made unless it exists
        (then it is returned as it is, as dockerd does); True if it was made. `ref`
        names a container that uses it from now on."""
        driver = check_driver(driver)
        labels = dict(labels or {})
        options = dict(options or {})
        if not name:
            name = new_anonymous_name()
            labels[ANONYMOUS_LABEL] = ""
        validate_volume_name(name)
        async with self._lock:
            volume = self._volumes.get(name)
            made = volume is None
            if volume is None:
                validate_local_options(name, options)
                volume = Volume(
                    name=name, driver=driver, created_at=created_now(),
                    labels=labels, options=options,
                )  # fmt: skip
                await self._blocking(self.driver.create, name)
                try:
                    await self.records.put(name, volume)
                except BaseException:
                    await self._blocking(self.driver.remove, name)
                    raise
                self._volumes[name] = volume
            if ref is not None:
                self.reference(name, ref)
        if made:
            self.events.publish("volume", "create", name, {"driver": driver})
        return volume, made

    def reference(self, name: str, ref: str) -> None:
        self._refs.setdefault(name, set()).add(ref)

    def release(self, name: str, ref: str) -> None:
        users = self._refs.get(name)
        if users is not None:
            users.discard(ref)
            if not users:
                del self._refs[name]

    async def remove(self, name: str, *, force: bool = False) -> None:
        """dockerd's errors: 404 if unknown (nothing with force), 409 while in use."""
        async with self._lock:
            volume = self._volumes.get(name)
            if volume is None:
                if force:
                    return
                raise NotFound(f"get {name}: no such volume")
            users = self._refs.get(name)
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(sorted(users))}]")
            await self._delete(volume)

    async def _delete(self, volume: Volume) -> None:
        # The record first: a crash after it leaves a directory nobody lists, never a
        # listed volume without its data.
        await self.records.delete(volume.name)
        self._volumes.pop(volume.name, None)
        await self._blocking(self.driver.remove, volume.name)
        self.events.publish("volume", "destroy", volume.name, {"driver": volume.driver})

    async def prune(self, query: VolumeQuery, *, all_volumes: bool) -> tuple[list[str], int]:
        """Remove unused local volumes without options (those may hold data elsewhere)
        that `query` matches: anonymous ones only unless `all_volumes`. Returns their
        names and the bytes their data held."""
        deleted: list[str] = []
        reclaimed = 0
        async with self._lock:
            for volume in list(self._volumes.values()):
                if (
                    volume.driver != LOCAL_DRIVER
                    or volume.options
                    or self._refs.get(volume.name)
                    or not (all_volumes or volume.anonymous)
                    or not matches(query, volume, in_use=False)
                ):
                    continue
                size = await self._blocking(self.driver.size, volume.name)
                await self._delete(volume)
                deleted.append(volume.name)
                reclaimed += size
        self.events.publish("volume", "prune", "", {"reclaimed": str(reclaimed)})
        return deleted, reclaimed

    async def mount(self, holder: str, names: list[str]) -> None:
        """Mount the filesystems of these volumes' options for `holder` (a container
        id); each is mounted by its first holder. All or none."""
        async with self._lock:
            done: list[str] = []
            try:
                for name in names:
                    volume = self.get(name)
                    holders = self._active.setdefault(name, set())
                    if not holders and volume.options:
                        await self._blocking(self.driver.mount, volume)
                    holders.add(holder)
                    done.append(name)
            except BaseException:
                await self._unmount_locked(holder, done)
                raise

    async def unmount(self, holder: str) -> list[str]:
        """Drop `holder`'s mounts; a volume's filesystem goes with its last holder.
        The names of the volumes `holder` had."""
        async with self._lock:
            names = [n for n, holders in self._active.items() if holder in holders]
            await self._unmount_locked(holder, names)
        return names

    async def _unmount_locked(self, holder: str, names: list[str]) -> None:
        for name in names:
            holders = self._active.get(name, set())
            holders.discard(holder)
            if holders:
                continue
            self._active.pop(name, None)
            volume = self._volumes.get(name)
            if volume is not None and volume.options:
                try:
                    await self._blocking(self.driver.unmount, name)
                except OSError:
                    log.exception("volume %s: unmount failed", name)

    def adopt_mounted(self, holder: str, names: list[str]) -> None:
        """After a daemon restart: `holder` still runs with these volumes mounted."""
        for name in names:
            if name in self._volumes:
                self._active.setdefault(name, set()).add(holder)
