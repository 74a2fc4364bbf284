"""`GET /containers/{id}/stats`: the engine's samples as Docker's stats JSON (the fields
the CLI computes CPU %, memory, network, block I/O and pids from), one per line.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from essaim.api.request import Request
from essaim.api.responses import AnyResponse, StreamResponse, json_lines
from essaim.api.router import Router
from essaim.engine.containers import ContainerService
from essaim.engine.stats import StatsReport, StatsSample, check_stats_options, reports
from essaim.model.container import Container
from essaim.model.rfc3339 import format_rfc3339_nano
from essaim.runtime.cgroup_files import BlkioEntry

ZERO_TIME = "0001-01-01T00:00:00Z"
_BLKIO_TABLES = (
    "io_service_bytes_recursive", "io_serviced_recursive", "io_queue_recursive",
    "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive",
    "io_time_recursive", "sectors_recursive",
)  # fmt: skip


def _blkio(entries: list[BlkioEntry]) -> list[dict[str, Any]] | None:
    rows = [{"major": e.major, "minor": e.minor, "op": e.op, "value": e.value} for e in entries]
    return rows or None


def cpu_wire(sample: StatsSample | None) -> dict[str, Any]:
    if sample is None:
        return {
            "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        }
    cpu = sample.cpu
    usage: dict[str, Any] = {"total_usage": cpu.total_ns}
    if cpu.percpu_ns:
        usage["percpu_usage"] = cpu.percpu_ns
    usage.update(usage_in_kernelmode=cpu.kernel_ns, usage_in_usermode=cpu.user_ns)
    return {
        "cpu_usage": usage,
        "system_cpu_usage": sample.system.usage_ns,
        "online_cpus": sample.system.online_cpus,
        "throttling_data": {
            "periods": cpu.periods,
            "throttled_periods": cpu.throttled_periods,
            "throttled_time": cpu.throttled_ns,
        },
    }


def _memory(sample: StatsSample) -> dict[str, Any]:
    memory = sample.memory
    wire: dict[str, Any] = {"usage": memory.usage}
    if memory.max_usage is not None:
        wire["max_usage"] = memory.max_usage
    wire["stats"] = memory.stats
    if memory.failcnt is not None:
        wire["failcnt"] = memory.failcnt
    wire["limit"] = sample.memory_limit
    return wire


def stats_wire(report: StatsReport) -> dict[str, Any]:
    """One message as moby encodes it: empty fields where there is nothing to say."""
    sample, previous = report.sample, report.previous
    wire: dict[str, Any] = {
        "read": format_rfc3339_nano(sample.read_ns) if sample else ZERO_TIME,
        "preread": format_rfc3339_nano(previous.read_ns) if previous else ZERO_TIME,
        "pids_stats": {},
        "blkio_stats": dict.fromkeys(_BLKIO_TABLES),
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_wire(sample),
        "precpu_stats": cpu_wire(previous),
        "memory_stats": {},
        "name": "/" + report.name,
        "id": report.container_id,
    }
    if sample is None:
        return wire
    pids: dict[str, Any] = {"current": sample.pids.current}
    if sample.pids.limit:
        pids["limit"] = sample.pids.limit
    wire["pids_stats"] = pids
    wire["blkio_stats"].update(
        io_service_bytes_recursive=_blkio(sample.blkio.service_bytes),
        io_serviced_recursive=_blkio(sample.blkio.serviced),
    )
    wire["memory_stats"] = _memory(sample)
    if sample.networks:
        # The counters' field names are Docker's.
        wire["networks"] = {name: asdict(c) for name, c in sorted(sample.networks.items())}
    return wire


class ContainerStatsAPI:
    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers

    def register(self, router: Router) -> None:
        router.get("/containers/{id}/stats", self.stats)

    async def stats(self, req: Request) -> AnyResponse:
        container = self.containers.get(req.params["id"])
        stream = req.query.get_bool("stream", True)
        one_shot = req.query.get_bool("one-shot")
        check_stats_options(stream=stream, one_shot=one_shot)
        cid = container.id
        index = self.containers.index

        def find() -> Container | None:
            return index.find(cid)

        async def messages() -> AsyncIterator[dict[str, Any]]:
            async for report in reports(find, stream=stream, one_shot=one_shot):
                yield stats_wire(report)

        return StreamResponse(json_lines(messages()))
