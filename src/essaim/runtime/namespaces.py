"""The namespaces a container gets, and the sysctls those namespaces make safe to set.

A sysctl is only per-container when its kernel namespace is the container's own.
"""

import posixpath

from essaim.errors import InvalidParameter

# IPC-namespaced sysctls (besides the fs.mqueue.* family).
_IPC_SYSCTLS = frozenset(
    {
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    }
)
_UTS_SYSCTLS = frozenset({"kernel.domainname", "kernel.hostname"})


def _namespace(kind: str, where: str | None) -> list[dict[str, object]]:
    """`where`: "" for a new namespace, None for the host's (none listed), or a path to join."""
    if where is None:
        return []
    if where == "":
        return [{"type": kind}]
    if not posixpath.isabs(where):
        raise InvalidParameter(f"invalid {kind} namespace path: {where}")
    return [{"type": kind, "path": where}]


def container_namespaces(
    network: str | None,
    *,
    cgroup_version: int,
    pid: str | None = "",
    ipc: str | None = "",
    uts: str | None = "",
    cgroup: bool | None = None,
) -> list[dict[str, object]]:
    """OCI `linux.namespaces`. `network`, `pid`, `ipc`, `uts`: "" for a new one, None for
    the host's, or a path to join.

    `cgroup` None is Docker's default: on the cgroup v1 layout it shares the host's cgroup
    namespace; on v2 it gives each container its own, so /sys/fs/cgroup shows only the
    container's subtree.
    """
    namespaces = _namespace("pid", pid) + _namespace("network", network)
    namespaces += _namespace("ipc", ipc) + _namespace("uts", uts) + [{"type": "mount"}]
    own_cgroup = cgroup_version == 2 if cgroup is None else cgroup
    if own_cgroup:
        namespaces.append({"type": "cgroup"})
    return namespaces


def check_sysctls(sysctls: dict[str, str], *, host_network: bool) -> dict[str, str]:
    """The sysctls to set, after refusing those that would change the whole host."""
    for key in sysctls:
        name = key.replace("/", ".")
        if name in _IPC_SYSCTLS or name.startswith("fs.mqueue.") or name in _UTS_SYSCTLS:
            continue
        if name.startswith("net."):
            if host_network:
                raise InvalidParameter(f'sysctl "{key}" not allowed in host network namespace')
            continue
        raise InvalidParameter(f'sysctl "{key}" is not in a separate kernel namespace')
    return dict(sysctls)
