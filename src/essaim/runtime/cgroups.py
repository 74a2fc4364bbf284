"""A running process's cgroups, found from /proc/<pid>/cgroup, and what they account:
CPU, memory, pids, block I/O and member processes, on v1, hybrid and unified hosts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from essaim.runtime.cgroup_files import (
    BlkioEntry,
    parse_blkio_v1,
    parse_flat_keyed,
    parse_int,
    parse_int_list,
    parse_io_stat,
    parse_proc_cgroup,
)  # fmt: skip

CGROUP_ROOT = Path("/sys/fs/cgroup")
NANOS = 1_000_000_000
# cpuacct.stat counts in USER_HZ ticks.
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuUsage:
    total_ns: int = 0
    percpu_ns: list[int] = field(default_factory=list)  # v1 only
    kernel_ns: int = 0
    user_ns: int = 0
    periods: int = 0
    throttled_periods: int = 0
    throttled_ns: int = 0


@dataclass(frozen=True)
class MemoryUsage:
    usage: int = 0
    limit: int | None = None  # None: no limit of its own
    max_usage: int | None = None  # v1 only
    failcnt: int | None = None  # v1 only
    stats: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class PidsUsage:
    current: int = 0
    limit: int | None = None


@dataclass(frozen=True)
class BlkioUsage:
    service_bytes: list[BlkioEntry] = field(default_factory=list)
    serviced: list[BlkioEntry] = field(default_factory=list)


def _read(path: Path) -> str | None:
    # A cgroup vanishes when its last process exits: a missing file is no error here.
    try:
        return path.read_text()
    except OSError:
        return None


@dataclass(frozen=True)
class ProcessCgroups:
    """A directory per v1 controller the process is in, and its v2 directory (all of
    it on a unified host; on a hybrid one, only what is enabled there)."""

    v1: dict[str, Path]
    v2: Path | None

    @classmethod
    def of_pid(cls, pid: int, root: Path = CGROUP_ROOT) -> ProcessCgroups | None:
        """None when the process is gone."""
        text = _read(Path(f"/proc/{pid}/cgroup"))
        return None if text is None else cls.parse(text, root)

    @classmethod
    def parse(cls, proc_cgroup: str, root: Path = CGROUP_ROOT) -> ProcessCgroups:
        v1: dict[str, Path] = {}
        v2: Path | None = None
        for hierarchy, controllers, path in parse_proc_cgroup(proc_cgroup):
            relative = path.lstrip("/")
            if hierarchy == 0:
                # Unified at the root on a v2 host; beside the v1 mounts on a hybrid one.
                base = root if (root / "cgroup.controllers").exists() else root / "unified"
                v2 = base / relative
                continue
            for name in controllers:
                # Co-mounted controllers live in `cpu,cpuacct` (with `cpu` and `cpuacct`
                # symlinks on most hosts); try the name alone first.
                for mount in (name, ",".join(controllers)):
                    if (root / mount).is_dir():
                        v1[name] = root / mount / relative
                        break
        return cls(v1, v2)

    def _file(self, controller: str, v1_name: str, v2_name: str) -> Path | None:
        """The v1 controller's file when that controller is mounted, else the v2 one."""
        if controller in self.v1:
            return self.v1[controller] / v1_name
        if self.v2 is not None and (self.v2 / v2_name).exists():
            return self.v2 / v2_name
        return None

    def cpu(self) -> CpuUsage:
        if "cpuacct" in self.v1:
            acct = self.v1["cpuacct"]
            ticks = parse_flat_keyed(_read(acct / "cpuacct.stat") or "")
            throttling = {}
            if "cpu" in self.v1:
                throttling = parse_flat_keyed(_read(self.v1["cpu"] / "cpu.stat") or "")
            return CpuUsage(
                total_ns=parse_int(_read(acct / "cpuacct.usage") or "") or 0,
                percpu_ns=parse_int_list(_read(acct / "cpuacct.usage_percpu") or ""),
                kernel_ns=ticks.get("system", 0) * NANOS // _CLOCK_TICKS,
                user_ns=ticks.get("user", 0) * NANOS // _CLOCK_TICKS,
                periods=throttling.get("nr_periods", 0),
                throttled_periods=throttling.get("nr_throttled", 0),
                throttled_ns=throttling.get("throttled_time", 0),
            )
        if self.v2 is None:
            return CpuUsage()
        stat = parse_flat_keyed(_read(self.v2 / "cpu.stat") or "")
        return CpuUsage(
            total_ns=stat.get("usage_usec", 0) * 1000,
            kernel_ns=stat.get("system_usec", 0) * 1000,
            user_ns=stat.get("user_usec", 0) * 1000,
            periods=stat.get("nr_periods", 0),
            throttled_periods=stat.get("nr_throttled", 0),
            throttled_ns=stat.get("throttled_usec", 0) * 1000,
        )

    def memory(self) -> MemoryUsage:
        if "memory" in self.v1:
            mem = self.v1["memory"]
            stats = parse_flat_keyed(_read(mem / "memory.stat") or "")
            # The limit that applies, parents' included, as moby reports it.
            limit = stats.get("hierarchical_memory_limit")
            if limit is None:
                limit = parse_int(_read(mem / "memory.limit_in_bytes") or "")
            return MemoryUsage(
                usage=parse_int(_read(mem / "memory.usage_in_bytes") or "") or 0,
                limit=limit,
                max_usage=parse_int(_read(mem / "memory.max_usage_in_bytes") or "") or 0,
                failcnt=parse_int(_read(mem / "memory.failcnt") or "") or 0,
                stats=stats,
            )
        current = self._file("memory", "", "memory.current")
        if current is None or self.v2 is None:
            return MemoryUsage()
        return MemoryUsage(
            usage=parse_int(_read(current) or "") or 0,
            limit=parse_int(_read(self.v2 / "memory.max") or ""),
            stats=parse_flat_keyed(_read(self.v2 / "memory.stat") or ""),
        )

    def pids(self) -> PidsUsage:
        current = self._file("pids", "pids.current", "pids.current")
        if current is None:
            return PidsUsage(current=len(self.procs()))
        limit = parse_int(_read(current.with_name("pids.max")) or "")
        return PidsUsage(current=parse_int(_read(current) or "") or 0, limit=limit)

    def blkio(self) -> BlkioUsage:
        if "blkio" in self.v1:
            blkio = self.v1["blkio"]
            # The CFQ/BFQ files stay empty under other schedulers; the throttle ones
            # count every request (containerd's order).
            tables = []
            for name in ("io_service_bytes_recursive", "io_serviced_recursive"):
                entries: list[BlkioEntry] = []
                for prefix in ("blkio.", "blkio.bfq.", "blkio.throttle."):
                    entries = parse_blkio_v1(_read(blkio / (prefix + name)) or "")
                    if entries:
                        break
                tables.append(entries)
            return BlkioUsage(service_bytes=tables[0], serviced=tables[1])
        io_stat = self._file("blkio", "", "io.stat")
        if io_stat is None:
            return BlkioUsage()
        service_bytes, serviced = parse_io_stat(_read(io_stat) or "")
        return BlkioUsage(service_bytes=service_bytes, serviced=serviced)

    def procs(self) -> list[int]:
        """Every process in the cgroup and its sub-cgroups (runc exec joins the same)."""
        for controller in ("pids", "memory", "freezer", "cpu"):
            if controller in self.v1:
                return _tree_procs(self.v1[controller])
        if self.v2 is not None:
            return _tree_procs(self.v2)
        return []


def _tree_procs(top: Path) -> list[int]:
    pids: list[int] = []
    for directory, _, _ in os.walk(top):
        pids.extend(parse_int_list(_read(Path(directory) / "cgroup.procs") or ""))
    return pids
