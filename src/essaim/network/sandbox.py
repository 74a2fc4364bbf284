"""Sandboxes: a running container's network namespace and what it holds in it, set up
before its process starts and torn down when it ends. Endpoints (addresses from IPAM,
veths on bridges, macvlan ports), published ports (host ports held, nftables rules),
embedded DNS, and all of it found again after a daemon restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from essaim.errors import EssaimError, InvalidParameter, NotFound
from essaim.model.container import Container
from essaim.model.network import (
    BRIDGE,
    MACVLAN,
    OPT_HOST_BINDING_IPV4,
    OPT_MACVLAN_MODE,
    OPT_MTU,
    Endpoint,
    EndpointConfig,
    Network,
    NetworkState,
    PublishedPort,
)
from essaim.network import links
from essaim.network.dns.names import DnsRecord, NameTable
from essaim.network.dns.server import EmbeddedDns, Upstream
from essaim.network.firewall.model import BridgeRules, FirewallState
from essaim.network.firewall.model import PublishedPort as PortRule
from essaim.network.firewall.nft import Firewall
from essaim.network.firewall.ports import HostPorts, Reservation
from essaim.network.ipam import AddressSpace
from essaim.network.netns import NamespaceFiles
from essaim.network.port_requests import PortRequest, port_requests
from essaim.network.service import (
    NetworkService,
    gateway_mode,
    icc_enabled,
    masquerade_enabled,
)
from essaim.store.events import EventBus

log = logging.getLogger(__name__)

NONE_MODE = "none"
# How long an idle default bridge (and its rules) stays before it goes.
DEFAULT_BRIDGE_GRACE = 3.0


@dataclass
class _Held:
    """What one running container holds, kept in memory beside its record."""

    container_id: str
    name: str
    state: NetworkState
    aliases: dict[str, list[str]] = field(default_factory=dict)  # by network name
    reservations: list[Reservation] = field(default_factory=list)
    # Networks left and not yet announced (a container's exit announces them after its `die`).
    disconnected: list[Network] = field(default_factory=list)
    upstreams: list[Upstream] = field(default_factory=list)
    dns_attached: bool = False


def network_names_of(container: Container) -> list[str]:
    """The networks a container's endpoints go on, primary first."""
    mode = container.host_config.network_mode
    if mode in (NONE_MODE, "host") or mode.startswith("container:"):
        return []
    return list(container.networks) or ["bridge"]


def host_address(text: str) -> ipaddress.IPv4Address | None:
    """A published port's host address; None for every one (0.0.0.0)."""
    return None if text == "0.0.0.0" else ipaddress.IPv4Address(text)


def user_defined(network: Network) -> bool:
    """Networks with the embedded DNS server: all but the default bridge."""
    return network.name != BRIDGE


class Sandboxes:
    def __init__(
        self,
        *,
        networks: NetworkService,
        namespaces: NamespaceFiles,
        firewall: Firewall,
        dns: EmbeddedDns,
        names: NameTable,
        ports: HostPorts,
        events: EventBus,
    ) -> None:
        self.networks = networks
        self.namespaces = namespaces
        self.firewall = firewall
        self.dns = dns
        self.names = names
        self.ports = ports
        self.events = events
        self._spaces: dict[str, AddressSpace] = {}
        self._held: dict[str, _Held] = {}
        self._lock = asyncio.Lock()
        self._default_bridge_up = False
        self._retiring: asyncio.Task[None] | None = None
        self._firewall_pending: asyncio.Task[None] | None = None
        networks.active_endpoints = self.active_endpoints
        networks.on_change = self.apply_firewall

    # --- queries -----------------------------------------------------------------------

    def active_endpoints(self, network_id: str) -> list[tuple[str, str]]:
        return [
            (held.container_id, held.name)
            for held in self._held.values()
            if any(e.network_id == network_id for e in held.state.endpoints.values())
        ]

    def endpoints_on(self, network_id: str) -> list[tuple[str, str, Endpoint]]:
        """(container id, name, endpoint) of each running container on the network."""
        return [
            (held.container_id, held.name, endpoint)
            for held in self._held.values()
            for endpoint in held.state.endpoints.values()
            if endpoint.network_id == network_id
        ]

    def host_gateway_ips(self) -> list[str]:
        """What `host-gateway` in --add-host stands for: the default bridge's address."""
        return [self.networks.default_bridge().pools[0].gateway]

    def _space(self, network: Network) -> AddressSpace:
        space = self._spaces.get(network.id)
        if space is None:
            space = AddressSpace(network.pools[0], network.name)
            self._spaces[network.id] = space
        return space

    # --- set up and tear down ----------------------------------------------------------

    async def setup(
        self, container: Container, upstreams: Sequence[Upstream] = ()
    ) -> NetworkState | None:
        """The namespace to run the container in, with its endpoints and ports, or None
        when it runs in the host's or another container's namespace."""
        mode = container.host_config.network_mode
        if mode == "host" or mode.startswith("container:"):
            return None
        async with self._lock:
            for name in network_names_of(container):
                self.networks.get(name)  # before anything is made: a missing network fails
            sandbox_id = secrets.token_hex(32)
            netns = await asyncio.to_thread(self.namespaces.create, sandbox_id[:12])
            state = NetworkState(sandbox_id=sandbox_id, sandbox_key=str(netns))
            held = _Held(container.id, container.name, state, upstreams=list(upstreams))
            self._held[container.id] = held
            try:
                if not network_names_of(container):  # endpoints bring it up themselves
                    await asyncio.to_thread(links.loopback_up, netns)
                for name in network_names_of(container):
                    config = container.networks.get(name) or EndpointConfig()
                    await self._add_endpoint(held, self.networks.get(name), config)
                await self._publish(held, container)
                await self._apply_firewall()
                await self._update_dns(held)
            except BaseException:
                # A failed start deletes its interfaces at once: nothing of it lingers.
                await self._release(held, delete_interfaces=True)
                self._announce(held)
                raise
        return state

    def _announce(self, held: _Held) -> None:
        for network in held.disconnected:
            self.events.publish(
                "network", "disconnect", network.id,
                {"container": held.container_id, "name": network.name, "type": network.driver},
            )  # fmt: skip
        held.disconnected.clear()

    async def teardown(self, container: Container) -> Callable[[], None]:
        """Release all it holds; the returned call announces the disconnects (after the
        container's `die`, as dockerd orders them)."""
        async with self._lock:
            held = self._held.get(container.id)
            if held is None and container.network_state is not None:
                # Not known in memory (a failure between record and restore): what the
                # record names is still released.
                held = _Held(container.id, container.name, container.network_state)
                self._held[container.id] = held
            if held is None:
                return lambda: None
            await self._release(held)
            # The rules follow off the exit's path: the next apply, whoever makes it, sets
            # the whole state anyway, and the host port is already given back.
            self._apply_firewall_soon()
        found = held
        return lambda: self._announce(found)

    async def _release(self, held: _Held, *, delete_interfaces: bool = False) -> None:
        """Everything `held` holds given back; best effort, logged, never raised: a
        container that ended must not keep anything of ours."""
        self._held.pop(held.container_id, None)
        if held.dns_attached:
            try:
                await self.dns.detach(held.state.sandbox_id)
            except Exception as exc:  # best effort: the rest must still go
                log.warning("sandbox %s: DNS detach: %s", held.state.sandbox_id[:12], exc)
        for reservation in held.reservations:
            self.ports.release(reservation)
        held.reservations.clear()
        for name, endpoint in list(held.state.endpoints.items()):
            await self._drop_endpoint(held, name, endpoint, inside=delete_interfaces)
        try:
            await asyncio.to_thread(self.namespaces.remove, Path(held.state.sandbox_key).name)
        except EssaimError as exc:
            log.warning("sandbox %s: %s", held.state.sandbox_id[:12], exc.message)

    async def _drop_endpoint(
        self, held: _Held, name: str, endpoint: Endpoint, *, inside: bool
    ) -> None:
        held.state.endpoints.pop(name, None)
        self.names.remove_endpoint(endpoint.network_id, held.container_id)
        try:
            # A whole sandbox going takes its interfaces with its namespace (the kernel
            # deletes them, off our path); a disconnect deletes the one interface.
            if inside and endpoint.host_interface:
                await asyncio.to_thread(links.delete_interface, endpoint.host_interface)
            elif inside:
                await asyncio.to_thread(
                    links.remove_inside, Path(held.state.sandbox_key), endpoint.interface
                )
        except EssaimError as exc:
            log.warning("endpoint %s: %s", endpoint.endpoint_id[:12], exc.message)
        space = self._spaces.get(endpoint.network_id)
        if space is not None:
            space.release(ipaddress.IPv4Address(endpoint.ip_address))
        network = self.networks.find(endpoint.network_id)
        if network is not None and network.name == BRIDGE and not self._on_default_bridge():
            self._retire_default_bridge_soon()
        if network is not None:
            held.disconnected.append(network)

    async def _add_endpoint(
        self, held: _Held, network: Network, config: EndpointConfig
    ) -> Endpoint:
        if network.driver not in (BRIDGE, MACVLAN):
            raise InvalidParameter(
                f"container cannot be connected to network {network.name} "
                f"of driver {network.driver}"
            )
        if network.name == BRIDGE:
            await self._keep_default_bridge(network)
        space = self._space(network)
        address = space.allocate(config.ipv4_address)
        try:
            used = {e.interface for e in held.state.endpoints.values()}
            interface = next(f"eth{n}" for n in range(len(used) + 1) if f"eth{n}" not in used)
            gateway = ipaddress.IPv4Address(network.pools[0].gateway)
            routes = not network.internal and not any(
                e.default_route for e in held.state.endpoints.values()
            )
            settings = links.InterfaceSettings(
                name=interface,
                address=ipaddress.IPv4Interface(f"{address}/{space.subnet.prefixlen}"),
                mac=config.mac_address or links.random_mac(),
                gateway=gateway if routes else None,
                mtu=int(network.options.get(OPT_MTU, "0") or 0),
            )
            netns = Path(held.state.sandbox_key)
            host_interface = ""
            if network.driver == BRIDGE:
                host_interface = links.host_interface_name()
                await asyncio.to_thread(
                    links.add_veth_endpoint, network.interface, netns, host_interface, settings
                )
            else:
                mode = network.options.get(OPT_MACVLAN_MODE, "bridge")
                await asyncio.to_thread(
                    links.add_macvlan_endpoint, network.interface, mode, netns, settings
                )
        except BaseException:
            space.release(address)
            raise
        endpoint = Endpoint(
            network_id=network.id,
            endpoint_id=secrets.token_hex(32),
            ip_address=str(address),
            prefix_len=space.subnet.prefixlen,
            gateway="" if network.internal else str(gateway),
            default_route=routes,
            mac_address=settings.mac,
            interface=interface,
            host_interface=host_interface,
        )
        held.state.endpoints[network.name] = endpoint
        held.aliases[network.name] = list(config.aliases)
        self._record_names(held, network, endpoint)
        self.events.publish(
            "network", "connect", network.id,
            {"container": held.container_id, "name": network.name, "type": network.driver},
        )  # fmt: skip
        return endpoint

    def _record_names(self, held: _Held, network: Network, endpoint: Endpoint) -> None:
        if not user_defined(network):
            return
        names = (held.name, *held.aliases.get(network.name, ()), held.container_id[:12])
        self.names.set_endpoint(
            DnsRecord(
                network_id=network.id,
                network_name=network.name,
                container_id=held.container_id,
                names=tuple(dict.fromkeys(names)),
                address=ipaddress.IPv4Address(endpoint.ip_address),
            )
        )

    def rename(self, container: Container) -> None:
        """Its names on its networks follow a `docker rename` at once."""
        held = self._held.get(container.id)
        if held is None:
            return
        held.name = container.name
        for endpoint in held.state.endpoints.values():
            network = self.networks.find(endpoint.network_id)
            if network is not None:
                self._record_names(held, network, endpoint)

    def dns_upstreams(self, container_id: str) -> list[Upstream] | None:
        """What the embedded DNS forwards to for the container, or None if it does not
        serve it (no user-defined network)."""
        held = self._held.get(container_id)
        return self._upstreams(held) if held is not None and held.dns_attached else None

    def _dns_networks(self, held: _Held) -> list[str]:
        return [
            e.network_id
            for e in held.state.endpoints.values()
            if (n := self.networks.find(e.network_id)) is not None and user_defined(n)
        ]

    def _upstreams(self, held: _Held) -> list[Upstream]:
        """Internal networks only: no way out, so nothing forwarded."""
        nets = [self.networks.find(e.network_id) for e in held.state.endpoints.values()]
        if nets and all(n is not None and n.internal for n in nets):
            return []
        return held.upstreams

    async def _update_dns(self, held: _Held) -> None:
        networks = self._dns_networks(held)
        if networks:
            await self.dns.attach(
                held.state.sandbox_id, Path(held.state.sandbox_key), networks, self._upstreams(held)
            )
            held.dns_attached = True
        elif held.dns_attached:
            await self.dns.detach(held.state.sandbox_id)
            held.dns_attached = False

    def _on_default_bridge(self) -> bool:
        default = self.networks.default_bridge()
        return any(
            e.network_id == default.id
            for h in self._held.values()
            for e in h.state.endpoints.values()
        )

    # The default bridge exists while containers are on it, and a few seconds more (so
    # that one container after another does not make and unmake it each time): nothing
    # of ours stays on the host while no container needs it.

    async def _keep_default_bridge(self, network: Network) -> None:
        if self._retiring is not None:
            self._retiring.cancel()
            self._retiring = None
        if not self._default_bridge_up:
            await asyncio.to_thread(self.networks.ensure_bridge, network)
            self._default_bridge_up = True

    def _retire_default_bridge_soon(self) -> None:
        if self._retiring is None and self._default_bridge_up:
            self._retiring = asyncio.create_task(self._retire_default_bridge())

    async def _retire_default_bridge(self) -> None:
        await asyncio.sleep(DEFAULT_BRIDGE_GRACE)
        async with self._lock:
            self._retiring = None
            if not self._on_default_bridge():
                await self._drop_default_bridge()

    async def _drop_default_bridge(self) -> None:
        """The lock held; the bridge is idle."""
        interface = self.networks.default_bridge().interface
        self._default_bridge_up = False
        try:
            await asyncio.to_thread(links.delete_interface, interface)
            await self._apply_firewall()
        except EssaimError as exc:
            log.warning("bridge %s: %s", interface, exc.message)

    # --- published ports ---------------------------------------------------------------

    def _port_network(self, held: _Held) -> tuple[Network, Endpoint] | None:
        """Ports are published on the first bridge endpoint that is not internal."""
        for endpoint in held.state.endpoints.values():
            network = self.networks.find(endpoint.network_id)
            if network is not None and network.driver == BRIDGE and not network.internal:
                return network, endpoint
        return None

    async def _publish(self, held: _Held, container: Container) -> None:
        target = self._port_network(held)
        if target is None:
            return
        network, endpoint = target
        default_ip = network.options.get(OPT_HOST_BINDING_IPV4, "0.0.0.0")
        for request in port_requests(container):
            try:
                held.state.ports.append(self._reserve(held, request, default_ip, endpoint))
            except EssaimError as exc:
                # dockerd's words around the port allocator's.
                exc.message = (
                    "failed to set up container networking: driver failed programming external "
                    f"connectivity on endpoint {held.name} ({endpoint.endpoint_id}): {exc.message}"
                )
                exc.args = (exc.message,)
                raise

    def _reserve(
        self, held: _Held, request: PortRequest, default_ip: str, endpoint: Endpoint
    ) -> PublishedPort:
        host_ip = request.host_ip or default_ip
        reservation = self.ports.reserve(
            request.proto, host_address(host_ip), request.host_port, end=request.host_port_end,
            target=(ipaddress.IPv4Address(endpoint.ip_address), request.container_port),
        )  # fmt: skip
        held.reservations.append(reservation)
        return PublishedPort(
            container_port=request.container_port,
            proto=request.proto,
            host_ip=host_ip,
            host_port=reservation.host_port,
        )

    def _firewall_state(self) -> FirewallState:
        bridges = tuple(
            BridgeRules(
                bridge=n.interface,
                subnet=ipaddress.IPv4Network(n.pools[0].subnet),
                internal=n.internal,
                icc=icc_enabled(n),
                masquerade=masquerade_enabled(n),
                gateway_mode=gateway_mode(n),
            )
            for n in self.networks.all()
            # User bridges have rules from create to removal; the default one while it is up.
            if n.driver == BRIDGE and (n.name != BRIDGE or self._default_bridge_up)
        )
        rules: list[PortRule] = []
        for held in self._held.values():
            target = self._port_network(held)
            if target is None:
                continue
            network, endpoint = target
            for port in held.state.ports:
                rules.append(
                    PortRule(
                        proto=port.proto,
                        host_ip=host_address(port.host_ip),
                        host_port=port.host_port,
                        container_ip=ipaddress.IPv4Address(endpoint.ip_address),
                        container_port=port.container_port,
                        bridge=network.interface,
                    )
                )
        return FirewallState(bridges=bridges, ports=tuple(rules))

    async def _apply_firewall(self) -> None:
        await self.firewall.apply(self._firewall_state())

    def _apply_firewall_soon(self) -> None:
        if self._firewall_pending is None:
            self._firewall_pending = asyncio.create_task(self._apply_firewall_later())

    async def _apply_firewall_later(self) -> None:
        async with self._lock:
            self._firewall_pending = None
            try:
                await self._apply_firewall()
            except EssaimError as exc:
                log.warning("firewall: %s", exc.message)

    async def apply_firewall(self) -> None:
        """After networks change (create, remove)."""
        async with self._lock:
            await self._apply_firewall()

    # --- connect and disconnect while running ------------------------------------------

    async def connect(
        self, container: Container, network: Network, config: EndpointConfig
    ) -> Endpoint:
        async with self._lock:
            held = self._held.get(container.id)
            if held is None:
                raise NotFound(f"container {container.id} has no sandbox")
            endpoint = await self._add_endpoint(held, network, config)
            try:
                await self._apply_firewall()
                await self._update_dns(held)
            except BaseException:
                await self._drop_endpoint(held, network.name, endpoint, inside=True)
                self._announce(held)
                raise
            return endpoint

    async def disconnect(self, container: Container, network: Network) -> None:
        async with self._lock:
            held = self._held.get(container.id)
            if held is None:
                return
            endpoint = held.state.endpoints.get(network.name)
            if endpoint is None:
                return
            await self._drop_endpoint(held, network.name, endpoint, inside=True)
            self._announce(held)
            if self._port_network(held) is None:
                for reservation in held.reservations:
                    self.ports.release(reservation)
                held.reservations.clear()
                held.state.ports.clear()
            await self._apply_firewall()
            await self._update_dns(held)

    # --- after a daemon restart --------------------------------------------------------

    async def restore(self, container: Container, upstreams: Sequence[Upstream] = ()) -> None:
        """Take up again what a running container held when the daemon went away: its
        addresses, host ports, DNS; the firewall is applied once all are back."""
        state = container.network_state
        if state is None:
            return
        async with self._lock:
            held = _Held(container.id, container.name, state, upstreams=list(upstreams))
            self._held[container.id] = held
            for name, endpoint in state.endpoints.items():
                network = self.networks.find(endpoint.network_id)
                if network is None:
                    continue
                self._space(network).hold(ipaddress.IPv4Address(endpoint.ip_address))
                config = container.networks.get(name) or EndpointConfig()
                held.aliases[name] = list(config.aliases)
                self._record_names(held, network, endpoint)
            for port in state.ports:
                try:
                    held.reservations.append(
                        self.ports.reserve(port.proto, host_address(port.host_ip), port.host_port)
                    )
                except EssaimError as exc:
                    log.warning("container %s: port %s not held again: %s",
                                container.id[:12], port.host_port, exc.message)  # fmt: skip
            try:
                await self._update_dns(held)
            except EssaimError as exc:
                log.warning("container %s: DNS not restored: %s", container.id[:12], exc.message)

    async def restored(self) -> None:
        """All running containers restored: the rules they need, in one go; what no
        running container holds any more (the default bridge, namespace pins) goes."""
        async with self._lock:
            self._default_bridge_up = self._on_default_bridge()
            if not self._default_bridge_up:
                interface = self.networks.default_bridge().interface
                await asyncio.to_thread(links.delete_interface, interface)
            await self._apply_firewall()
            owned = {Path(h.state.sandbox_key).name for h in self._held.values()}
            for name in await asyncio.to_thread(self.namespaces.names):
                if name not in owned:
                    await asyncio.to_thread(self.namespaces.remove, name)

    async def close(self) -> None:
        """Daemon shutdown: running containers keep their namespaces, ports and rules; an
        idle default bridge goes now rather than after its grace."""
        if self._firewall_pending is not None:
            await self._firewall_pending
        async with self._lock:
            if self._retiring is not None:
                self._retiring.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._retiring
                self._retiring = None
            if self._default_bridge_up and not self._on_default_bridge():
                await self._drop_default_bridge()
            try:
                await asyncio.to_thread(self.namespaces.release)
            except EssaimError as exc:
                log.warning("namespaces: %s", exc.message)
        await self.dns.close()
