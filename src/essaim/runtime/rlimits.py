"""Process rlimits of a container: a safe RLIMIT_NOFILE default plus the user's --ulimit values.

Every value stays within the daemon's own hard limits, which runc cannot raise without
CAP_SYS_RESOURCE; a request above them is refused here with a clear message.
"""

import msgspec

from essaim.errors import InvalidParameter
from essaim.runtime.host import RLIM_UNLIMITED, RLIMIT_NUMBERS, HostFacts

# The soft open-files limit most software expects (select() breaks above 1024).
DEFAULT_NOFILE_SOFT = 1024


class Ulimit(msgspec.Struct, frozen=True):
    """One --ulimit: Docker's name ("nofile") and limits; -1 means unlimited."""

    name: str
    soft: int
    hard: int


def _oci_value(value: int) -> int:
    return RLIM_UNLIMITED if value < 0 else value


def _check(ulimit: Ulimit, host: HostFacts) -> tuple[int, int]:
    if ulimit.name not in RLIMIT_NUMBERS:
        raise InvalidParameter(f"invalid ulimit type: {ulimit.name}")
    soft, hard = _oci_value(ulimit.soft), _oci_value(ulimit.hard)
    if soft > hard:
        raise InvalidParameter(
            "ulimit soft limit must be less than or equal to hard limit: "
            f"{ulimit.soft} > {ulimit.hard}"
        )
    ceiling = host.rlimit_hard.get(ulimit.name, RLIM_UNLIMITED)
    if hard > ceiling:
        shown = "unlimited" if hard == RLIM_UNLIMITED else str(hard)
        raise InvalidParameter(
            f"ulimit {ulimit.name}: hard limit {shown} is above this host's hard limit {ceiling}"
        )
    return soft, hard


def container_rlimits(ulimits: list[Ulimit], host: HostFacts) -> list[dict[str, object]]:
    """The OCI `process.rlimits` list: the defaults, each replaced by a --ulimit of its name."""
    chosen: dict[str, tuple[int, int]] = {
        "nofile": (min(DEFAULT_NOFILE_SOFT, host.nofile_hard), host.nofile_hard),
    }
    for ulimit in ulimits:
        chosen[ulimit.name] = _check(ulimit, host)
    return [
        {"type": f"RLIMIT_{name.upper()}", "hard": hard, "soft": soft}
        for name, (soft, hard) in chosen.items()
    ]
