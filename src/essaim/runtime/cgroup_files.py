"""The text formats of cgroup v1 and v2 files, parsed without touching the disk:
flat keyed files (memory.stat, cpu.stat), blkio and io.stat tables, `max` limits.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BlkioEntry:
    """One device's count for one operation, as Docker's `blkio_stats` lists them."""

    major: int
    minor: int
    op: str
    value: int


def parse_flat_keyed(text: str) -> dict[str, int]:
    """`key value` lines (memory.stat, cpu.stat, cpuacct.stat); lines that are not a
    key and an integer are skipped, so a kernel adding odd keys breaks nothing."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 2:
            continue
        try:
            out[fields[0]] = int(fields[1])
        except ValueError:
            continue
    return out


def parse_int(text: str) -> int | None:
    """A single number (memory.current); `max` or anything else unparsable is None."""
    try:
        return int(text.strip())
    except ValueError:
        return None


def parse_int_list(text: str) -> list[int]:
    """Space-separated numbers (cpuacct.usage_percpu)."""
    out = []
    for field in text.split():
        try:
            out.append(int(field))
        except ValueError:
            continue
    return out


def parse_blkio_v1(text: str) -> list[BlkioEntry]:
    """blkio.*_recursive: `8:0 Read 4096` lines and a closing `Total N` line (dropped,
    as moby drops it: it sums every device)."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 3:
            continue
        device, op, value = fields
        major, _, minor = device.partition(":")
        try:
            out.append(BlkioEntry(int(major), int(minor), op, int(value)))
        except ValueError:
            continue
    return out


# io.stat keys and the op names moby gives them for cgroup v2.
_IO_BYTES = {"rbytes": "read", "wbytes": "write"}
_IO_OPS = {"rios": "read", "wios": "write"}


def parse_io_stat(text: str) -> tuple[list[BlkioEntry], list[BlkioEntry]]:
    """cgroup v2 io.stat (`8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0`):
    the bytes and the operations per device, named as moby names them."""
    service_bytes: list[BlkioEntry] = []
    serviced: list[BlkioEntry] = []
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        major, _, minor = fields[0].partition(":")
        if not (major.isdigit() and minor.isdigit()):
            continue
        for item in fields[1:]:
            key, _, raw = item.partition("=")
            if not raw.isdigit():
                continue
            if key in _IO_BYTES:
                service_bytes.append(BlkioEntry(int(major), int(minor), _IO_BYTES[key], int(raw)))
            elif key in _IO_OPS:
                serviced.append(BlkioEntry(int(major), int(minor), _IO_OPS[key], int(raw)))
    return service_bytes, serviced


def parse_proc_cgroup(text: str) -> list[tuple[int, list[str], str]]:
    """/proc/<pid>/cgroup: (hierarchy id, controllers, path) per line; the v2 line has
    id 0 and no controllers; named v1 hierarchies (`name=systemd`) come as they are."""
    out = []
    for line in text.splitlines():
        hierarchy, sep, rest = line.partition(":")
        controllers, sep2, path = rest.partition(":")
        if not (sep and sep2) or not hierarchy.isdigit():
            continue
        names = [c for c in controllers.split(",") if c]
        out.append((int(hierarchy), names, path))
    return out
