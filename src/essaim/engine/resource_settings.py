"""A container's cgroup resources as `create` settles them: refused with Docker's 400s
before anything is made, then given dockerd's defaults (swap twice the memory, 64 MiB shm).
"""

from __future__ import annotations

import os

from essaim.errors import InvalidParameter
from essaim.model.container import HostConfig
from essaim.runtime.mounts import DEFAULT_SHM_SIZE
from essaim.runtime.resources import container_resources


def host_cpus() -> int:
    return os.cpu_count() or 1


def check_resources(host: HostConfig, *, ncpu: int) -> None:
    """Docker's refusals for these resources, in its words (the OCI config would refuse
    them too, but only at start: dockerd refuses at create and at update)."""
    if host.shm_size < 0:
        raise InvalidParameter("SHM size can not be less than 0")
    container_resources(
        privileged=host.privileged, memory=host.memory, memory_swap=host.memory_swap,
        swap_limit=True, nano_cpus=host.nano_cpus, cpu_shares=host.cpu_shares,
        cpu_quota=host.cpu_quota, cpu_period=host.cpu_period, ncpu=ncpu,
        pids_limit=host.pids_limit, memory_reservation=host.memory_reservation,
        oom_kill_disable=host.oom_kill_disable, cpuset_cpus=host.cpuset_cpus,
        cpuset_mems=host.cpuset_mems,
    )  # fmt: skip


def settle_resources(host: HostConfig, *, ncpu: int | None = None) -> None:
    """Check `host`'s resources, then fill in what dockerd's adaptContainerSettings does,
    so that inspect and later updates see the same values as under Docker."""
    check_resources(host, ncpu=host_cpus() if ncpu is None else ncpu)
    if host.memory > 0 and host.memory_swap == 0:
        host.memory_swap = 2 * host.memory
    if host.shm_size == 0:
        host.shm_size = DEFAULT_SHM_SIZE
    # Zero and negative values both mean "no pids limit".
    host.pids_limit = max(host.pids_limit, 0)
