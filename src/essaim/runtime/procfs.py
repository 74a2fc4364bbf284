"""Host-wide CPU time from /proc/stat and a network namespace's interface counters from
/proc/<pid>/net/dev, in the units Docker's stats use (nanoseconds, bytes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

NANOS = 1_000_000_000
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class SystemCpu:
    """All CPUs' time since boot (user to softirq, as moby sums it) and the CPUs online."""

    usage_ns: int
    online_cpus: int


@dataclass(frozen=True)
class InterfaceCounters:
    rx_bytes: int
    rx_packets: int
    rx_errors: int
    rx_dropped: int
    tx_bytes: int
    tx_packets: int
    tx_errors: int
    tx_dropped: int


def parse_proc_stat(text: str) -> SystemCpu:
    usage_ns = 0
    online = 0
    for line in text.splitlines():
        fields = line.split()
        if not fields or not fields[0].startswith("cpu"):
            continue
        if fields[0] == "cpu":
            # user nice system idle iowait irq softirq; steal and guest are left out.
            ticks = sum(int(v) for v in fields[1:8] if v.isdigit())
            usage_ns = ticks * NANOS // _CLOCK_TICKS
        else:
            online += 1
    return SystemCpu(usage_ns=usage_ns, online_cpus=online)


def system_cpu() -> SystemCpu:
    try:
        return parse_proc_stat(Path("/proc/stat").read_text())
    except OSError:
        return SystemCpu(0, os.cpu_count() or 1)


def parse_net_dev(text: str) -> dict[str, InterfaceCounters]:
    """/proc/net/dev: two header lines, then `name: 8 receive and 8 transmit fields`."""
    out = {}
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        fields = rest.split()
        if not sep or len(fields) < 16 or not all(f.isdigit() for f in fields[:16]):
            continue
        rx, tx = [int(f) for f in fields[:8]], [int(f) for f in fields[8:16]]
        out[name.strip()] = InterfaceCounters(
            rx_bytes=rx[0], rx_packets=rx[1], rx_errors=rx[2], rx_dropped=rx[3],
            tx_bytes=tx[0], tx_packets=tx[1], tx_errors=tx[2], tx_dropped=tx[3],
        )  # fmt: skip
    return out


def namespace_interfaces(pid: int) -> dict[str, InterfaceCounters]:
    """The interfaces of `pid`'s network namespace, loopback left out (as Docker)."""
    try:
        text = Path(f"/proc/{pid}/net/dev").read_text()
    except OSError:
        return {}
    counters = parse_net_dev(text)
    counters.pop("lo", None)
    return counters
