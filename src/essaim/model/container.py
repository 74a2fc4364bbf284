"""The container as essaim models it: its configuration (what was asked at create)
and its state machine (created -> running -> exited, restarting, removing, dead).
"""

from __future__ import annotations

import msgspec

from essaim.model.device import DeviceMapping
from essaim.model.health import HealthState
from essaim.model.image import HealthConfig
from essaim.model.mount import MountPoint, MountSpec
from essaim.model.network import EndpointConfig, NetworkState
from essaim.model.ports import PortBinding

# Docker's status words, as `docker ps` filters and `State.Status` use them.
CREATED = "created"
RUNNING = "running"
PAUSED = "paused"
RESTARTING = "restarting"
REMOVING = "removing"
EXITED = "exited"
DEAD = "dead"
STATUSES = (CREATED, RUNNING, PAUSED, RESTARTING, REMOVING, EXITED, DEAD)


class RestartPolicy(msgspec.Struct):
    name: str = "no"  # no | always | unless-stopped | on-failure
    maximum_retry_count: int = 0


class ContainerConfig(msgspec.Struct):
    """What the client asked for at create, merged with the image's defaults."""

    image: str  # as the client typed it
    cmd: list[str] = []
    entrypoint: list[str] = []
    env: list[str] = []
    working_dir: str = ""
    user: str = ""
    hostname: str = ""
    domainname: str = ""
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    labels: dict[str, str] = {}
    stop_signal: str = ""
    stop_timeout: int | None = None
    exposed_ports: list[str] = []
    volumes: list[str] = []
    # None: the image's; a test of ["NONE"]: none (--no-healthcheck).
    healthcheck: HealthConfig | None = None


class HostConfig(msgspec.Struct):
    auto_remove: bool = False
    restart_policy: RestartPolicy = msgspec.field(default_factory=RestartPolicy)
    console_size: tuple[int, int] = (0, 0)
    runtime: str = ""
    network_mode: str = "default"
    privileged: bool = False
    readonly_rootfs: bool = False
    cap_add: list[str] = []
    cap_drop: list[str] = []
    security_opt: list[str] = []
    memory: int = 0
    memory_swap: int = 0
    memory_reservation: int = 0
    oom_kill_disable: bool = False
    nano_cpus: int = 0
    cpu_shares: int = 0
    cpu_quota: int = 0
    cpu_period: int = 0
    pids_limit: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    shm_size: int = 0  # bytes; 0 is Docker's default, 64 MiB
    ulimits: list[tuple[str, int, int]] = []
    binds: list[str] = []
    mounts: list[MountSpec] = []  # --mount
    tmpfs: dict[str, str] = {}  # --tmpfs destination -> options
    volumes_from: list[str] = []
    volume_driver: str = ""
    init: bool = False
    oom_score_adj: int = 0
    log_type: str = "json-file"
    port_bindings: dict[str, list[PortBinding]] = {}  # `-p`, keyed `80/tcp`, as given
    publish_all_ports: bool = False  # `-P`
    # Identity and security. None and [] differ: inspect returns what the client sent.
    devices: list[DeviceMapping] | None = None
    device_cgroup_rules: list[str] | None = None
    group_add: list[str] | None = None
    extra_hosts: list[str] | None = None  # "name:ip", as the CLI sends them
    links: list[str] | None = None  # --link "name:alias" (legacy, default bridge)
    dns: list[str] | None = None
    dns_search: list[str] | None = None
    dns_options: list[str] | None = None
    # Namespace modes: "" (dockerd fills its default at create), private, host, container:<id>...
    ipc_mode: str = ""
    pid_mode: str = ""
    uts_mode: str = ""
    cgroupns_mode: str = ""
    userns_mode: str = ""
    log_options: dict[str, str] = {}  # `HostConfig.LogConfig.Config`, as given


class ContainerState(msgspec.Struct):
    status: str = CREATED
    pid: int = 0
    conmon_pid: int = 0
    exit_code: int = 0
    error: str = ""
    oom_killed: bool = False
    started_at: str = "0001-01-01T00:00:00Z"
    finished_at: str = "0001-01-01T00:00:00Z"
    restart_count: int = 0
    # Set by stop/kill so a restart policy does not revive a container the user stopped.
    stopped_by_user: bool = False
    # Only for containers with a health check; reset at each start.
    health: HealthState | None = None

    @property
    def running(self) -> bool:
        return self.status in (RUNNING, PAUSED, RESTARTING)


class Container(msgspec.Struct):
    id: str
    name: str  # without the leading slash
    created: str  # RFC 3339 with nanoseconds
    image_id: str
    config: ContainerConfig
    host_config: HostConfig
    path: str  # the program (args[0])
    args: list[str]
    state: ContainerState = msgspec.field(default_factory=ContainerState)
    driver: str = "overlay2"
    runtime: str = "runc"
    # What the root filesystem stacks, recorded at create so the container still starts
    # once `rmi -f` took its image: the layers' chain ids, bottom first (None in records
    # written before they were kept), and the blob of each, to unpack a lost snapshot.
    chain_ids: list[str] | None = None
    layer_digests: list[str] = []
    # Binds, volumes and tmpfs mounts as resolved at create (`Mounts` in inspect).
    mount_points: list[MountPoint] = []
    # The networks it is connected to (by name, in connection order), as asked; and, while
    # it runs, the namespace, endpoints and published ports it holds.
    networks: dict[str, EndpointConfig] = {}
    network_state: NetworkState | None = None
