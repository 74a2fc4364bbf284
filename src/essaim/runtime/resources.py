"""Cgroup resources of a container: device access, memory, CPU, cpuset and pids limits.

Validation follows Docker's rules and wording; values are converted to the OCI units.
"""

from essaim.errors import InvalidParameter

# Docker refuses memory limits below this: a container needs some room to start at all.
MIN_MEMORY = 6 * 1024 * 1024
# The CFS period Docker uses to express --cpus, in microseconds.
DEFAULT_CPU_PERIOD = 100_000
MIN_CPU_SHARES, MAX_CPU_SHARES = 2, 262_144

_RWM = "rwm"


def _char(major: int, minor: int | None, access: str = _RWM) -> dict[str, object]:
    rule: dict[str, object] = {"allow": True, "type": "c", "major": major}
    if minor is not None:  # no minor means every minor of that major
        rule["minor"] = minor
    rule["access"] = access
    return rule


def device_rules(*, privileged: bool) -> list[dict[str, object]]:
    """The devices cgroup: deny everything, then allow the few devices Docker allows."""
    if privileged:
        return [{"allow": True, "access": _RWM}]
    return [
        {"allow": False, "access": _RWM},
        # mknod of any device is harmless when opening it is denied.
        {"allow": True, "type": "c", "access": "m"},
        {"allow": True, "type": "b", "access": "m"},
        _char(1, 3),  # /dev/null
        _char(1, 5),  # /dev/zero
        _char(1, 7),  # /dev/full
        _char(1, 8),  # /dev/random
        _char(1, 9),  # /dev/urandom
        _char(5, 0),  # /dev/tty
        _char(5, 1),  # /dev/console
        _char(5, 2),  # /dev/ptmx
        _char(136, None),  # /dev/pts/*
    ]


def memory_limits(
    memory: int,
    memory_swap: int,
    *,
    swap_limit: bool,
    reservation: int = 0,
    oom_kill_disable: bool = False,
) -> dict[str, object]:
    """OCI `memory`: `limit` in bytes, `swap` as memory+swap (-1 unlimited), the soft
    limit (`reservation`) and the OOM killer switch, per Docker."""
    if reservation < 0:
        raise InvalidParameter("invalid memory reservation: must not be negative")
    if 0 < reservation < MIN_MEMORY:
        raise InvalidParameter("Minimum memory reservation allowed is 6MB")
    if memory > 0 and reservation > memory:
        raise InvalidParameter(
            "Minimum memory limit can not be less than memory reservation limit, see usage"
        )
    extra: dict[str, object] = {}
    if reservation:
        extra["reservation"] = reservation
    if oom_kill_disable:
        extra["disableOOMKiller"] = True
    if memory < 0:
        raise InvalidParameter("invalid memory limit: must not be negative")
    if memory_swap < -1:
        raise InvalidParameter("invalid memory swap limit: use -1 for unlimited swap")
    if memory == 0:
        if memory_swap > 0:
            raise InvalidParameter(
                "You should always set the Memory limit when using Memoryswap limit, see usage"
            )
        return extra
    if memory < MIN_MEMORY:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    if memory_swap > 0 and memory_swap < memory:
        raise InvalidParameter(
            "Minimum memoryswap limit should be larger than memory limit, see usage"
        )
    limits: dict[str, object] = {"limit": memory}
    if swap_limit:
        # Unset swap means "as much swap again as memory", Docker's default.
        limits["swap"] = memory_swap if memory_swap != 0 else 2 * memory
    return limits | extra


def parse_cpuset(text: str) -> set[int]:
    """A cpuset list as the kernel writes it ("0-2,4"); ValueError if malformed."""
    chosen: set[int] = set()
    for part in text.split(","):
        first, dash, last = part.partition("-")
        low = int(first)
        high = int(last) if dash else low
        if low < 0 or high < low:
            raise ValueError(part)
        chosen.update(range(low, high + 1))
    return chosen


def format_cpuset(cpus: set[int]) -> str:
    """The kernel's spelling of a cpuset: ranges joined by commas ("0-1,3")."""
    ranges: list[str] = []
    for cpu in sorted(cpus):
        if ranges and cpu - 1 in cpus:
            ranges[-1] = ranges[-1].split("-")[0] + f"-{cpu}"
        else:
            ranges.append(str(cpu))
    return ",".join(ranges)


def check_cpuset(value: str, available: set[int] | None, *, what: str) -> None:
    """Docker's 400s for --cpuset-cpus (`what` "cpus") or --cpuset-mems ("mems");
    `available` None checks the spelling only."""
    if not value:
        return
    try:
        requested = parse_cpuset(value)
    except ValueError:
        raise InvalidParameter(f"Invalid value {value} for cpuset {what}") from None
    if available is not None and not requested <= available:
        kind = "CPUs" if what == "cpus" else "memory nodes"
        raise InvalidParameter(
            f"Requested {kind} are not available - requested {value}, "
            f"available: {format_cpuset(available)}"
        )


def cpu_limits(
    *, nano_cpus: int, cpu_shares: int, cpu_quota: int, cpu_period: int, ncpu: int
) -> dict[str, object]:
    """OCI `cpu`: shares, and a CFS quota/period from --cpus or given directly."""
    if nano_cpus and cpu_period:
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano_cpus and cpu_quota:
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    cpu: dict[str, object] = {}
    if cpu_shares < 0:
        raise InvalidParameter(f"invalid CPU shares: {cpu_shares}")
    if cpu_shares:
        # The kernel clamps to this range too; Docker clamps (with a warning) before it.
        cpu["shares"] = min(max(cpu_shares, MIN_CPU_SHARES), MAX_CPU_SHARES)
    if nano_cpus:
        quota = nano_cpus * DEFAULT_CPU_PERIOD // 1_000_000_000
        # 0.01 CPU is a 1 ms quota, the smallest the kernel accepts.
        if nano_cpus < 0 or nano_cpus > ncpu * 1_000_000_000 or quota < 1000:
            raise InvalidParameter(
                f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
            )
        cpu["quota"] = quota
        cpu["period"] = DEFAULT_CPU_PERIOD
        return cpu
    if cpu_period:
        if not 1000 <= cpu_period <= 1_000_000:
            raise InvalidParameter(
                "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s "
                "(i.e. 1000000)"
            )
        cpu["period"] = cpu_period
    if cpu_quota:
        if 0 < cpu_quota < 1000:
            raise InvalidParameter("CPU cfs quota can not be less than 1ms (i.e. 1000)")
        cpu["quota"] = cpu_quota
    return cpu


def container_resources(
    *,
    privileged: bool,
    memory: int,
    memory_swap: int,
    swap_limit: bool,
    nano_cpus: int,
    cpu_shares: int,
    cpu_quota: int,
    cpu_period: int,
    ncpu: int,
    pids_limit: int,
    memory_reservation: int = 0,
    oom_kill_disable: bool = False,
    cpuset_cpus: str = "",
    cpuset_mems: str = "",
) -> dict[str, object]:
    """The OCI `linux.resources` object; absent limits are left out."""
    resources: dict[str, object] = {"devices": device_rules(privileged=privileged)}
    memory_section = memory_limits(
        memory, memory_swap, swap_limit=swap_limit,
        reservation=memory_reservation, oom_kill_disable=oom_kill_disable,
    )  # fmt: skip
    if memory_section:
        resources["memory"] = memory_section
    cpu_section = cpu_limits(
        nano_cpus=nano_cpus,
        cpu_shares=cpu_shares,
        cpu_quota=cpu_quota,
        cpu_period=cpu_period,
        ncpu=ncpu,
    )
    check_cpuset(cpuset_cpus, set(range(ncpu)), what="cpus")
    if cpuset_cpus:
        cpu_section["cpus"] = cpuset_cpus
    if cpuset_mems:
        # Memory nodes are not among the host facts; the kernel refuses a missing one.
        check_cpuset(cpuset_mems, None, what="mems")
        cpu_section["mems"] = cpuset_mems
    if cpu_section:
        resources["cpu"] = cpu_section
    # Docker treats 0 and -1 alike: no pids limit.
    if pids_limit > 0:
        resources["pids"] = {"limit": pids_limit}
    return resources
