"""Networks and container endpoints as essaim models them: a network's settings (what
`network create` asked for, with its IPAM pools settled), an endpoint as a container asks
for it, and the endpoint and published ports it holds while it runs.
"""

from __future__ import annotations

import msgspec

BRIDGE = "bridge"
HOST = "host"
NULL = "null"  # the `none` network's driver
MACVLAN = "macvlan"
DRIVERS = (BRIDGE, MACVLAN)  # those a user may create networks with

# Options of the bridge driver, as dockerd names them.
OPT_BRIDGE_NAME = "com.docker.network.bridge.name"
OPT_ENABLE_ICC = "com.docker.network.bridge.enable_icc"
OPT_ENABLE_MASQUERADE = "com.docker.network.bridge.enable_ip_masquerade"
OPT_HOST_BINDING_IPV4 = "com.docker.network.bridge.host_binding_ipv4"
OPT_DEFAULT_BRIDGE = "com.docker.network.bridge.default_bridge"
OPT_MTU = "com.docker.network.driver.mtu"
OPT_GATEWAY_MODE_IPV4 = "com.docker.network.bridge.gateway_mode_ipv4"
# macvlan's
OPT_PARENT = "parent"
OPT_MACVLAN_MODE = "macvlan_mode"


class IPAMPool(msgspec.Struct, frozen=True):
    """One `IPAM.Config` entry, settled: subnet and gateway always known."""

    subnet: str
    gateway: str = ""
    ip_range: str = ""
    aux_addresses: dict[str, str] = {}


class Network(msgspec.Struct):
    id: str
    name: str
    driver: str
    created: str
    scope: str = "local"
    internal: bool = False
    attachable: bool = False
    ingress: bool = False
    enable_ipv6: bool = False
    ipam_driver: str = "default"
    ipam_options: dict[str, str] = {}
    pools: list[IPAMPool] = []
    # Which pools the user gave (inspect shows them as given, without a filled gateway).
    user_pools: bool = False
    options: dict[str, str] = {}
    labels: dict[str, str] = {}
    # The Linux interface: the bridge's name, or the macvlan parent.
    interface: str = ""

    @property
    def predefined(self) -> bool:
        """`bridge`, `host` and `none`: made by the daemon, never removed."""
        return self.name in (BRIDGE, HOST, "none")


class EndpointConfig(msgspec.Struct):
    """What a container asks of one network (`NetworkingConfig.EndpointsConfig`, connect)."""

    aliases: list[str] = []
    ipv4_address: str = ""  # IPAMConfig.IPv4Address: a static address
    links: list[str] = []  # "name:alias" (legacy links, default bridge only)
    mac_address: str = ""
    driver_opts: dict[str, str] = {}


class Endpoint(msgspec.Struct):
    """An endpoint a running container holds on one network."""

    network_id: str
    endpoint_id: str
    ip_address: str
    prefix_len: int
    gateway: str
    mac_address: str
    interface: str  # inside the container: eth0, eth1...
    host_interface: str = ""  # the veth on the host side (bridge)
    default_route: bool = False  # the container's default route goes through it


class PublishedPort(msgspec.Struct, frozen=True):
    """One container port published on the host: `80/tcp` -> 0.0.0.0:8080."""

    container_port: int
    proto: str
    host_ip: str  # "0.0.0.0" for every address
    host_port: int


class NetworkState(msgspec.Struct):
    """A running container's share of the network: its namespace and what it holds."""

    sandbox_id: str
    sandbox_key: str  # the pinned namespace's path
    endpoints: dict[str, Endpoint] = {}  # by network name, in connection order
    ports: list[PublishedPort] = []
