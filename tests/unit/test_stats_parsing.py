"""Parsers behind `docker stats`: cgroup v1 and v2 files, /proc/<pid>/cgroup,
/proc/stat and /proc/net/dev; and the reading of a whole cgroup laid out on disk.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from essaim.runtime.cgroup_files import (
    BlkioEntry,
    parse_blkio_v1,
    parse_flat_keyed,
    parse_int,
    parse_io_stat,
    parse_proc_cgroup,
)  # fmt: skip
from essaim.runtime.cgroups import ProcessCgroups
from essaim.runtime.procfs import parse_net_dev, parse_proc_stat

pytestmark = pytest.mark.unit

TICKS = os.sysconf("SC_CLK_TCK")


def test_flat_keyed_skips_odd_lines() -> None:
    text = "cache 4096\nrss 8192\n\nodd line here\nbad x\n"
    assert parse_flat_keyed(text) == {"cache": 4096, "rss": 8192}


def test_single_values_and_max() -> None:
    assert parse_int("1048576\n") == 1048576
    assert parse_int("max\n") is None


def test_blkio_v1_drops_the_total() -> None:
    text = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:16 Read 1\nTotal 12289\n"
    assert parse_blkio_v1(text) == [
        BlkioEntry(8, 0, "Read", 4096),
        BlkioEntry(8, 0, "Write", 8192),
        BlkioEntry(8, 0, "Sync", 0),
        BlkioEntry(8, 16, "Read", 1),
    ]
    assert parse_blkio_v1("Total 0\n") == []


def test_io_stat_v2_named_as_moby() -> None:
    text = "8:0 rbytes=4096 wbytes=512 rios=2 wios=1 dbytes=0 dios=0\n"
    service_bytes, serviced = parse_io_stat(text)
    assert service_bytes == [BlkioEntry(8, 0, "read", 4096), BlkioEntry(8, 0, "write", 512)]
    assert serviced == [BlkioEntry(8, 0, "read", 2), BlkioEntry(8, 0, "write", 1)]


def test_proc_cgroup_hybrid() -> None:
    text = "9:name=systemd:/x\n4:memory:/essaim/abc\n2:cpu,cpuacct:/essaim/abc\n0::/essaim/abc\n"
    assert parse_proc_cgroup(text) == [
        (9, ["name=systemd"], "/x"),
        (4, ["memory"], "/essaim/abc"),
        (2, ["cpu", "cpuacct"], "/essaim/abc"),
        (0, [], "/essaim/abc"),
    ]


def test_proc_stat_in_nanoseconds_with_online_cpus() -> None:
    text = (
        "cpu  100 0 50 1000 10 0 5 98 0 0\n"
        "cpu0 50 0 25 500 5 0 3 49 0 0\n"
        "cpu1 50 0 25 500 5 0 2 49 0 0\n"
        "intr 12345\n"
    )
    system = parse_proc_stat(text)
    # user..softirq; steal (98) is left out as moby leaves it out.
    assert system.usage_ns == (100 + 50 + 1000 + 10 + 5) * 1_000_000_000 // TICKS
    assert system.online_cpus == 2


def test_net_dev() -> None:
    text = (
        "Inter-|   Receive                                                |  Transmit\n"
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets"
        " errs drop fifo colls carrier compressed\n"
        "    lo:  171527     505    0    0    0     0          0         0   171527     505"
        "    0    0    0     0       0          0\n"
        "  eth0:1000 10 1 2 0 0 0 0 2000 20 3 4 0 0 0 0\n"
    )
    counters = parse_net_dev(text)
    assert set(counters) == {"lo", "eth0"}
    eth0 = counters["eth0"]
    assert (eth0.rx_bytes, eth0.rx_packets, eth0.rx_errors, eth0.rx_dropped) == (1000, 10, 1, 2)
    assert (eth0.tx_bytes, eth0.tx_packets, eth0.tx_errors, eth0.tx_dropped) == (2000, 20, 3, 4)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_reads_a_v1_hierarchy(tmp_path: Path) -> None:
    for controller in ("cpu", "cpuacct", "memory", "pids", "blkio"):
        (tmp_path / controller).mkdir()
    (tmp_path / "unified").mkdir()
    group = "parent/cid"
    _write(tmp_path / "cpuacct" / group / "cpuacct.usage", "5000\n")
    _write(tmp_path / "cpuacct" / group / "cpuacct.usage_percpu", "2000 3000 \n")
    _write(tmp_path / "cpuacct" / group / "cpuacct.stat", f"user {TICKS}\nsystem {2 * TICKS}\n")
    _write(
        tmp_path / "cpu" / group / "cpu.stat", "nr_periods 3\nnr_throttled 1\nthrottled_time 7\n"
    )
    _write(tmp_path / "memory" / group / "memory.usage_in_bytes", "4096\n")
    _write(tmp_path / "memory" / group / "memory.max_usage_in_bytes", "8192\n")
    _write(tmp_path / "memory" / group / "memory.failcnt", "0\n")
    _write(
        tmp_path / "memory" / group / "memory.stat",
        "inactive_file 1024\ntotal_inactive_file 1024\nhierarchical_memory_limit 67108864\n",
    )
    _write(tmp_path / "pids" / group / "pids.current", "2\n")
    _write(tmp_path / "pids" / group / "pids.max", "max\n")
    _write(tmp_path / "pids" / group / "cgroup.procs", "10\n11\n")
    _write(tmp_path / "pids" / group / "sub" / "cgroup.procs", "12\n")
    _write(tmp_path / "blkio" / group / "blkio.io_service_bytes_recursive", "Total 0\n")
    _write(tmp_path / "blkio" / group / "blkio.throttle.io_service_bytes_recursive", "8:0 Read 9\n")
    proc = f"5:pids:/{group}\n4:memory:/{group}\n3:blkio:/{group}\n2:cpu,cpuacct:/{group}\n0::/\n"
    cgroups = ProcessCgroups.parse(proc, tmp_path)

    cpu = cgroups.cpu()
    assert (cpu.total_ns, cpu.percpu_ns) == (5000, [2000, 3000])
    assert (cpu.user_ns, cpu.kernel_ns) == (1_000_000_000, 2_000_000_000)
    assert (cpu.periods, cpu.throttled_periods, cpu.throttled_ns) == (3, 1, 7)
    memory = cgroups.memory()
    assert (memory.usage, memory.max_usage, memory.limit) == (4096, 8192, 67108864)
    assert memory.stats["total_inactive_file"] == 1024
    pids = cgroups.pids()
    assert (pids.current, pids.limit) == (2, None)
    assert sorted(cgroups.procs()) == [10, 11, 12]
    assert cgroups.blkio().service_bytes == [BlkioEntry(8, 0, "Read", 9)]


def test_reads_a_unified_hierarchy(tmp_path: Path) -> None:
    _write(tmp_path / "cgroup.controllers", "cpu memory pids io\n")
    group = tmp_path / "parent" / "cid"
    _write(group / "cpu.stat", "usage_usec 30\nuser_usec 10\nsystem_usec 20\nnr_periods 0\n")
    _write(group / "memory.current", "4096\n")
    _write(group / "memory.max", "max\n")
    _write(group / "memory.stat", "anon 2048\ninactive_file 512\n")
    _write(group / "pids.current", "1\n")
    _write(group / "pids.max", "100\n")
    _write(group / "io.stat", "8:0 rbytes=1 wbytes=2 rios=3 wios=4\n")
    _write(group / "cgroup.procs", "42\n")
    cgroups = ProcessCgroups.parse("0::/parent/cid\n", tmp_path)

    cpu = cgroups.cpu()
    assert (cpu.total_ns, cpu.user_ns, cpu.kernel_ns, cpu.percpu_ns) == (30000, 10000, 20000, [])
    memory = cgroups.memory()
    assert (memory.usage, memory.limit, memory.max_usage) == (4096, None, None)
    assert memory.stats["inactive_file"] == 512
    assert (cgroups.pids().current, cgroups.pids().limit) == (1, 100)
    assert cgroups.blkio().service_bytes[0] == BlkioEntry(8, 0, "read", 1)
    assert cgroups.procs() == [42]
