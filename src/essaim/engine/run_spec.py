"""The RunSpec of one run of a container: its record translated for the OCI config
builder, with the network namespace its `--network` mode asks for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from essaim.engine.hostfiles import host_file_mounts
from essaim.engine.image_defaults import merge_env
from essaim.engine.namespace_modes import namespace_paths
from essaim.engine.network_mode import CONTAINER, HOST, parse_network_mode
from essaim.errors import Conflict
from essaim.model.container import PAUSED, RUNNING, Container
from essaim.runtime.init_binary import init_args, init_binary, init_mount
from essaim.runtime.mounts import DEFAULT_SHM_SIZE, bind_mount
from essaim.runtime.rlimits import Ulimit
from essaim.runtime.spec import RunSpec
from essaim.volume.oci import mounted_destinations, oci_mounts


def run_spec(
    container: Container,
    rootfs: Path,
    *,
    containers_root: Path,
    cgroup_parent: str,
    lookup: Callable[[str], Container],
    mount_sources: Mapping[str, str] | None = None,
    network_namespace: str | None = None,
    link_env: list[str] | None = None,
) -> RunSpec:
    """`containers_root` holds each container's directory (for the host files it
    bind-mounts); `lookup` finds the container a `container:<x>` network mode names;
    `mount_sources` are where its volume subpaths are mounted for this run;
    `network_namespace` the sandbox made for it (None: a new, empty one); `link_env` the
    variables its legacy links define, which its own environment overrides."""
    config, host = container.config, container.host_config
    files_dir = containers_root / container.id
    network = parse_network_mode(host.network_mode)
    namespace: str | None = network_namespace or ""  # "": a new one
    if network.kind == HOST:
        namespace = None
    elif network.kind == CONTAINER:
        other = lookup(network.container)
        if other.state.status not in (RUNNING, PAUSED) or other.state.pid <= 0:
            raise Conflict(f"cannot join network of a non running container: {other.id}")
        namespace = f"/proc/{other.state.pid}/ns/net"
        files_dir = containers_root / other.id  # its names and resolvers too
    # The user's binds, volumes and tmpfs; a host file they cover is left out.
    user_mounts = oci_mounts(container.mount_points, host.tmpfs, mount_sources)
    covered = mounted_destinations(container.mount_points, host.tmpfs)
    mounts = [
        bind_mount(src, dest) for src, dest in host_file_mounts(files_dir) if dest not in covered
    ]
    mounts += user_mounts
    shared = namespace_paths(host, lookup)
    mounts += shared.mounts
    rows, cols = host.console_size
    args = [container.path, *container.args]
    if host.init:
        # As dockerd: `/sbin/docker-init -- <command>`; inspect keeps Path and Args as asked.
        mounts.append(init_mount(init_binary()))
        args = init_args(args)
    return RunSpec(
        container_id=container.id,
        rootfs=str(rootfs),
        args=args,
        env=merge_env(link_env or [], config.env),
        cwd=config.working_dir or "/",
        user=config.user,
        tty=config.tty,
        open_stdin=config.open_stdin,
        hostname=config.hostname,
        network_namespace=namespace,
        console_size=(rows, cols) if config.tty and rows and cols else None,
        cgroups_path=f"/{cgroup_parent}/{container.id}",
        mounts=mounts,
        readonly_rootfs=host.readonly_rootfs,
        privileged=host.privileged,
        cap_add=host.cap_add,
        cap_drop=host.cap_drop,
        security_opt=host.security_opt,
        memory=host.memory,
        memory_swap=host.memory_swap,
        memory_reservation=host.memory_reservation,
        oom_kill_disable=host.oom_kill_disable,
        nano_cpus=host.nano_cpus,
        cpu_shares=host.cpu_shares,
        cpu_quota=host.cpu_quota,
        cpu_period=host.cpu_period,
        pids_limit=host.pids_limit,
        cpuset_cpus=host.cpuset_cpus,
        cpuset_mems=host.cpuset_mems,
        shm_size=host.shm_size or DEFAULT_SHM_SIZE,
        ulimits=[Ulimit(name=n, soft=s, hard=h) for n, s, h in host.ulimits],
        oom_score_adj=host.oom_score_adj,
        domainname=config.domainname,
        group_add=host.group_add or [],
        devices=host.devices or [],
        device_cgroup_rules=host.device_cgroup_rules or [],
        pid_namespace=shared.pid,
        ipc_namespace=shared.ipc,
        uts_namespace=shared.uts,
        cgroup_namespace=shared.cgroup,
    )
