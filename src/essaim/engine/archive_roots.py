"""Where a `docker cp` path lives when the container is stopped: in its rootfs, or in the
host source of the volume, bind or daemon-written file mounted over it; and whether a
path may be written (moby's read-only rootfs and read-only volume checks).

A running container needs none of this: its own root (/proc/<pid>/root) has them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from essaim.engine.hostfiles import host_file_mounts
from essaim.engine.tar_paths import clean_parts
from essaim.errors import InvalidParameter
from essaim.model.container import Container
from essaim.model.mount import BIND, VOLUME, MountPoint


@dataclass(frozen=True)
class MountedSource:
    """A host path mounted at `destination` (components) in the container."""

    destination: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class Located:
    """A container path as found in a root: `root` (a host directory; None for the
    rootfs) and the path inside it, keeping the client's trailing `/` or `/.`."""

    root: str | None
    path: str


def stopped_mounts(
    container: Container, container_dir: Path, subpaths: Mapping[str, str] | None = None
) -> list[MountedSource]:
    """What a stopped container has mounted when it runs, as far as it is on disk: its
    volumes and binds, and the hosts, hostname and resolv.conf files the daemon wrote
    (unless a mount covers them). A tmpfs holds nothing while the container is stopped.
    `subpaths` are its volume subpaths as mounted now, by destination (one not mounted
    is left out rather than shown as the whole volume)."""
    subpaths = subpaths or {}
    mounts = [
        MountedSource(
            tuple(clean_parts(p.destination)), subpaths[p.destination] if p.subpath else p.source
        )
        for p in container.mount_points
        if p.type in (VOLUME, BIND) and p.source and (not p.subpath or p.destination in subpaths)
    ]
    covered = {m.destination for m in mounts}
    for source, destination in host_file_mounts(container_dir):
        parts = tuple(clean_parts(destination))
        if parts not in covered and Path(source).exists():
            mounts.append(MountedSource(parts, source))
    return mounts


def _covering(destinations: list[tuple[str, ...]], parts: list[str]) -> int | None:
    """The index of the deepest destination at or above `parts`, if any."""
    best: int | None = None
    for i, destination in enumerate(destinations):
        if tuple(parts[: len(destination)]) == destination and (
            best is None or len(destination) > len(destinations[best])
        ):
            best = i
    return best


def locate(mounts: list[MountedSource], abs_path: str, source_is_dir: dict[str, bool]) -> Located:
    """`abs_path` (cleaned, absolute) in the mount whose destination holds it, judged by
    its name as given (dockerd mounts them over the rootfs and looks the same way);
    a file mount is found as its own name in its parent directory."""
    parts = clean_parts(abs_path)
    index = _covering([m.destination for m in mounts], parts)
    if index is None:
        return Located(None, abs_path)
    mount = mounts[index]
    rest = parts[len(mount.destination) :]
    suffix = "/." if abs_path.endswith("/.") else "/" if abs_path.endswith("/") else ""
    if source_is_dir.get(mount.source, False):
        inner = "/" + "/".join(rest)
        if rest and suffix:
            inner += suffix
        elif not rest and suffix == "/.":
            inner = "/."
        return Located(mount.source, inner)
    parent, _, name = mount.source.rstrip("/").rpartition("/")
    return Located(parent or "/", "/" + "/".join([name, *rest]) + suffix)


def check_writable(container: Container, abs_path: str) -> None:
    """moby's checks before extracting into `abs_path`: a read-only volume refuses; a
    read-only rootfs refuses what no volume holds. Judged by name, as moby does."""
    points: list[MountPoint] = container.mount_points
    index = _covering([tuple(clean_parts(p.destination)) for p in points], clean_parts(abs_path))
    if index is not None:
        if not points[index].rw:
            raise InvalidParameter("mounted volume is marked read-only")
        return
    if container.host_config.readonly_rootfs:
        raise InvalidParameter("container rootfs is marked read-only")
