"""`docker stats`: samples of a container's cgroups, host CPU time and network counters,
each paired with the one before it so that clients can compute rates (CPU %).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from essaim.engine.network_mode import HOST, parse_network_mode
from essaim.engine.system import host_info
from essaim.errors import InvalidParameter
from essaim.model.container import PAUSED, RUNNING, Container
from essaim.runtime.cgroups import BlkioUsage, CpuUsage, MemoryUsage, PidsUsage, ProcessCgroups
from essaim.runtime.procfs import InterfaceCounters, SystemCpu, namespace_interfaces, system_cpu

# moby's stats collector samples once a second.
INTERVAL = 1.0


@dataclass(frozen=True)
class StatsSample:
    """One reading of a running container."""

    read_ns: int  # wall clock, Unix nanoseconds
    cpu: CpuUsage
    system: SystemCpu
    memory: MemoryUsage
    memory_limit: int  # the container's own, or the host's memory when it has none
    pids: PidsUsage
    blkio: BlkioUsage
    networks: dict[str, InterfaceCounters] | None  # None: the host's network (not shown)


@dataclass(frozen=True)
class StatsReport:
    """What one stats message says: `sample` is None for a container not running."""

    container_id: str
    name: str
    sample: StatsSample | None
    previous: StatsSample | None = None


def sample(container: Container) -> StatsSample | None:
    """Read the container's figures now; None if it is not running (or just ended)."""
    state = container.state
    if state.status not in (RUNNING, PAUSED) or state.pid <= 0:
        return None
    cgroups = ProcessCgroups.of_pid(state.pid)
    if cgroups is None:
        return None
    memory = cgroups.memory()
    machine = host_info().mem_total
    limit = memory.limit if memory.limit is not None else machine
    if machine > 0 and limit > machine:
        limit = machine
    host_network = parse_network_mode(container.host_config.network_mode).kind == HOST
    return StatsSample(
        read_ns=time.time_ns(),
        cpu=cgroups.cpu(),
        system=system_cpu(),
        memory=memory,
        memory_limit=limit,
        pids=cgroups.pids(),
        blkio=cgroups.blkio(),
        networks=None if host_network else namespace_interfaces(state.pid),
    )


def check_stats_options(*, stream: bool, one_shot: bool) -> None:
    if stream and one_shot:
        raise InvalidParameter("cannot have stream=true and one-shot=true")


async def reports(
    find: Callable[[], Container | None],
    *,
    stream: bool,
    one_shot: bool,
    interval: float = INTERVAL,
) -> AsyncIterator[StatsReport]:
    """As dockerd: one sample (`one_shot`), two a second apart with the second reported
    (neither flag: CPU % needs a previous sample), or one a second until the container
    is removed (`stream`). A container not running reports empty samples."""
    check_stats_options(stream=stream, one_shot=one_shot)
    previous: StatsSample | None = None
    first = True
    while True:
        container = find()
        if container is None:
            return
        current = sample(container)
        report = StatsReport(container.id, container.name, current, previous)
        previous = current
        if current is None and not stream:
            yield report
            return
        primed = stream or one_shot or not first
        first = False
        if primed:
            yield report
            if not stream:
                return
        await asyncio.sleep(interval)
