"""Facts about this host and daemon that `/info` and `/version` report: real figures
read from the kernel, cgroup mounts and the data root.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from essaim.runtime.host import HostFacts


@dataclass(frozen=True)
class HostInfo:
    ncpu: int
    mem_total: int
    kernel_version: str
    operating_system: str
    os_version: str
    architecture: str
    hostname: str
    cgroup_version: str


def _os_release() -> dict[str, str]:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key] = value.strip().strip('"')
    return out


def _mem_total() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass(frozen=True)
class KernelFeatures:
    """What `/info` says the kernel can enforce, from the cgroup controllers mounted."""

    memory_limit: bool
    swap_limit: bool
    cpu_cfs: bool
    cpu_shares: bool
    cpuset: bool
    pids_limit: bool
    ipv4_forwarding: bool


def cgroup_controllers() -> frozenset[str]:
    """The controllers containers can use: the unified hierarchy's list on a v2 host,
    otherwise the v1 controllers mounted in a hierarchy of their own."""
    unified = Path("/sys/fs/cgroup/cgroup.controllers")
    if unified.exists():
        return frozenset(unified.read_text().split())
    names = set()
    try:
        lines = Path("/proc/cgroups").read_text().splitlines()[1:]
    except OSError:
        return frozenset()
    for line in lines:
        fields = line.split()
        if len(fields) == 4 and fields[1] != "0" and fields[3] == "1":
            names.add(fields[0])
    return frozenset(names)


@cache
def kernel_features() -> KernelFeatures:
    controllers = cgroup_controllers()
    try:
        forwarding = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1"
    except OSError:
        forwarding = False
    return KernelFeatures(
        memory_limit="memory" in controllers,
        swap_limit=HostFacts.read().swap_limit,
        cpu_cfs="cpu" in controllers,
        cpu_shares="cpu" in controllers,
        cpuset="cpuset" in controllers,
        pids_limit="pids" in controllers,
        ipv4_forwarding=forwarding,
    )


# Docker's names for the filesystems a data root lives on (`Backing Filesystem`).
_FILESYSTEM_NAMES = {"ext2": "extfs", "ext3": "extfs", "ext4": "extfs", "overlay": "overlayfs"}


def backing_filesystem(path: Path, mountinfo: str | None = None) -> str:
    """The type of the filesystem holding `path`, from the deepest mount point above it
    in /proc/self/mountinfo (or the `mountinfo` text given), named as Docker names it."""
    target = str(path.resolve())
    best, fstype = "", "unknown"
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return fstype
    for line in mountinfo.splitlines():
        fields, _, tail = line.partition(" - ")
        parts = fields.split()
        if len(parts) < 5 or not tail:
            continue
        mount_point = parts[4].replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, fstype = mount_point, tail.split()[0]
    return _FILESYSTEM_NAMES.get(fstype, fstype)


@cache
def host_info() -> HostInfo:
    release = _os_release()
    return HostInfo(
        ncpu=os.cpu_count() or 1,
        mem_total=_mem_total(),
        kernel_version=platform.release(),
        operating_system=release.get("PRETTY_NAME", "Linux"),
        os_version=release.get("VERSION_ID", ""),
        architecture=platform.machine(),
        hostname=platform.node(),
        cgroup_version=str(HostFacts.read().cgroup_version),
    )


def go_arch() -> str:
    """Docker's (Go's) name for this machine's architecture."""
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(
        machine, machine
    )


@cache
def tool_version(tool: str) -> str:
    """First line of `<tool> --version`, for /info's commit fields; "" if missing."""
    path = shutil.which(tool)
    if path is None:
        return ""
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.splitlines()[0] if out else ""
