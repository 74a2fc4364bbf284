"""A container's identity and security settings as `create` settles them: refused with
dockerd's create-time words (capabilities, security options, extra hosts, namespace modes,
options that conflict with a shared network or UTS namespace), then given dockerd's defaults.
"""

from __future__ import annotations

from collections.abc import Callable

from essaim.engine.hostfiles import check_extra_hosts
from essaim.engine.network_mode import CONTAINER, parse_network_mode
from essaim.errors import EssaimError, InvalidParameter
from essaim.model.container import Container, ContainerConfig, HostConfig
from essaim.runtime.capabilities import normalize_capabilities
from essaim.runtime.security_opts import parse_security_opts

PRIVATE = "private"
SHAREABLE = "shareable"
HOST = "host"
NONE = "none"
CONTAINER_PREFIX = "container:"
# dockerd's default-ipc-mode since 19.03.
DEFAULT_IPC_MODE = PRIVATE


def _container_ref(mode: str) -> str | None:
    """The name or id of `container:<ref>`, "" when the ref is missing, None otherwise."""
    if not mode.startswith(CONTAINER_PREFIX):
        return None
    return mode.removeprefix(CONTAINER_PREFIX)


def _check_modes(host: HostConfig) -> None:
    """IpcMode/PidMode/UTSMode/CgroupnsMode.Valid(), in verifyPlatformContainerSettings' words."""
    ipc_ref = _container_ref(host.ipc_mode)
    if host.ipc_mode not in ("", PRIVATE, SHAREABLE, HOST, NONE) and not ipc_ref:
        raise InvalidParameter(f"invalid IPC mode: {host.ipc_mode}")
    if host.pid_mode not in ("", HOST) and not _container_ref(host.pid_mode):
        raise InvalidParameter(f"invalid PID mode: {host.pid_mode}")
    if host.uts_mode not in ("", HOST):
        raise InvalidParameter(f"invalid UTS mode: {host.uts_mode}")
    if host.cgroupns_mode not in ("", HOST, PRIVATE):
        raise InvalidParameter(f"invalid cgroup namespace mode: {host.cgroupns_mode}")


def _check_conflicts(config: ContainerConfig, host: HostConfig) -> None:
    """runconfig's validateNetContainerMode and the UTS one: a namespace shared with another
    container (or the host) brings its names along, so they cannot also be given here."""
    network = parse_network_mode(host.network_mode)
    if network.kind == CONTAINER:
        if config.hostname:
            raise InvalidParameter("conflicting options: hostname and the network mode")
        if host.dns:
            raise InvalidParameter("conflicting options: dns and the network mode")
        if host.extra_hosts:
            raise InvalidParameter(
                "conflicting options: custom host-to-IP mapping and the network mode"
            )
    if host.uts_mode == HOST and config.hostname:
        raise InvalidParameter("conflicting options: hostname and the UTS mode")


def _by_id(mode: str, lookup: Callable[[str], Container]) -> str:
    """`container:<name>` stored as `container:<id>` (adaptSharedNamespaceContainer): a
    rename of the other one changes nothing. A ref that finds nothing is kept as given."""
    ref = _container_ref(mode)
    if not ref:
        return mode
    try:
        return CONTAINER_PREFIX + lookup(ref).id
    except EssaimError:
        return mode


def settle_identity(
    config: ContainerConfig,
    host: HostConfig,
    *,
    cgroup_version: int,
    lookup: Callable[[str], Container],
) -> None:
    """Check the settings dockerd checks at create, then fill in its defaults. Call it
    before the hostname is defaulted: a hostname the client gave is what conflicts."""
    _check_conflicts(config, host)
    try:
        normalize_capabilities(host.cap_add)
    except InvalidParameter as exc:
        raise InvalidParameter(f"invalid CapAdd: {exc.message}") from None
    try:
        normalize_capabilities(host.cap_drop)
    except InvalidParameter as exc:
        raise InvalidParameter(f"invalid CapDrop: {exc.message}") from None
    parse_security_opts(host.security_opt)
    check_extra_hosts(host.extra_hosts or [])
    _check_modes(host)

    # adaptContainerSettings' defaults, so that inspect shows what dockerd would.
    if not host.ipc_mode:
        host.ipc_mode = DEFAULT_IPC_MODE
    if not host.cgroupns_mode:
        host.cgroupns_mode = PRIVATE if cgroup_version == 2 else HOST
    host.ipc_mode = _by_id(host.ipc_mode, lookup)
    host.pid_mode = _by_id(host.pid_mode, lookup)
