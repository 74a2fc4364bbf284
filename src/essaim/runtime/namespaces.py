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


def container_namespaces(network: str | None, *, cgroup_version: int) -> list[dict[str, object]]:
    """OCI `linux.namespaces`. `network`: "" for a new one, None for the host's, or a path.

    On the cgroup v1 layout Docker shares the host's cgroup namespace; on v2 it gives
    each container its own, so /sys/fs/cgroup shows only the container's subtree.
    """
    namespaces: list[dict[str, object]] = [{"type": "pid"}]
    if network == "":
        namespaces.append({"type": "network"})
    elif network is not None:
        if not posixpath.isabs(network):
            raise InvalidParameter(f"invalid network namespace path: {network}")
        namespaces.append({"type": "network", "path": network})
    namespaces += [{"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]
    if cgroup_version == 2:
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
