"""`HostConfig` identity and security fields on the wire: devices, extra groups, extra
hosts, DNS settings and namespace modes, read at create and written back by inspect.

A list the client sent as null stays null and [] stays []: dockerd stores what it was
given, and clients (the CLI sends `Dns: []`, the SDK leaves it out) see it back.
"""

from __future__ import annotations

from typing import Any

from essaim.api.wire_fields import string, strings
from essaim.errors import InvalidParameter
from essaim.model.container import HostConfig
from essaim.model.device import DeviceMapping


def _optional_strings(value: Any, field: str) -> list[str] | None:
    return None if value is None else strings(value, field)


def _devices(value: Any) -> list[DeviceMapping] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(d, dict) for d in value):
        raise InvalidParameter("json: cannot unmarshal Devices: expected a list of objects")
    mappings = []
    for device in value:
        on_host = string(device.get("PathOnHost"), "PathOnHost")
        # The CLI fills these in; the SDK may not (its parse_devices does, raw calls may not).
        in_container = string(device.get("PathInContainer"), "PathInContainer") or on_host
        access = string(device.get("CgroupPermissions"), "CgroupPermissions") or "rwm"
        mappings.append(DeviceMapping(on_host, in_container, access))
    return mappings


def parse_identity(host: dict[str, Any]) -> dict[str, Any]:
    """The `HostConfig` fields of this group, as keyword arguments of `HostConfig`."""
    return {
        "devices": _devices(host.get("Devices")),
        "device_cgroup_rules": _optional_strings(
            host.get("DeviceCgroupRules"), "DeviceCgroupRules"
        ),
        "group_add": _optional_strings(host.get("GroupAdd"), "GroupAdd"),
        "extra_hosts": _optional_strings(host.get("ExtraHosts"), "ExtraHosts"),
        "links": _optional_strings(host.get("Links"), "Links"),
        "dns": _optional_strings(host.get("Dns"), "Dns"),
        "dns_search": _optional_strings(host.get("DnsSearch"), "DnsSearch"),
        "dns_options": _optional_strings(host.get("DnsOptions"), "DnsOptions"),
        "ipc_mode": string(host.get("IpcMode"), "IpcMode"),
        "pid_mode": string(host.get("PidMode"), "PidMode"),
        "uts_mode": string(host.get("UTSMode"), "UTSMode"),
        "cgroupns_mode": string(host.get("CgroupnsMode"), "CgroupnsMode"),
        "userns_mode": string(host.get("UsernsMode"), "UsernsMode"),
    }


def identity_wire(host: HostConfig) -> dict[str, Any]:
    """The same fields as `docker inspect` shows them."""
    devices = (
        None
        if host.devices is None
        else [
            {
                "PathOnHost": d.path_on_host,
                "PathInContainer": d.path_in_container,
                "CgroupPermissions": d.cgroup_permissions,
            }
            for d in host.devices
        ]
    )
    return {
        "Devices": devices,
        "DeviceCgroupRules": host.device_cgroup_rules,
        "DeviceRequests": None,
        "GroupAdd": host.group_add,
        "ExtraHosts": host.extra_hosts,
        "Links": host.links,
        "Dns": host.dns,
        "DnsSearch": host.dns_search,
        "DnsOptions": host.dns_options,
        "IpcMode": host.ipc_mode,
        "PidMode": host.pid_mode,
        "UTSMode": host.uts_mode,
        "CgroupnsMode": host.cgroupns_mode,
        "UsernsMode": host.userns_mode,
    }
