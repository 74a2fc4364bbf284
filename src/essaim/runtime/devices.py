"""Host devices in a container: `--device` mappings and `--privileged` as OCI `linux.devices`
nodes (read from the host's nodes) with their devices-cgroup rules, and `--device-cgroup-rule`.

Follows moby's DevicesFromPath and AppendDevicePermissionsFromCgroupRules, and containerd's
HostDevices for privileged containers, including their error wording.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Sequence
from typing import NoReturn

from essaim.errors import InvalidParameter
from essaim.model.device import DeviceMapping

# moby's deviceCgroupRuleRegex: one space between fields, numbers or "*" (any).
_CGROUP_RULE = re.compile(r"([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})")
# Directories of /dev that hold no device of the host's own (containerd's getDevices).
_SKIPPED_DIRS = frozenset({"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"})
_KINDS = {stat.S_IFBLK: "b", stat.S_IFCHR: "c", stat.S_IFIFO: "p"}

OciDevice = dict[str, object]
CgroupRule = dict[str, object]


class NotADevice(Exception):
    """containerd's ErrNotADevice: the path exists but is no device node."""


def device_from_path(path: str, *, container_path: str | None = None) -> OciDevice:
    """The OCI device for the node at `path` (not following a symlink), with the host
    node's type, numbers, permission bits and owner; OSError if it cannot be read."""
    info = os.lstat(path)
    kind = _KINDS.get(stat.S_IFMT(info.st_mode))
    if kind is None:
        raise NotADevice(path)
    return {
        "path": container_path if container_path is not None else path,
        "type": kind,
        "major": os.major(info.st_rdev),
        "minor": os.minor(info.st_rdev),
        # Everything but the type bits, as Go's os.FileMode(mode &^ S_IFMT).
        "fileMode": info.st_mode & ~stat.S_IFMT(info.st_mode),
        "uid": info.st_uid,
        "gid": info.st_gid,
    }


def _rule(device: OciDevice, access: str) -> CgroupRule:
    return {
        "allow": True,
        "type": device["type"],
        "major": device["major"],
        "minor": device["minor"],
        "access": access,
    }


def devices_from_path(
    path_on_host: str, path_in_container: str, permissions: str
) -> tuple[list[OciDevice], list[CgroupRule]]:
    """One `--device`: a node (a symlink to one is followed), or a directory whose nodes
    all come along under `path_in_container`. Nothing found is moby's error."""
    resolved = path_on_host
    if os.path.islink(path_on_host):
        resolved = os.path.realpath(path_on_host)
    try:
        device = device_from_path(resolved, container_path=path_in_container)
        return [device], [_rule(device, permissions)]
    except NotADevice:
        reason = "not a device node"
    except OSError as exc:
        _gathering_error(path_on_host, _go_errno_text(exc))
    devices: list[OciDevice] = []
    if os.path.isdir(resolved):
        for directory, dirs, files in os.walk(resolved):
            dirs.sort()
            for name in sorted([*files, *dirs]):
                host_path = os.path.join(directory, name)
                inner = path_in_container + host_path[len(resolved) :]
                try:
                    devices.append(device_from_path(host_path, container_path=inner))
                except (NotADevice, OSError):
                    continue  # moby ignores what is not a readable node
    if not devices:
        _gathering_error(path_on_host, reason)
    return devices, [_rule(device, permissions) for device in devices]


def _go_errno_text(exc: OSError) -> str:
    """An errno as Go spells it ("no such file or directory"): the CLI reads these words
    (they make `docker run` exit 127)."""
    if not exc.errno:
        return str(exc)
    text = os.strerror(exc.errno)
    return text[:1].lower() + text[1:]


def _gathering_error(path: str, reason: str) -> NoReturn:
    raise InvalidParameter(
        f'error gathering device information while adding custom device "{path}": {reason}'
    )


def host_devices(root: str = "/dev") -> list[OciDevice]:
    """Every device node of the host under `root`, as a privileged container gets them:
    not the console, fifos, or the per-namespace directories (pts, shm, mqueue...)."""
    found: list[OciDevice] = []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return found
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if entry.name not in _SKIPPED_DIRS:
                found += host_devices(entry.path)
            continue
        if entry.name == "console":
            continue
        try:
            device = device_from_path(entry.path)
        except (NotADevice, OSError):
            continue
        if device["type"] != "p":
            found.append(device)
    return found


def cgroup_rule(text: str) -> CgroupRule:
    """One `--device-cgroup-rule` ("c 1:5 rwm", "a" alone for everything) as an OCI
    devices-cgroup allow rule; "*" is -1 (any), as moby writes it."""
    rule = "a *:* rwm" if text == "a" else text
    match = _CGROUP_RULE.fullmatch(rule)
    if match is None:
        raise InvalidParameter(f"invalid device cgroup rule format: '{text}'")
    kind, major, minor, access = match.groups()
    return {
        "allow": True,
        "type": kind,
        "major": -1 if major == "*" else int(major),
        "minor": -1 if minor == "*" else int(minor),
        "access": access,
    }


def check_cgroup_rules(rules: Iterable[str]) -> None:
    for text in rules:
        cgroup_rule(text)


def container_devices(
    mappings: Sequence[DeviceMapping], rules: Sequence[str], *, privileged: bool
) -> tuple[list[OciDevice], list[CgroupRule]]:
    """(`linux.devices`, the cgroup rules to append to the default ones) for a container.

    Privileged: every host node, plus the mappings that rename one (their permissions are
    moot: everything is allowed); cgroup rules are not needed then, as in moby.
    """
    devices: list[OciDevice] = []
    allowed: list[CgroupRule] = []
    if privileged:
        devices = host_devices()
        for mapping in mappings:
            if mapping.path_on_host == mapping.path_in_container:
                continue  # already there, as every host node is
            more, _ = devices_from_path(mapping.path_on_host, mapping.path_in_container, "rwm")
            devices += more
        return devices, allowed
    for mapping in mappings:
        more, rules_for = devices_from_path(
            mapping.path_on_host, mapping.path_in_container, mapping.cgroup_permissions
        )
        devices += more
        allowed += rules_for
    allowed += [cgroup_rule(text) for text in rules]
    return devices, allowed
