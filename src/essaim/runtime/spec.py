"""The OCI runtime config (config.json) of one container, built from a typed `RunSpec`.

Defaults follow Docker's so that containers behave as they do under dockerd, within what
this host allows (`HostFacts`). Only user lookup touches the disk (the rootfs's passwd).
"""

import posixpath
from pathlib import Path

import msgspec

from essaim.errors import InvalidParameter
from essaim.model.device import DeviceMapping
from essaim.runtime.capabilities import container_capabilities
from essaim.runtime.devices import container_devices
from essaim.runtime.host import HostFacts
from essaim.runtime.mounts import DEFAULT_SHM_SIZE, Mount, container_mounts
from essaim.runtime.namespaces import check_sysctls, container_namespaces
from essaim.runtime.resources import container_resources
from essaim.runtime.rlimits import Ulimit, container_rlimits
from essaim.runtime.seccomp import default_profile, load_profile, resolve_profile
from essaim.runtime.security_opts import UNCONFINED, parse_security_opts
from essaim.runtime.users import resolve_user

# runc 1.1 speaks this version of the runtime spec.
OCI_VERSION = "1.0.2-dev"

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Docker hides these from containers: they leak host information or allow host-wide
# changes (keys, timers, firmware, power capping) that namespaces do not isolate.
MASKED_PATHS: tuple[str, ...] = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

OOM_SCORE_ADJ_MIN, OOM_SCORE_ADJ_MAX = -1000, 1000


class RunSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the OCI runtime needs to know about one container's main process."""

    container_id: str
    rootfs: str  # absolute path of the prepared root filesystem
    args: list[str]
    env: list[str] = []  # "K=V"; a bare "K" removes K from the defaults, as in Docker
    cwd: str = "/"
    user: str = ""  # Docker's --user: "", name, uid, uid:gid, name:group, uid:group
    group_add: list[str] = []
    tty: bool = False
    # Stdin is conmon's business; kept here so the whole process is described in one place.
    open_stdin: bool = False
    hostname: str = ""  # "" means the short container id, as Docker does
    console_size: tuple[int, int] | None = None  # (rows, cols), used with a tty
    cgroups_path: str = ""
    mounts: list[Mount] = []
    readonly_rootfs: bool = False
    privileged: bool = False
    cap_add: list[str] = []
    cap_drop: list[str] = []
    security_opt: list[str] = []
    # "" for a new network namespace, None to share the host's, or a namespace path to join.
    network_namespace: str | None = ""
    memory: int = 0  # bytes; 0 is no limit
    memory_swap: int = 0  # memory+swap bytes; 0 is twice memory, -1 unlimited
    memory_reservation: int = 0  # the soft limit; 0 is none
    oom_kill_disable: bool = False
    cpuset_cpus: str = ""  # "0-1,3"; "" is every CPU
    cpuset_mems: str = ""
    nano_cpus: int = 0
    cpu_shares: int = 0
    cpu_quota: int = 0
    cpu_period: int = 0
    pids_limit: int = 0  # 0 or -1: no limit
    ulimits: list[Ulimit] = []
    oom_score_adj: int = 0
    sysctls: dict[str, str] = {}
    shm_size: int = DEFAULT_SHM_SIZE
    domainname: str = ""  # the NIS domain name (`--domainname`)
    devices: list[DeviceMapping] = []  # --device
    device_cgroup_rules: list[str] = []  # --device-cgroup-rule
    # As `network_namespace`: "" for a new one, None for the host's, or a path to join.
    pid_namespace: str | None = ""
    ipc_namespace: str | None = ""
    uts_namespace: str | None = ""
    cgroup_namespace: bool | None = None  # None: Docker's default for the cgroup version


def container_env(env: list[str], *, hostname: str, tty: bool) -> list[str]:
    """Docker's defaults (PATH, HOSTNAME, TERM with a tty) overridden by the user's env."""
    merged: dict[str, str | None] = {
        "PATH": f"PATH={DEFAULT_PATH}",
        "HOSTNAME": f"HOSTNAME={hostname}",
    }
    if tty:
        merged["TERM"] = "TERM=xterm"
    for entry in env:
        key, has_value, _ = entry.partition("=")
        # Docker drops a bare "K": it unsets K rather than setting it empty.
        merged[key] = entry if has_value else None
    return [entry for entry in merged.values() if entry is not None]


def _validate(spec: RunSpec) -> None:
    if not spec.container_id:
        raise InvalidParameter("container id is required")
    if not posixpath.isabs(spec.rootfs):
        raise InvalidParameter(f"rootfs must be an absolute path: {spec.rootfs}")
    if not spec.args:
        raise InvalidParameter("No command specified")
    if spec.cwd and not posixpath.isabs(spec.cwd):
        raise InvalidParameter(
            f"the working directory '{spec.cwd}' is invalid, it needs to be an absolute path"
        )
    if not OOM_SCORE_ADJ_MIN <= spec.oom_score_adj <= OOM_SCORE_ADJ_MAX:
        raise InvalidParameter(
            f"Invalid value {spec.oom_score_adj}, range for oom score adj is [-1000, 1000]"
        )
    if spec.console_size is not None and min(spec.console_size) < 0:
        raise InvalidParameter("console size must not be negative")


def build_oci_config(spec: RunSpec, host: HostFacts) -> dict[str, object]:
    """The config.json for runc: validated first, so a bad spec changes nothing."""
    _validate(spec)
    security = parse_security_opts(spec.security_opt)
    capabilities = container_capabilities(
        spec.cap_add, spec.cap_drop, privileged=spec.privileged, available=host.capabilities
    )
    user = resolve_user(Path(spec.rootfs), spec.user, spec.group_add)
    hostname = spec.hostname or spec.container_id[:12]
    devices, device_rules = container_devices(
        spec.devices, spec.device_cgroup_rules, privileged=spec.privileged
    )

    # A non-root process loses its effective and permitted capabilities at execve anyway;
    # setting only the bounding set says so up front, as Docker does.
    granted = capabilities if user.uid == 0 else []
    process: dict[str, object] = {
        "terminal": spec.tty,
        "user": {"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids},
        "args": list(spec.args),
        "env": container_env(spec.env, hostname=hostname, tty=spec.tty),
        "cwd": spec.cwd or "/",
        "capabilities": {
            "bounding": capabilities,
            "effective": granted,
            "permitted": granted,
            # Empty since Docker 23: inheritable capabilities let file capabilities
            # regain privileges after exec (CVE-2022-24769).
            "inheritable": [],
            "ambient": [],
        },
        "rlimits": container_rlimits(spec.ulimits, host),
        "noNewPrivileges": security.no_new_privileges,
        "oomScoreAdj": spec.oom_score_adj,
    }
    if spec.tty and spec.console_size is not None:
        rows, cols = spec.console_size
        process["consoleSize"] = {"height": rows, "width": cols}

    resources = container_resources(
        privileged=spec.privileged,
        memory=spec.memory,
        memory_swap=spec.memory_swap,
        swap_limit=host.swap_limit,
        nano_cpus=spec.nano_cpus,
        cpu_shares=spec.cpu_shares,
        cpu_quota=spec.cpu_quota,
        cpu_period=spec.cpu_period,
        ncpu=host.ncpu,
        pids_limit=spec.pids_limit,
        memory_reservation=spec.memory_reservation,
        oom_kill_disable=spec.oom_kill_disable,
        cpuset_cpus=spec.cpuset_cpus,
        cpuset_mems=spec.cpuset_mems,
    )
    if device_rules:
        # The defaults (deny all, then Docker's few) first: later rules add to them.
        defaults = resources["devices"]
        assert isinstance(defaults, list)
        resources["devices"] = [*defaults, *device_rules]
    linux: dict[str, object] = {
        "namespaces": container_namespaces(
            spec.network_namespace,
            cgroup_version=host.cgroup_version,
            pid=spec.pid_namespace,
            ipc=spec.ipc_namespace,
            uts=spec.uts_namespace,
            cgroup=spec.cgroup_namespace,
        ),
        "resources": resources,
    }
    if devices:
        linux["devices"] = devices
    if spec.cgroups_path:
        linux["cgroupsPath"] = spec.cgroups_path
    sysctls = check_sysctls(spec.sysctls, host_network=spec.network_namespace is None)
    if spec.domainname and spec.uts_namespace == "":
        # No OCI field for the NIS domain name; this sysctl is setdomainname(2), as in moby.
        sysctls = {"kernel.domainname": spec.domainname, **sysctls}
    if sysctls:
        linux["sysctl"] = sysctls
    if not spec.privileged:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
        if security.seccomp == "":
            linux["seccomp"] = default_profile(
                capabilities, host.arch, host.kernel, missing_abis=host.missing_abis
            )
        elif security.seccomp != UNCONFINED:
            profile = load_profile(security.seccomp)
            linux["seccomp"] = resolve_profile(
                profile, capabilities, host.arch, host.kernel, missing_abis=host.missing_abis
            )

    config: dict[str, object] = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": spec.rootfs, "readonly": spec.readonly_rootfs},
        "hostname": hostname,
        "mounts": container_mounts(
            spec.mounts,
            privileged=spec.privileged,
            readonly_rootfs=spec.readonly_rootfs,
            shm_size=spec.shm_size,
        ),
        "linux": linux,
    }
    if spec.uts_namespace is not None:
        return config
    # runc refuses to set a hostname in the host's UTS namespace (`--uts host`).
    del config["hostname"]
    return config
