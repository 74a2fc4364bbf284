"""`docker update`: new resources and restart policy for a container, checked as dockerd
checks them, recorded in its HostConfig, and applied at once to its cgroups if it runs.
"""

from __future__ import annotations

import msgspec

from essaim.engine.container_events import ContainerEvents
from essaim.engine.index import ContainerIndex
from essaim.engine.restart_policy import validate_restart_policy
from essaim.errors import Conflict, InvalidParameter, SystemError_
from essaim.model.container import DEAD, PAUSED, REMOVING, RUNNING, HostConfig, RestartPolicy
from essaim.runtime.base import RuntimeError_
from essaim.runtime.registry import Runtimes
from essaim.runtime.resources import DEFAULT_CPU_PERIOD, MIN_MEMORY, check_cpuset, cpu_limits


class ResourceUpdate(msgspec.Struct, kw_only=True):
    """What the client asked to change; zero (or None) leaves a value as it is."""

    memory: int = 0
    memory_swap: int = 0
    memory_reservation: int = 0
    nano_cpus: int = 0
    cpu_shares: int = 0
    cpu_quota: int = 0
    cpu_period: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    pids_limit: int | None = None  # 0 or less: no limit
    restart_policy: RestartPolicy | None = None


def check_update(update: ResourceUpdate, *, ncpu: int) -> None:
    """dockerd's verifyContainerSettings on the request alone: its 400s, unprefixed."""
    if update.memory < 0 or update.memory_reservation < 0:
        raise InvalidParameter("invalid memory limit: must not be negative")
    if update.memory_swap < -1:
        raise InvalidParameter("invalid memory swap limit: use -1 for unlimited swap")
    if update.memory and update.memory < MIN_MEMORY:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    if update.memory > 0 and 0 < update.memory_swap < update.memory:
        raise InvalidParameter(
            "Minimum memoryswap limit should be larger than memory limit, see usage"
        )
    if 0 < update.memory_reservation < MIN_MEMORY:
        raise InvalidParameter("Minimum memory reservation allowed is 6MB")
    if update.memory > 0 and update.memory_reservation > update.memory:
        raise InvalidParameter(
            "Minimum memory limit can not be less than memory reservation limit, see usage"
        )
    cpu_limits(
        nano_cpus=update.nano_cpus, cpu_shares=update.cpu_shares,
        cpu_quota=update.cpu_quota, cpu_period=update.cpu_period, ncpu=ncpu,
    )  # fmt: skip
    check_cpuset(update.cpuset_cpus, set(range(ncpu)), what="cpus")
    check_cpuset(update.cpuset_mems, None, what="mems")
    if update.restart_policy is not None:
        validate_restart_policy(update.restart_policy, auto_remove=False)


def _cannot_update(cid: str, reason: str) -> str:
    return f"Cannot update container {cid}: {reason}"


def _cpu_conflict(host: HostConfig, update: ResourceUpdate) -> str:
    """--cpus sets quota and period itself: neither joins the other once recorded."""
    if update.nano_cpus > 0 and host.cpu_period > 0:
        return "Nano CPUs cannot be updated as CPU Period"
    if update.nano_cpus > 0 and host.cpu_quota > 0:
        return "Nano CPUs cannot be updated as CPU Quota"
    if update.cpu_period > 0 and host.nano_cpus > 0:
        return "CPU Period cannot be updated as NanoCPUs"
    if update.cpu_quota > 0 and host.nano_cpus > 0:
        return "CPU Quota cannot be updated as NanoCPUs"
    return ""


def updated_host_config(host: HostConfig, update: ResourceUpdate, cid: str) -> HostConfig:
    """moby's UpdateContainer: a copy of `host` with the update merged in. Quota and
    period cannot join a --cpus already set, nor --cpus a quota or period; a memory limit
    above the recorded memory+swap needs a new memory+swap with it."""

    # dockerd's conflictingUpdateOptions: a 409, not a 400.
    def refuse(reason: str) -> Conflict:
        return Conflict(_cannot_update(cid, reason))

    conflict = _cpu_conflict(host, update)
    if conflict:
        raise refuse(f"Conflicting options: {conflict} has already been set")
    # Compared as dockerd does, even with an unlimited (-1) or unset (0) memory+swap.
    if update.memory and update.memory > host.memory_swap and update.memory_swap == 0:
        raise refuse(
            "Memory limit should be smaller than already set memoryswap limit, "
            "update the memoryswap at the same time"
        )
    policy = update.restart_policy
    if policy is not None and host.auto_remove and policy.name not in ("", "no"):
        raise refuse(
            "Restart policy cannot be updated because AutoRemove is enabled for the container"
        )
    new = msgspec.json.decode(msgspec.json.encode(host), type=HostConfig)
    for name in (
        "memory", "memory_swap", "memory_reservation", "nano_cpus", "cpu_shares",
        "cpu_quota", "cpu_period", "cpuset_cpus", "cpuset_mems",
    ):  # fmt: skip
        value = getattr(update, name)
        if value:
            setattr(new, name, value)
    if update.pids_limit is not None:
        new.pids_limit = max(update.pids_limit, 0)
    if policy is not None:
        new.restart_policy = RestartPolicy(policy.name, policy.maximum_retry_count)
    return new


def live_resources(update: ResourceUpdate) -> dict[str, object]:
    """The OCI `linux.resources` fields for `runc update`: only what the request names,
    as dockerd hands containerd the request's resources, not the merged ones."""
    memory: dict[str, object] = {}
    if update.memory:
        memory["limit"] = update.memory
    if update.memory_swap:
        memory["swap"] = update.memory_swap
    if update.memory_reservation:
        memory["reservation"] = update.memory_reservation
    cpu: dict[str, object] = {}
    if update.cpu_shares:
        cpu["shares"] = update.cpu_shares
    if update.nano_cpus:
        cpu["quota"] = update.nano_cpus * DEFAULT_CPU_PERIOD // 1_000_000_000
        cpu["period"] = DEFAULT_CPU_PERIOD
    if update.cpu_quota:
        cpu["quota"] = update.cpu_quota
    if update.cpu_period:
        cpu["period"] = update.cpu_period
    if update.cpuset_cpus:
        cpu["cpus"] = update.cpuset_cpus
    if update.cpuset_mems:
        cpu["mems"] = update.cpuset_mems
    resources: dict[str, object] = {}
    if memory:
        resources["memory"] = memory
    if cpu:
        resources["cpu"] = cpu
    if update.pids_limit is not None:
        # runc needs -1 to lift a limit; 0 would leave the old one in place.
        resources["pids"] = {"limit": update.pids_limit if update.pids_limit > 0 else -1}
    return resources


class ContainerUpdater:
    def __init__(
        self, *, index: ContainerIndex, runtimes: Runtimes, events: ContainerEvents, ncpu: int
    ) -> None:
        self.index = index
        self.runtimes = runtimes
        self.events = events
        self.ncpu = ncpu

    async def update(self, ref: str, update: ResourceUpdate) -> list[str]:
        """Record and apply `update`; the warnings dockerd would give (none so far).
        A runtime that refuses the new limits leaves the record as it was."""
        check_update(update, ncpu=self.ncpu)
        container = self.index.get(ref)
        cid = container.id
        async with self.index.lock(cid):
            if container.state.status in (REMOVING, DEAD):
                raise Conflict(
                    _cannot_update(cid, 'container is marked for removal and cannot be "update"')
                )
            before = container.host_config
            container.host_config = updated_host_config(before, update, cid)
            await self.index.save(container)
            resources = live_resources(update)
            # A stopped or restarting container takes its new limits at its next start.
            if resources and container.state.status in (RUNNING, PAUSED):
                try:
                    await self.runtimes.get(container.runtime).update(cid, resources)
                except RuntimeError_ as exc:
                    container.host_config = before
                    await self.index.save(container)
                    raise SystemError_(_cannot_update(cid, exc.message)) from None
        self.events.publish(container, "update")
        return []
