"""A container's resolved mounts as OCI mounts: binds and volumes as recursive binds
with their propagation and read-only flag, tmpfs with Docker's default options.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping

from essaim.errors import SystemError_
from essaim.model.mount import TMPFS, MountPoint
from essaim.runtime.mounts import Mount
from essaim.volume.tmpfs import oci_options


def oci_mounts(
    points: list[MountPoint], tmpfs: dict[str, str], sources: Mapping[str, str] | None = None
) -> list[Mount]:
    """The mounts of `points` then of `--tmpfs` (HostConfig.Tmpfs). `sources` are the
    run's subpath mounts by destination: what a volume subpath is mounted from."""
    mounts: list[Mount] = []
    for point in points:
        if point.type == TMPFS:
            mounts.append(Mount(point.destination, "tmpfs", "tmpfs", oci_options(point.tmpfs_data)))
            continue
        source = point.source
        if point.subpath:
            # Never the whole volume in its stead: only the descriptor-checked mount.
            source = (sources or {}).get(point.destination, "")
            if not source:
                raise SystemError_(f"volume subpath at {point.destination} is not mounted")
        options = ["bind" if point.non_recursive else "rbind"]
        if not point.rw:
            options.append("ro")
        options.append(point.propagation or "rprivate")
        mounts.append(Mount(point.destination, source, "bind", options))
    for destination, data in tmpfs.items():
        mounts.append(Mount(posixpath.normpath(destination), "tmpfs", "tmpfs", oci_options(data)))
    return mounts


def mounted_destinations(points: list[MountPoint], tmpfs: dict[str, str]) -> set[str]:
    return {p.destination for p in points} | {posixpath.normpath(d) for d in tmpfs}
