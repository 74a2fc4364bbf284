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


def cgroup_version() -> str:
    """ "2" only on a pure v2 host; a hybrid host (v1 controllers) counts as v1."""
    return "2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "1"


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
        cgroup_version=cgroup_version(),
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
