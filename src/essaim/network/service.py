"""The network service: the predefined networks (bridge, host, none), user networks of
the bridge and macvlan drivers with their pools settled, their records in the store and
their Linux bridges; lookup by id, name or id prefix, removal, prune.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import secrets
from collections.abc import Awaitable, Callable, Sequence
from collections.abc import Collection as Collection_
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

from essaim.errors import Conflict, Forbidden, InvalidParameter, NotFound
from essaim.model.network import (
    BRIDGE,
    DRIVERS,
    HOST,
    MACVLAN,
    NULL,
    OPT_BRIDGE_NAME,
    OPT_DEFAULT_BRIDGE,
    OPT_ENABLE_ICC,
    OPT_ENABLE_MASQUERADE,
    OPT_GATEWAY_MODE_IPV4,
    OPT_HOST_BINDING_IPV4,
    OPT_MACVLAN_MODE,
    OPT_MTU,
    OPT_PARENT,
    IPAMPool,
    Network,
)
from essaim.model.rfc3339 import now_rfc3339
from essaim.network import links
from essaim.network.firewall.model import GATEWAY_MODES
from essaim.network.ipam import (
    DEFAULT_POOLS,
    AddressPool,
    check_no_overlap,
    choose_subnet,
    gateway_interface,
    host_routes,
    settle_pool,
)
from essaim.store import Collection, Store
from essaim.store.events import EventBus

P = ParamSpec("P")
R = TypeVar("R")

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
MACVLAN_MODES = ("bridge", "private", "vepa", "passthru")


@dataclass
class NetworkSettings:
    """The daemon's flags that shape networks (dockerd's --bridge, --bip, --icc...)."""

    bridge_name: str = "essaim0"
    bridge_ip: ipaddress.IPv4Interface | None = None  # --bip
    address_pools: Sequence[AddressPool] = DEFAULT_POOLS
    icc: bool = True
    ip_masquerade: bool = True
    mtu: int = 1500
    dns: list[str] = field(default_factory=list)  # --dns: upstreams instead of the host's


@dataclass(frozen=True)
class CreateRequest:
    name: str
    driver: str = BRIDGE
    internal: bool = False
    attachable: bool = False
    ingress: bool = False
    enable_ipv6: bool = False
    ipam_driver: str = "default"
    ipam_options: dict[str, str] = field(default_factory=dict)
    pools: list[IPAMPool] = field(default_factory=list)  # as given (subnet may be "")
    options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


def _bool_option(options: dict[str, str], key: str, default: bool) -> bool:
    value = options.get(key)
    if value is None:
        return default
    if value.lower() in ("1", "t", "true"):
        return True
    if value.lower() in ("0", "f", "false"):
        return False
    raise InvalidParameter(f"failed to parse {key} value: invalid syntax")


def icc_enabled(network: Network) -> bool:
    return _bool_option(network.options, OPT_ENABLE_ICC, True)


def masquerade_enabled(network: Network) -> bool:
    return _bool_option(network.options, OPT_ENABLE_MASQUERADE, True)


def gateway_mode(network: Network) -> str:
    return network.options.get(OPT_GATEWAY_MODE_IPV4) or "nat"


def new_network_id() -> str:
    return secrets.token_hex(32)


class NetworkService:
    def __init__(self, store: Store, events: EventBus, settings: NetworkSettings) -> None:
        self.records: Collection[Network] = Collection(store, "networks", Network)
        self.events = events
        self.settings = settings
        self._networks: dict[str, Network] = {}
        self._lock = asyncio.Lock()
        # Who may not lose a network: answers the containers holding an endpoint on it.
        self.active_endpoints: Callable[[str], list[tuple[str, str]]] = lambda _id: []
        # Told after networks come or go (the sandboxes rewrite the rules that name them).
        self.on_change: Callable[[], Awaitable[None]] | None = None

    async def _changed(self) -> None:
        if self.on_change is not None:
            await self.on_change()

    async def _blocking(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: fn(*args, **kwargs))

    # --- start-up ----------------------------------------------------------------------

    async def load(self) -> None:
        for network in await self.records.list():
            self._networks[network.id] = network
        await self._blocking(links.set_ip_forwarding)
        await self._ensure_predefined()
        for network in self._networks.values():
            # The default bridge exists while containers are on it (the sandboxes see to it).
            if network.driver == BRIDGE and network.name != BRIDGE:
                await self._blocking(self.ensure_bridge, network)

    async def _ensure_predefined(self) -> None:
        for name, driver in ((HOST, HOST), ("none", NULL)):
            if self._find_name(name) is None:
                await self._save(self._predefined(name, driver))
        await self._ensure_default_bridge()

    def _predefined(self, name: str, driver: str) -> Network:
        return Network(id=new_network_id(), name=name, driver=driver, created=now_rfc3339())

    async def _ensure_default_bridge(self) -> None:
        """The `bridge` network, on the --bridge interface with the --bip address (or the
        first free pool), kept when the flags did not change."""
        s = self.settings
        current = self._find_name(BRIDGE)
        if s.bridge_ip is not None:
            gateway = s.bridge_ip
        elif current is not None and current.interface == s.bridge_name:
            gateway = gateway_interface(current.pools[0])
        else:
            # Chosen again: its own old subnet does not count as taken.
            taken = self._subnets_taken(exclude={current.id} if current else set())
            subnet = choose_subnet(s.address_pools, [*taken, *host_routes()])
            gateway = ipaddress.IPv4Interface(f"{subnet.network_address + 1}/{subnet.prefixlen}")
        pool = IPAMPool(subnet=str(gateway.network), gateway=str(gateway.ip))
        options = {
            OPT_DEFAULT_BRIDGE: "true",
            OPT_ENABLE_ICC: str(s.icc).lower(),
            OPT_ENABLE_MASQUERADE: str(s.ip_masquerade).lower(),
            OPT_HOST_BINDING_IPV4: "0.0.0.0",
            OPT_BRIDGE_NAME: s.bridge_name,
            OPT_MTU: str(s.mtu),
        }
        if current is not None and current.pools == [pool] and current.options == options:
            return
        network = current or self._predefined(BRIDGE, BRIDGE)
        network.pools = [pool]
        network.options = options
        network.interface = s.bridge_name
        await self._save(network)

    async def _save(self, network: Network) -> None:
        await self.records.put(network.id, network)
        self._networks[network.id] = network

    def ensure_bridge(self, network: Network) -> None:
        links.ensure_bridge(
            network.interface,
            gateway_interface(network.pools[0]),
            int(network.options.get(OPT_MTU, "0") or 0),
        )

    # --- lookup ------------------------------------------------------------------------

    def _find_name(self, name: str) -> Network | None:
        return next((n for n in self._networks.values() if n.name == name), None)

    def all(self) -> list[Network]:
        return sorted(self._networks.values(), key=lambda n: n.created)

    def find(self, ref: str) -> Network | None:
        if ref in self._networks:
            return self._networks[ref]
        by_name = self._find_name(ref)
        if by_name is not None:
            return by_name
        matches = [n for n in self._networks.values() if n.id.startswith(ref)] if ref else []
        if len(matches) > 1:
            raise NotFound(
                f"network {ref} is ambiguous ({len(matches)} matches found based on ID prefix)"
            )
        return matches[0] if matches else None

    def get(self, ref: str) -> Network:
        network = self.find(ref)
        if network is None:
            raise NotFound(f"network {ref} not found")
        return network

    def default_bridge(self) -> Network:
        return self.get(BRIDGE)

    def _subnets_taken(self, exclude: Collection_[str] = ()) -> list[ipaddress.IPv4Network]:
        return [
            ipaddress.IPv4Network(pool.subnet)
            for n in self._networks.values()
            if n.id not in exclude
            for pool in n.pools
        ]

    def _host_routes(self) -> list[ipaddress.IPv4Network]:
        """Routed subnets that are not our own bridges'."""
        own = set(self._subnets_taken())
        return [r for r in host_routes() if r not in own]

    # --- create ------------------------------------------------------------------------

    async def create(self, request: CreateRequest) -> Network:
        async with self._lock:
            network = await self._create_locked(request)
        await self._changed()
        self.events.publish(
            "network", "create", network.id, {"name": network.name, "type": network.driver}
        )
        return network

    async def _create_locked(self, request: CreateRequest) -> Network:
        if not request.name:
            raise InvalidParameter("network name must not be empty")  # never sent by the CLI
        if not _NAME.match(request.name):
            raise InvalidParameter(
                f'invalid network name "{request.name}": must match [a-zA-Z0-9][a-zA-Z0-9_.-]'
            )
        if request.name in (BRIDGE, HOST, "none"):
            raise Forbidden(f"operation is not permitted on predefined {request.name} network ")
        if self._find_name(request.name) is not None:
            raise Conflict(f"network with name {request.name} already exists")
        driver = request.driver or BRIDGE
        if driver not in DRIVERS:
            if driver in (HOST, NULL, "overlay", "ipvlan"):
                raise Forbidden(
                    f"{driver} networks are not supported here (only bridge and macvlan)"
                )
            raise NotFound(
                f"could not find plugin {driver} in v1 plugin registry: plugin not found"
            )
        if request.ipam_driver not in ("", "default"):
            raise NotFound(
                f"could not find plugin {request.ipam_driver} in v1 plugin registry: "
                "plugin not found"
            )
        if request.enable_ipv6:
            raise InvalidParameter("IPv6 networks are not supported by this daemon yet")
        options = dict(request.options)
        network = Network(
            id=new_network_id(),
            name=request.name,
            driver=driver,
            created=now_rfc3339(),
            internal=request.internal,
            attachable=request.attachable,
            ingress=request.ingress,
            ipam_driver="default",
            ipam_options=dict(request.ipam_options),
            labels=dict(request.labels),
            options=options,
        )
        network.pools, network.user_pools = self._settle_pools(request.pools)
        if driver == BRIDGE:
            for key in (OPT_ENABLE_ICC, OPT_ENABLE_MASQUERADE):
                _bool_option(options, key, True)  # refuse a bad value now
            mode = options.get(OPT_GATEWAY_MODE_IPV4, "nat")
            if mode not in GATEWAY_MODES:
                raise InvalidParameter(
                    f"unknown gateway mode {mode!r}: use one of {', '.join(GATEWAY_MODES)}"
                )
            bridge = options.get(OPT_BRIDGE_NAME) or f"br-{network.id[:12]}"
            if len(bridge) > 15:
                raise InvalidParameter(f"bridge name {bridge} is too long (15 characters at most)")
            if any(n.interface == bridge for n in self._networks.values() if n.driver == BRIDGE):
                raise Forbidden(f"bridge name {bridge} is already in use by another network")
            network.interface = bridge
            if await self._blocking(links.interface_exists, bridge):
                raise Forbidden(f"bridge name {bridge} is already in use on the host")
            await self._blocking(self.ensure_bridge, network)
            try:
                await self._save(network)
            except BaseException:
                await self._blocking(links.delete_interface, bridge)
                raise
        else:
            parent = options.get(OPT_PARENT, "")
            mode = options.setdefault(OPT_MACVLAN_MODE, "bridge")
            if mode not in MACVLAN_MODES:
                raise InvalidParameter(f"requested macvlan mode '{mode}' is not valid")
            if not parent:
                raise InvalidParameter(
                    "macvlan networks need a parent interface here (-o parent=<interface>)"
                )
            if any(n.interface == parent for n in self._networks.values() if n.driver == MACVLAN):
                raise Forbidden(f"network dm-{parent} is already using parent interface {parent}")
            if not await self._blocking(links.interface_exists, parent):
                raise InvalidParameter(f"-o parent interface was not found on the host: {parent}")
            network.interface = parent
            await self._save(network)
        return network

    def _settle_pools(self, given: list[IPAMPool]) -> tuple[list[IPAMPool], bool]:
        taken = self._subnets_taken()
        if not given or not any(p.subnet for p in given):
            subnet = choose_subnet(self.settings.address_pools, [*taken, *self._host_routes()])
            gateway = given[0].gateway if given else ""
            return [settle_pool(str(subnet), gateway)], False
        pools = []
        for pool in given:
            if not pool.subnet:
                raise InvalidParameter("ipam config must name a subnet")
            settled = settle_pool(pool.subnet, pool.gateway, pool.ip_range, pool.aux_addresses)
            check_no_overlap(ipaddress.IPv4Network(settled.subnet), taken)
            taken.append(ipaddress.IPv4Network(settled.subnet))
            pools.append(settled)
        if len(pools) > 1:
            raise InvalidParameter("only one IPv4 pool per network is supported here")
        return pools, True

    # --- remove ------------------------------------------------------------------------

    async def remove(self, ref: str) -> None:
        async with self._lock:
            network = self.get(ref)
            self._check_removable(network)
            await self._remove_locked(network)
        await self._changed()
        self.events.publish(
            "network", "destroy", network.id, {"name": network.name, "type": network.driver}
        )

    def _check_removable(self, network: Network) -> None:
        if network.predefined:
            raise Forbidden(f"{network.name} is a pre-defined network and cannot be removed")
        holders = self.active_endpoints(network.id)
        if holders:
            listed = ", ".join(f'(name:"{name}" id:"{cid[:12]}")' for cid, name in holders)
            raise Forbidden(
                f"error while removing network: network {network.name} has active endpoints "
                f"{listed}"
            )

    async def _remove_locked(self, network: Network) -> None:
        await self.records.delete(network.id)
        self._networks.pop(network.id, None)
        if network.driver == BRIDGE:
            await self._blocking(links.delete_interface, network.interface)

    async def prune(self, keep: Callable[[Network], bool]) -> list[str]:
        """User networks with no active endpoint, but for those `keep` spares (filters)."""
        removed: list[Network] = []
        async with self._lock:
            for network in self.all():
                if network.predefined or keep(network) or self.active_endpoints(network.id):
                    continue
                await self._remove_locked(network)
                removed.append(network)
        if removed:
            await self._changed()
        for network in removed:
            self.events.publish(
                "network", "destroy", network.id, {"name": network.name, "type": network.driver}
            )
        if removed:
            self.events.publish("network", "prune", "", {})
        return [n.name for n in removed]
