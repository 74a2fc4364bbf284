"""A container's mounts planned from what was asked at create, in dockerd's order:
`--volumes-from`, then `-v` binds, then `--mount`, then the image's and `-v /path`
anonymous volumes where nothing is mounted yet. Pure: nothing is made here.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field

from essaim.errors import InvalidParameter, NotFound
from essaim.model.container import Container, HostConfig
from essaim.model.mount import BIND, VOLUME, MountPoint
from essaim.volume.bind_spec import parse_bind, parse_volumes_from, read_write
from essaim.volume.mount_spec import mount_point, path_exists, validate_mount
from essaim.volume.names import validate_volume_name
from essaim.volume.service import check_driver
from essaim.volume.tmpfs import validate_destination, validate_tmpfs


@dataclass
class VolumeRequest:
    """A volume a mount needs: made if it does not exist ("" names a new anonymous one)."""

    name: str
    driver: str = ""
    options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class PlannedMount:
    point: MountPoint
    # None for a volume taken over with `--volumes-from`: it must exist already.
    volume: VolumeRequest | None = None


def _duplicate(destination: str) -> InvalidParameter:
    return InvalidParameter(f"Duplicate mount point: {destination}")


def _request(point: MountPoint, driver: str) -> VolumeRequest:
    driver = check_driver(point.driver or driver)
    if point.name:
        validate_volume_name(point.name)
    return VolumeRequest(name=point.name, driver=driver)


def plan_mounts(
    volumes: list[str], host: HostConfig, lookup: Callable[[str], Container]
) -> list[PlannedMount]:
    """`volumes` are the anonymous volume paths (Config.Volumes with the image's);
    `lookup` finds a `--volumes-from` container. Raises Docker's 400s before anything
    is made."""
    validate_tmpfs(host.tmpfs)
    tmpfs = set(host.tmpfs) | {posixpath.normpath(d) for d in host.tmpfs}
    planned: dict[str, PlannedMount] = {}
    for entry in host.volumes_from:
        ref, mode = parse_volumes_from(entry)
        try:
            other = lookup(ref)
        except NotFound as exc:
            raise InvalidParameter(exc.message) from None
        for theirs in other.mount_points:
            point = MountPoint(
                type=theirs.type, destination=theirs.destination, source=theirs.source,
                name=theirs.name, driver=theirs.driver, rw=theirs.rw and read_write(mode),
                propagation=theirs.propagation, anonymous=theirs.anonymous,
                make_source=theirs.type == BIND, non_recursive=theirs.non_recursive,
                tmpfs_data=theirs.tmpfs_data, subpath=theirs.subpath,
            )  # fmt: skip
            planned[point.destination] = PlannedMount(point)
    explicit: set[str] = set()
    for raw in host.binds:
        _, point = parse_bind(raw, host.volume_driver)
        if point.destination in explicit or point.destination in tmpfs:
            raise _duplicate(point.destination)
        request = _request(point, host.volume_driver) if point.type == VOLUME else None
        if request is not None and not point.mode:
            point.mode = "z"  # dockerd's setBindModeIfNull, shown by inspect
        explicit.add(point.destination)
        planned[point.destination] = PlannedMount(point, request)
    for spec in host.mounts:
        validate_mount(spec, source_exists=path_exists)
        point = mount_point(spec)
        if point.destination in explicit:
            raise _duplicate(spec.target)
        request = None
        if point.type == VOLUME:
            request = _request(point, host.volume_driver)
            options = spec.volume_options
            if options is not None:
                request.labels = dict(options.labels)
                if options.driver_config is not None:
                    request.options = dict(options.driver_config.options)
            point.mode = "z"
        explicit.add(point.destination)
        planned[point.destination] = PlannedMount(point, request)
    for path in volumes:
        validate_destination(path)
        destination = posixpath.normpath(path)
        if destination in planned or destination in tmpfs:
            continue
        point = MountPoint(type=VOLUME, destination=destination, copy_data=True, anonymous=True)
        planned[destination] = PlannedMount(
            point, VolumeRequest("", check_driver(host.volume_driver))
        )
    return list(planned.values())
