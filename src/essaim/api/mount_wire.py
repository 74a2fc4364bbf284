"""Mounts on the wire: `HostConfig.Mounts` and `HostConfig.Tmpfs` read from a create body,
and written back with a container's resolved `Mounts` as `docker inspect`/`ps` show them.
"""

from __future__ import annotations

from typing import Any

from essaim.api.wire_fields import integer, string, string_map
from essaim.errors import InvalidParameter
from essaim.model.mount import (
    BindOptions,
    DriverConfig,
    MountPoint,
    MountSpec,
    TmpfsOptions,
    VolumeOptions,
)  # fmt: skip


def _object(value: Any, field: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidParameter(f"json: cannot unmarshal {field}: expected an object")
    return value


def parse_tmpfs(value: Any) -> dict[str, str]:
    return string_map(value, "HostConfig.Tmpfs")


def _parse_mount(raw: Any) -> MountSpec:
    item = _object(raw, "HostConfig.Mounts") or {}
    spec = MountSpec(
        type=string(item.get("Type"), "Mount.Type"),
        source=string(item.get("Source"), "Mount.Source"),
        target=string(item.get("Target"), "Mount.Target"),
        read_only=bool(item.get("ReadOnly")),
        consistency=string(item.get("Consistency"), "Mount.Consistency"),
    )
    bind = _object(item.get("BindOptions"), "Mount.BindOptions")
    if bind is not None:
        spec.bind_options = BindOptions(
            propagation=string(bind.get("Propagation"), "BindOptions.Propagation"),
            non_recursive=bool(bind.get("NonRecursive")),
            create_mountpoint=bool(bind.get("CreateMountpoint")),
        )
    volume = _object(item.get("VolumeOptions"), "Mount.VolumeOptions")
    if volume is not None:
        spec.volume_options = VolumeOptions(
            no_copy=bool(volume.get("NoCopy")),
            labels=string_map(volume.get("Labels"), "VolumeOptions.Labels"),
            subpath=string(volume.get("Subpath"), "VolumeOptions.Subpath"),
        )
        driver = _object(volume.get("DriverConfig"), "VolumeOptions.DriverConfig")
        if driver is not None:
            spec.volume_options.driver_config = DriverConfig(
                name=string(driver.get("Name"), "DriverConfig.Name"),
                options=string_map(driver.get("Options"), "DriverConfig.Options"),
            )
    tmpfs = _object(item.get("TmpfsOptions"), "Mount.TmpfsOptions")
    if tmpfs is not None:
        spec.tmpfs_options = TmpfsOptions(
            size_bytes=integer(tmpfs.get("SizeBytes"), "TmpfsOptions.SizeBytes"),
            mode=integer(tmpfs.get("Mode"), "TmpfsOptions.Mode"),
        )
    return spec


def parse_mounts(value: Any) -> list[MountSpec]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidParameter("json: cannot unmarshal HostConfig.Mounts: expected an array")
    return [_parse_mount(item) for item in value]


def _omit_empty(fields: dict[str, Any]) -> dict[str, Any]:
    """Go's `omitempty`: zero values are left out."""
    return {k: v for k, v in fields.items() if v not in (None, "", False, 0, {})}


def mount_spec_wire(spec: MountSpec) -> dict[str, Any]:
    out = _omit_empty(
        {
            "Type": spec.type, "Source": spec.source, "Target": spec.target,
            "ReadOnly": spec.read_only, "Consistency": spec.consistency,
        }
    )  # fmt: skip
    if spec.bind_options is not None:
        bind = spec.bind_options
        out["BindOptions"] = _omit_empty(
            {
                "Propagation": bind.propagation, "NonRecursive": bind.non_recursive,
                "CreateMountpoint": bind.create_mountpoint,
            }
        )  # fmt: skip
    if spec.volume_options is not None:
        volume = spec.volume_options
        fields: dict[str, Any] = {
            "NoCopy": volume.no_copy, "Labels": volume.labels, "Subpath": volume.subpath,
        }  # fmt: skip
        if volume.driver_config is not None:
            fields["DriverConfig"] = _omit_empty(
                {"Name": volume.driver_config.name, "Options": volume.driver_config.options}
            )
        out["VolumeOptions"] = _omit_empty(fields)
    if spec.tmpfs_options is not None:
        tmpfs = spec.tmpfs_options
        out["TmpfsOptions"] = _omit_empty({"SizeBytes": tmpfs.size_bytes, "Mode": tmpfs.mode})
    return out


def mount_point_wire(point: MountPoint) -> dict[str, Any]:
    """One entry of `Mounts` (Type, Name and Driver are omitted when empty, as in Go)."""
    out: dict[str, Any] = {"Type": point.type}
    if point.name:
        out["Name"] = point.name
    out["Source"] = point.source
    out["Destination"] = point.destination
    if point.driver:
        out["Driver"] = point.driver
    out.update({"Mode": point.mode, "RW": point.rw, "Propagation": point.propagation})
    return out
