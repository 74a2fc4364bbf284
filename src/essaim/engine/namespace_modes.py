"""`--ipc`, `--pid`, `--uts` and `--cgroupns` as the namespaces a run joins: a new one, the
host's (with its /dev/shm, for IPC), or another running container's, as dockerd's WithNamespaces.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from essaim.errors import Conflict
from essaim.model.container import PAUSED, RUNNING, Container, HostConfig
from essaim.runtime.mounts import Mount, bind_mount

HOST = "host"
CONTAINER_PREFIX = "container:"


@dataclass(frozen=True)
class SharedNamespaces:
    """ "" for a new namespace, None for the host's, else the path of one to join."""

    pid: str | None = ""
    ipc: str | None = ""
    uts: str | None = ""
    cgroup: bool | None = None  # None: Docker's default for the host's cgroup version
    mounts: list[Mount] = field(default_factory=list)


def _running_pid(ref: str, lookup: Callable[[str], Container]) -> int:
    other = lookup(ref)
    if other.state.status not in (RUNNING, PAUSED) or other.state.pid <= 0:
        raise Conflict(f"container {other.id} is not running")
    return other.state.pid


def namespace_paths(host: HostConfig, lookup: Callable[[str], Container]) -> SharedNamespaces:
    pid: str | None = ""
    if host.pid_mode == HOST:
        pid = None
    elif host.pid_mode.startswith(CONTAINER_PREFIX):
        pid = f"/proc/{_running_pid(host.pid_mode.removeprefix(CONTAINER_PREFIX), lookup)}/ns/pid"
    ipc: str | None = ""
    mounts: list[Mount] = []
    if host.ipc_mode == HOST:
        # The host's IPC objects, shared memory included.
        ipc = None
        mounts.append(bind_mount("/dev/shm", "/dev/shm"))
    elif host.ipc_mode.startswith(CONTAINER_PREFIX):
        # SysV IPC is shared; the other one's /dev/shm is not: it is a mount in another
        # mount namespace, which cannot be bound from here (dockerd mounts a shareable
        # container's shm on the host to share it; essaim does not yet).
        other = _running_pid(host.ipc_mode.removeprefix(CONTAINER_PREFIX), lookup)
        ipc = f"/proc/{other}/ns/ipc"
    cgroup = {HOST: False, "private": True}.get(host.cgroupns_mode)
    return SharedNamespaces(
        pid=pid, ipc=ipc, uts=None if host.uts_mode == HOST else "", cgroup=cgroup, mounts=mounts
    )
