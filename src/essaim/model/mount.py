"""Mounts as essaim models them: what a client asked for in `HostConfig.Mounts` (MountSpec)
and what a container ends up with once binds, volumes and tmpfs are resolved (MountPoint).
"""

from __future__ import annotations

import msgspec

BIND = "bind"
VOLUME = "volume"
TMPFS = "tmpfs"

# Docker's propagation default for bind mounts.
DEFAULT_PROPAGATION = "rprivate"
PROPAGATIONS = ("private", "rprivate", "slave", "rslave", "shared", "rshared")


class BindOptions(msgspec.Struct, kw_only=True):
    propagation: str = ""
    non_recursive: bool = False
    create_mountpoint: bool = False


class DriverConfig(msgspec.Struct, kw_only=True):
    name: str = ""
    options: dict[str, str] = {}


class VolumeOptions(msgspec.Struct, kw_only=True):
    no_copy: bool = False
    labels: dict[str, str] = {}
    subpath: str = ""
    driver_config: DriverConfig | None = None


class TmpfsOptions(msgspec.Struct, kw_only=True):
    size_bytes: int = 0
    mode: int = 0  # permission bits, as Go's os.FileMode carries them


class MountSpec(msgspec.Struct, kw_only=True):
    """One entry of `HostConfig.Mounts` (`--mount`), kept as asked for inspect."""

    type: str
    source: str = ""
    target: str = ""
    read_only: bool = False
    consistency: str = ""
    bind_options: BindOptions | None = None
    volume_options: VolumeOptions | None = None
    tmpfs_options: TmpfsOptions | None = None


class MountPoint(msgspec.Struct, kw_only=True):
    """A resolved mount of a container, as `docker inspect` lists it under `Mounts`."""

    type: str
    destination: str
    source: str = ""  # host path: the bind source, or the volume's mountpoint
    name: str = ""  # the volume's name
    driver: str = ""
    mode: str = ""  # as given after the second colon of `-v` ("z" for named volumes)
    rw: bool = True
    propagation: str = ""
    # Copy the image's content at `destination` into the volume while it is empty.
    copy_data: bool = False
    # Created for this container alone (no name given): `rm -v` and `--rm` remove it.
    anonymous: bool = False
    # A `-v` bind whose missing source directory is created at start, as dockerd does.
    make_source: bool = False
    non_recursive: bool = False
    tmpfs_data: str = ""  # tmpfs mount options ("size=10m,mode=1777")
    # The part of the volume mounted (`volume-subpath=`), relative to its mountpoint.
    subpath: str = ""
