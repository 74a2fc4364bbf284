"""`--mount` (HostConfig.Mounts) checked and turned into a MountPoint, with dockerd's
messages: `invalid mount config for type "bind": bind source path does not exist: /x`.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable

from essaim.errors import InvalidParameter
from essaim.model.mount import (
    BIND,
    DEFAULT_PROPAGATION,
    PROPAGATIONS,
    TMPFS,
    VOLUME,
    MountPoint,
    MountSpec,
)  # fmt: skip
from essaim.volume.subpath import is_local
from essaim.volume.tmpfs import convert_options, validate_destination


def _config_error(spec: MountSpec, reason: str) -> InvalidParameter:
    return InvalidParameter(f'invalid mount config for type "{spec.type}": {reason}')


def validate_mount(spec: MountSpec, *, source_exists: Callable[[str], bool] | None) -> None:
    """dockerd's checks of one mount; `source_exists` checks a bind's source (None:
    it is not checked, as for `-v`, whose missing source is created at start)."""
    if not spec.target:
        raise _config_error(spec, "field Target must not be empty")
    try:
        validate_destination(spec.target)
    except InvalidParameter as exc:
        raise _config_error(spec, exc.message) from None
    if spec.type == BIND:
        if not spec.source:
            raise _config_error(spec, "field Source must not be empty")
        propagation = spec.bind_options.propagation if spec.bind_options else ""
        if propagation and propagation not in PROPAGATIONS:
            raise _config_error(spec, f"invalid propagation mode: {propagation}")
        if spec.volume_options is not None:
            raise _config_error(spec, "field VolumeOptions must not be specified")
        if not posixpath.isabs(spec.source):
            raise _config_error(
                spec, f"invalid mount path: '{spec.source}' mount path must be absolute"
            )
        if source_exists is not None and not source_exists(spec.source):
            raise _config_error(spec, f"bind source path does not exist: {spec.source}")
    elif spec.type == VOLUME:
        if spec.bind_options is not None:
            raise _config_error(spec, "field BindOptions must not be specified")
        subpath = spec.volume_options.subpath if spec.volume_options is not None else ""
        if subpath and not spec.source:
            raise _config_error(spec, "must not set Subpath when using anonymous volumes")
        if subpath and not is_local(subpath):
            raise _config_error(spec, "subpath must be a relative path within the volume")
        if not spec.source and spec.read_only:
            raise _config_error(spec, "must not set ReadOnly mode when using anonymous volumes")
    elif spec.type == TMPFS:
        if spec.bind_options is not None:
            raise _config_error(spec, "field BindOptions must not be specified")
        if spec.source:
            raise _config_error(spec, "field Source must not be specified")
    else:
        raise _config_error(spec, "mount type unknown")


def path_exists(path: str) -> bool:
    return os.path.lexists(path)


def mount_point(spec: MountSpec) -> MountPoint:
    """The MountPoint a validated spec asks for; a volume's name stays empty when none
    was given (the volume service names it)."""
    point = MountPoint(
        type=spec.type, destination=posixpath.normpath(spec.target), rw=not spec.read_only
    )
    if spec.type == VOLUME:
        options = spec.volume_options
        point.name = spec.source
        point.anonymous = not spec.source
        point.copy_data = not (options is not None and options.no_copy)
        if options is not None and options.driver_config is not None:
            point.driver = options.driver_config.name
        point.subpath = options.subpath if options is not None else ""
    elif spec.type == BIND:
        point.source = posixpath.normpath(spec.source)
        bind = spec.bind_options
        point.propagation = (bind.propagation if bind else "") or DEFAULT_PROPAGATION
        point.non_recursive = bool(bind and bind.non_recursive)
    else:
        point.tmpfs_data = convert_options(spec.tmpfs_options, spec.read_only)
    return point
