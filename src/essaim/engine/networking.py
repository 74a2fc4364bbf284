"""A container's networks from the engine's side: the endpoints it asks for, checked at
create; its sandbox made before its process starts and released when it ends, with the
/etc/hosts and resolv.conf that go with it; connect and disconnect.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from pathlib import Path

from essaim.engine.hostfiles import (
    NetworkView,
    host_resolv_conf_path,
    parse_resolv_conf,
    refresh_name_files,
)
from essaim.engine.network_mode import CONTAINER, HOST, ISOLATED, NETWORK, parse_network_mode
from essaim.errors import Forbidden, InvalidParameter, NotFound
from essaim.model.container import PAUSED, RUNNING, Container, HostConfig
from essaim.model.network import BRIDGE, EndpointConfig, Network
from essaim.model.ports import split_proto_port
from essaim.network.dns.server import Upstream
from essaim.network.sandbox import Sandboxes
from essaim.network.service import NetworkService

ERR_HOST_NETWORK = "container cannot be disconnected from host network or connected to host network"
ERR_NONE_NETWORK = (
    "container cannot be connected to multiple networks with one of the networks in private "
    "(none) mode"
)
ERR_SHARED_NETWORK = (
    "container sharing network namespace with another container or host cannot be connected "
    "to any other network"
)


def parse_link(link: str) -> tuple[str, str]:
    """`name:alias` (or `/name:/me/alias`, as dockerd stores them) as (name, alias)."""
    name, _, alias = link.partition(":")
    name = name.lstrip("/")
    alias = alias.rsplit("/", 1)[-1] if alias else name
    if not name:
        raise InvalidParameter(f"invalid link: {link}")
    return name, alias


def _check_endpoint(network: Network, config: EndpointConfig) -> None:
    if network.name == BRIDGE:
        if config.aliases:
            raise InvalidParameter(
                "network-scoped alias is supported only for containers in user defined networks"
            )
        if config.ipv4_address:
            raise InvalidParameter(
                "user specified IP address is supported on user defined networks only"
            )
    elif config.ipv4_address and not network.user_pools:
        raise InvalidParameter(
            "user specified IP address is supported only when connecting to networks with "
            "user configured subnets"
        )
    if config.ipv4_address:
        try:
            ipaddress.IPv4Address(config.ipv4_address)
        except ValueError:
            raise InvalidParameter(f"invalid IPv4 address: {config.ipv4_address}") from None


def _upstream(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Upstream:
    return Upstream(address=address, from_host=address.is_loopback)


class ContainerNetworking:
    def __init__(
        self,
        networks: NetworkService,
        sandboxes: Sandboxes,
        *,
        containers_root: Path,
        lookup: Callable[[str], Container],
    ) -> None:
        self.networks = networks
        self.sandboxes = sandboxes
        self.containers_root = containers_root
        self.lookup = lookup

    # --- create ------------------------------------------------------------------------

    def endpoints_at_create(
        self, host: HostConfig, requested: Mapping[str, EndpointConfig]
    ) -> dict[str, EndpointConfig]:
        """The networks a new container goes on, by name, its mode's first; what it asks
        of each checked now, as dockerd does, rather than at its first start."""
        mode = parse_network_mode(host.network_mode)
        if mode.kind != NETWORK:
            if mode.kind == HOST and host.links:
                raise InvalidParameter(
                    "conflicting options: host type networking can't be used with links. "
                    "This would result in undefined behavior"
                )
            return {}
        primary = self.networks.get(mode.network)
        if primary.driver not in ("bridge", "macvlan"):
            # The host or none network named by its id rather than by its mode's word.
            raise InvalidParameter(
                f"container cannot be connected to network {primary.name} "
                f"of driver {primary.driver}: use --network {primary.name}"
            )
        endpoints: dict[str, EndpointConfig] = {}
        for key, config in requested.items():
            name = primary.name if key in ("", "default", mode.network) else key
            network = self.networks.get(name)
            _check_endpoint(network, config)
            endpoints[network.name] = config
        ordered = {primary.name: endpoints.pop(primary.name, EndpointConfig())}
        ordered.update(endpoints)
        if host.links:
            for link in host.links:
                name, _ = parse_link(link)
                self.lookup(name)
        return ordered

    # --- each run ----------------------------------------------------------------------

    def _upstreams(self, container: Container) -> list[Upstream]:
        servers = container.host_config.dns or self.networks.settings.dns
        if servers:
            return [_upstream(ipaddress.ip_address(s)) for s in servers]
        source = host_resolv_conf_path()
        try:
            text = Path(source).read_text()
        except OSError:
            text = ""
        return [_upstream(ns) for ns in parse_resolv_conf(text, source).nameservers]

    async def attach(self, container: Container) -> None:
        """Before the process starts: the sandbox, then the name files that name it."""
        upstreams = self._upstreams(container)
        container.network_state = await self.sandboxes.setup(container, upstreams)
        try:
            self.write_name_files(container)
        except BaseException:
            (await self.release(container))()
            raise

    async def release(self, container: Container) -> Callable[[], None]:
        """Its sandbox gone; the returned call announces the disconnects."""
        announce = await self.sandboxes.teardown(container)
        container.network_state = None
        return announce

    async def restore(self, container: Container) -> None:
        await self.sandboxes.restore(container, self._upstreams(container))

    def netns_path(self, container: Container) -> str | None:
        state = container.network_state
        return state.sandbox_key if state is not None else None

    def view(self, container: Container) -> NetworkView:
        state = container.network_state
        endpoints = list(state.endpoints.values()) if state is not None else []
        served = self.sandboxes.dns_upstreams(container.id)
        return NetworkView(
            addresses=[e.ip_address for e in endpoints],
            embedded_dns=served is not None,
            ext_servers=[str(u.address) for u in served or ()],
            link_hosts=self._link_hosts(container),
            host_gateway_ips=self.sandboxes.host_gateway_ips(),
        )

    def _linked(self, container: Container) -> list[tuple[str, Container, str]]:
        """(alias, linked container, its address on the default bridge) of each link."""
        found = []
        for link in container.host_config.links or []:
            name, alias = parse_link(link)
            try:
                other = self.lookup(name)
            except NotFound:
                continue
            state = other.network_state
            endpoint = state.endpoints.get(BRIDGE) if state is not None else None
            if endpoint is None:
                raise InvalidParameter(
                    f"Cannot link to a non running container: /{other.name} AS "
                    f"/{container.name}/{alias}"
                )
            found.append((alias, other, endpoint.ip_address))
        return found

    def link_env(self, container: Container) -> list[str]:
        """The variables dockerd's legacy links define: <ALIAS>_NAME, _PORT and one set
        per exposed port of the linked container (lowest first), and its environment as
        <ALIAS>_ENV_<NAME> (PATH and HOME left out)."""
        env: list[str] = []
        for alias, other, address in self._linked(container):
            prefix = alias.upper().replace("-", "_")
            env.append(f"{prefix}_NAME=/{container.name}/{alias}")
            ports = sorted(
                (int(port), proto)
                for port, proto in (split_proto_port(key) for key in other.config.exposed_ports)
                if port.isdigit()
            )
            if ports:
                port, proto = ports[0]
                env.append(f"{prefix}_PORT={proto}://{address}:{port}")
            for port, proto in ports:
                key = f"{prefix}_PORT_{port}_{proto.upper()}"
                env += [
                    f"{key}={proto}://{address}:{port}",
                    f"{key}_ADDR={address}",
                    f"{key}_PORT={port}",
                    f"{key}_PROTO={proto}",
                ]
            for item in other.config.env:
                name, found, value = item.partition("=")
                if found and name not in ("HOME", "PATH"):
                    env.append(f"{prefix}_ENV_{name}={value}")
        return env

    def _link_hosts(self, container: Container) -> list[tuple[str, str]]:
        """Legacy links: "<ip>\t<alias> <hostname> <name>" lines, as dockerd writes them."""
        records = []
        for alias, other, address in self._linked(container):
            names = f"{alias} {other.config.hostname}"
            if alias != other.name:
                names += f" {other.name}"
            records.append((address, names))
        return records

    def write_name_files(self, container: Container) -> None:
        refresh_name_files(container, self.containers_root / container.id, self.view(container))

    # --- connect and disconnect --------------------------------------------------------

    def _check_mode(self, container: Container) -> None:
        mode = parse_network_mode(container.host_config.network_mode)
        if mode.kind == HOST:
            raise Forbidden(ERR_HOST_NETWORK)
        if mode.kind == ISOLATED:
            raise Forbidden(ERR_NONE_NETWORK)
        if mode.kind == CONTAINER:
            raise Forbidden(ERR_SHARED_NETWORK)

    async def connect(self, container: Container, ref: str, config: EndpointConfig) -> None:
        """The container's lock held by the caller; its record saved by the caller."""
        network = self.networks.get(ref)
        if network.name in (HOST, "none") or network.driver in ("host", "null"):
            raise Forbidden(ERR_HOST_NETWORK if network.name == HOST else ERR_NONE_NETWORK)
        self._check_mode(container)
        if network.name in container.networks:
            raise Forbidden(
                f"endpoint with name {container.name} already exists in network {network.name}"
            )
        _check_endpoint(network, config)
        running = container.state.status in (RUNNING, PAUSED) and container.network_state
        if running:
            await self.sandboxes.connect(container, network, config)
        container.networks = {**container.networks, network.name: config}
        if running:
            self.write_name_files(container)

    async def disconnect(self, container: Container, ref: str, *, force: bool) -> None:
        network = self.networks.find(ref)
        if network is None:
            if force and ref in container.networks:
                container.networks = {k: v for k, v in container.networks.items() if k != ref}
                return
            raise NotFound(f"network {ref} not found")
        if network.name == HOST or network.driver == "host":
            raise Forbidden(ERR_HOST_NETWORK)
        if network.name not in container.networks:
            raise Forbidden(f"container {container.id} is not connected to network {network.name}")
        if container.state.status in (RUNNING, PAUSED) and container.network_state:
            await self.sandboxes.disconnect(container, network)
        container.networks = {k: v for k, v in container.networks.items() if k != network.name}
        if container.network_state is not None:
            self.write_name_files(container)
