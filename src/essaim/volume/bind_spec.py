"""The `-v` short syntax (HostConfig.Binds, `--volumes-from`): `src:dst[:mode]` split and
checked as dockerd's Linux parser does, mode words included (ro, rw, z, nocopy, rslave...).
"""

from __future__ import annotations

import posixpath

from essaim.errors import InvalidParameter
from essaim.model.mount import (
    BIND,
    PROPAGATIONS,
    VOLUME,
    BindOptions,
    DriverConfig,
    MountPoint,
    MountSpec,
    VolumeOptions,
)  # fmt: skip
from essaim.volume.mount_spec import mount_point, validate_mount

_RW = frozenset({"rw", "ro"})
_LABEL = frozenset({"z", "Z"})
_CONSISTENCY = frozenset({"consistent", "cached", "delegated"})
_COPY = frozenset({"nocopy"})
_KINDS = (_RW, _LABEL, frozenset(PROPAGATIONS), _COPY, _CONSISTENCY)


def _invalid_spec(raw: str) -> InvalidParameter:
    return InvalidParameter(f"invalid volume specification: '{raw}'")


def _invalid_mode(mode: str) -> InvalidParameter:
    return InvalidParameter(f"invalid mode: {mode}")


def valid_mode(mode: str) -> bool:
    """Every word known, and at most one of each kind."""
    if not mode:
        return True
    counts = [0] * len(_KINDS)
    for word in mode.split(","):
        for i, kind in enumerate(_KINDS):
            if word in kind:
                counts[i] += 1
                break
        else:
            return False
    return max(counts) <= 1


def read_write(mode: str) -> bool:
    return valid_mode(mode) and "ro" not in mode.split(",")


def _propagation(mode: str) -> str:
    return next((w for w in mode.split(",") if w in PROPAGATIONS), "")


def parse_bind(raw: str, volume_driver: str = "") -> tuple[MountSpec, MountPoint]:
    """One `Binds` entry: the spec it stands for and its MountPoint. A source that is
    an absolute path is a bind; anything else names a volume."""
    if raw.count(":") > 2:
        raise _invalid_spec(raw)
    parts = raw.split(":", 2)
    if not parts[0]:
        raise _invalid_spec(raw)
    mode = ""
    if len(parts) == 1:
        source, target = "", parts[0]
    elif len(parts) == 2:
        if valid_mode(parts[1]):
            raise _invalid_spec(raw)  # `/foo:rw`: a mode needs a source
        source, target = parts
    else:
        source, target, mode = parts
    if not valid_mode(mode):
        raise _invalid_mode(mode)
    kind = BIND if posixpath.isabs(source) else VOLUME
    spec = MountSpec(type=kind, source=source, target=target, read_only=not read_write(mode))
    if volume_driver and kind == VOLUME:
        spec.volume_options = VolumeOptions(driver_config=DriverConfig(name=volume_driver))
    if "nocopy" in mode.split(","):
        spec.volume_options = spec.volume_options or VolumeOptions()
        spec.volume_options.no_copy = True
    propagation = _propagation(mode)
    if propagation:
        spec.bind_options = BindOptions(propagation=propagation)
    try:
        validate_mount(spec, source_exists=None)
    except InvalidParameter as exc:
        raise InvalidParameter(f"invalid volume specification: '{raw}': {exc.message}") from None
    point = mount_point(spec)
    point.mode = mode
    point.make_source = kind == BIND
    return spec, point


def parse_volumes_from(spec: str) -> tuple[str, str]:
    """`container[:mode]` -> (container, mode); mode is rw, ro, or a label word."""
    if not spec:
        raise InvalidParameter("volumes-from specification cannot be an empty string")
    ref, _, mode = spec.partition(":")
    if not mode:
        return ref, "rw"
    if not valid_mode(mode) or _propagation(mode) or "nocopy" in mode.split(","):
        raise _invalid_mode(mode)
    return ref, mode
