"""What this host allows a container to have: rlimits, capabilities, cgroup layout, CPUs.

Read once at daemon start (`HostFacts.read()`); tests build `HostFacts` by hand.
"""

import os
import re
import resource
from pathlib import Path

import msgspec

from essaim.runtime.abis import missing_compat_abis
from essaim.runtime.capabilities import KNOWN_CAPABILITIES, capabilities_from_mask

# The OCI spec and the kernel spell "no limit" as the largest unsigned 64-bit value.
RLIM_UNLIMITED = 2**64 - 1

# Docker's --ulimit names and the resource module's constants for them.
RLIMIT_NUMBERS: dict[str, int] = {
    "core": resource.RLIMIT_CORE,
    "cpu": resource.RLIMIT_CPU,
    "data": resource.RLIMIT_DATA,
    "fsize": resource.RLIMIT_FSIZE,
    # Python does not export RLIMIT_LOCKS; 10 is its number on every Linux architecture.
    "locks": getattr(resource, "RLIMIT_LOCKS", 10),
    "memlock": resource.RLIMIT_MEMLOCK,
    "msgqueue": resource.RLIMIT_MSGQUEUE,
    "nice": resource.RLIMIT_NICE,
    "nofile": resource.RLIMIT_NOFILE,
    "nproc": resource.RLIMIT_NPROC,
    "rss": resource.RLIMIT_RSS,
    "rtprio": resource.RLIMIT_RTPRIO,
    "rttime": resource.RLIMIT_RTTIME,
    "sigpending": resource.RLIMIT_SIGPENDING,
    "stack": resource.RLIMIT_STACK,
}


class HostFacts(msgspec.Struct, frozen=True, kw_only=True):
    """The limits and layout the generated config must respect on this host."""

    # Hard rlimit of the daemon per Docker ulimit name; RLIM_UNLIMITED for none.
    rlimit_hard: dict[str, int]
    # 1 for the legacy (or hybrid) layout, 2 for the unified hierarchy at /sys/fs/cgroup.
    cgroup_version: int = 1
    # `uname -m`: x86_64, aarch64, ...
    arch: str = "x86_64"
    kernel: tuple[int, int] = (6, 1)
    ncpu: int = 1
    # The daemon's bounding set: nothing outside it can be granted to a container.
    capabilities: frozenset[str] = frozenset(KNOWN_CAPABILITIES)
    # Whether the memory cgroup can limit swap (v1 needs swapaccount=1).
    swap_limit: bool = True
    # Compat ABIs (libseccomp names) the kernel does not run: left out of seccomp filters.
    missing_abis: frozenset[str] = frozenset()

    @property
    def nofile_hard(self) -> int:
        return self.rlimit_hard.get("nofile", RLIM_UNLIMITED)

    @property
    def nproc_hard(self) -> int:
        return self.rlimit_hard.get("nproc", RLIM_UNLIMITED)

    @classmethod
    def read(cls) -> "HostFacts":
        """Read the facts of the running host and process."""
        uname = os.uname()
        cgroup_version = _cgroup_version(Path("/proc/self/mountinfo"))
        return cls(
            rlimit_hard={name: _hard_limit(number) for name, number in RLIMIT_NUMBERS.items()},
            cgroup_version=cgroup_version,
            arch=uname.machine,
            kernel=parse_kernel_release(uname.release),
            ncpu=os.cpu_count() or 1,
            capabilities=_bounding_set(Path("/proc/self/status")),
            swap_limit=_swap_limit(cgroup_version),
            missing_abis=missing_compat_abis(uname.machine),
        )


def _hard_limit(number: int) -> int:
    hard = resource.getrlimit(number)[1]
    return RLIM_UNLIMITED if hard == resource.RLIM_INFINITY else hard


def parse_kernel_release(release: str) -> tuple[int, int]:
    """ "6.1.0-18-amd64" -> (6, 1); anything unparsable counts as (0, 0)."""
    match = re.match(r"(\d+)\.(\d+)", release)
    return (int(match[1]), int(match[2])) if match else (0, 0)


def _cgroup_version(mountinfo: Path) -> int:
    # The filesystem type mounted at /sys/fs/cgroup decides: cgroup2 means unified; tmpfs
    # holding per-controller mounts (even with a v2 side hierarchy) is the v1 layout.
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return 1
    for line in lines:
        fields = line.split()
        if len(fields) < 5 or fields[4] != "/sys/fs/cgroup" or " - " not in line:
            continue
        fstype = line.split(" - ", 1)[1].split()[0]
        return 2 if fstype == "cgroup2" else 1
    return 1


def _bounding_set(status: Path) -> frozenset[str]:
    try:
        for line in status.read_text().splitlines():
            if line.startswith("CapBnd:"):
                return capabilities_from_mask(int(line.split()[1], 16))
    except (OSError, ValueError, IndexError):
        pass
    return frozenset(KNOWN_CAPABILITIES)


def _swap_limit(cgroup_version: int) -> bool:
    if cgroup_version == 2:
        return True
    return Path("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
