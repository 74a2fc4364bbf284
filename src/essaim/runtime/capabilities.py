"""Linux capabilities of a container process, with Docker's defaults and --cap-add/--cap-drop.

Names are the kernel's with the CAP_ prefix; "ALL" stands for every capability the host holds.
"""

from collections.abc import Collection, Iterable

from essaim.errors import InvalidParameter

# Indexed by capability number: position N is the capability whose bit is 1 << N.
KNOWN_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)

# Docker's default set, in Docker's order (clients compare `docker inspect` output).
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

ALL = "ALL"


def capabilities_from_mask(mask: int) -> frozenset[str]:
    """The names of the capabilities set in a /proc/<pid>/status style bit mask."""
    return frozenset(name for bit, name in enumerate(KNOWN_CAPABILITIES) if mask >> bit & 1)


def normalize_capabilities(names: Iterable[str]) -> list[str]:
    """Docker's spellings ("net_admin", "CAP_NET_ADMIN", "all") to canonical names, deduplicated."""
    normalized: list[str] = []
    for raw in names:
        name = raw.strip().upper()
        if name != ALL:
            if not name.startswith("CAP_"):
                name = "CAP_" + name
            if name not in KNOWN_CAPABILITIES:
                raise InvalidParameter(f'unknown capability: "{name}"')
        if name not in normalized:
            normalized.append(name)
    return normalized


def container_capabilities(
    cap_add: Iterable[str],
    cap_drop: Iterable[str],
    *,
    privileged: bool,
    available: Collection[str],
) -> list[str]:
    """The capability list of a container: Docker's defaults adjusted by add and drop.

    `available` is what the daemon itself holds (its bounding set): a process cannot hand
    out more than it has, and runc fails obscurely when asked to, so "ALL" and privileged
    mean "all we have", and an explicit add of something we lack is refused up front.
    """
    adds = normalize_capabilities(cap_add)
    drops = normalize_capabilities(cap_drop)
    everything = [name for name in KNOWN_CAPABILITIES if name in available]
    if privileged:
        return everything
    for name in adds:
        if name != ALL and name not in available:
            raise InvalidParameter(
                f"capability {name} cannot be added: the daemon does not hold it on this host"
            )
    if ALL in adds:
        return [name for name in everything if name not in drops]
    if ALL in drops:
        # Dropping everything keeps only what was explicitly added, as Docker does.
        return adds
    kept = [name for name in DEFAULT_CAPABILITIES if name not in drops and name in available]
    return kept + [name for name in adds if name not in kept]
