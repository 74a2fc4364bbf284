"""IPv4 address management as dockerd's default IPAM does it: subnets carved from the
default address pools (skipping those in use here or routed on the host), checked pools
given by the user, and addresses handed out serially within a network.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from essaim.errors import Forbidden, InvalidParameter, Unavailable
from essaim.model.network import IPAMPool

Net = ipaddress.IPv4Network
Addr = ipaddress.IPv4Address


@dataclass(frozen=True)
class AddressPool:
    """A `--default-address-pool`: subnets of `size` bits carved from `base`."""

    base: Net
    size: int

    def subnets(self) -> Iterator[Net]:
        return self.base.subnets(new_prefix=self.size)


# dockerd's defaults: 172.17-31.0.0/16 whole, then 192.168.0.0/16 in /20s.
DEFAULT_POOLS = (
    *(AddressPool(Net(f"172.{n}.0.0/16"), 16) for n in range(17, 32)),
    AddressPool(Net("192.168.0.0/16"), 20),
)


def parse_address_pool(text: str) -> AddressPool:
    """`base=10.10.0.0/16,size=24`, as dockerd's flag takes it."""
    fields: dict[str, str] = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        fields[key.strip()] = value.strip()
    try:
        base = Net(fields["base"])
        size = int(fields.get("size", "") or base.prefixlen)
    except (KeyError, ValueError):
        raise InvalidParameter(f"invalid default address pool: {text}") from None
    if size < base.prefixlen or size > 30:
        raise InvalidParameter(f"invalid default address pool: {text}")
    return AddressPool(base, size)


def host_routes(path: Path = Path("/proc/net/route")) -> list[Net]:
    """The destinations of the host's IPv4 routes (the default route excluded): a subnet
    overlapping one of them would shadow or be shadowed by it."""
    routes: list[Net] = []
    try:
        lines = path.read_text().splitlines()[1:]
    except OSError:
        return routes
    for line in lines:
        fields = line.split()
        if len(fields) < 8:
            continue
        dest = Addr(int.from_bytes(bytes.fromhex(fields[1]), "little"))
        mask = Addr(int.from_bytes(bytes.fromhex(fields[7]), "little"))
        if int(mask) == 0:
            continue
        routes.append(Net(f"{dest}/{mask}", strict=False))
    return routes


def choose_subnet(pools: Sequence[AddressPool], taken: Iterable[Net]) -> Net:
    """The first subnet of the pools that overlaps nothing taken."""
    busy = list(taken)
    for pool in pools:
        for subnet in pool.subnets():
            if not any(subnet.overlaps(other) for other in busy):
                return subnet
    raise Unavailable(
        "could not find an available, non-overlapping IPv4 address pool among the defaults "
        "to assign to the network"
    )


def check_no_overlap(subnet: Net, taken: Iterable[Net]) -> None:
    if any(subnet.overlaps(other) for other in taken):
        raise Forbidden("invalid pool request: Pool overlaps with other one on this address space")


def _network(text: str) -> Net:
    try:
        return Net(text)
    except ValueError:
        raise InvalidParameter(f"invalid CIDR address: {text}") from None


def _address(text: str, what: str) -> Addr:
    try:
        return Addr(text)
    except ValueError:
        raise InvalidParameter(f"invalid {what}: {text}") from None


def settle_pool(
    subnet: str, gateway: str = "", ip_range: str = "", aux: dict[str, str] | None = None
) -> IPAMPool:
    """A user's `--subnet/--gateway/--ip-range/--aux-address`, checked; the gateway
    defaults to the subnet's first address."""
    net = _network(subnet)
    if ip_range:
        rng = _network(ip_range)
        if not rng.subnet_of(net):
            raise Forbidden(f"invalid pool request: no matching subnet for range {ip_range}")
    if gateway:
        gw = _address(gateway, "gateway address")
        if gw not in net:
            raise Forbidden(f"no matching subnet for gateway {gateway}")
    else:
        gw = first_host(net)
    for name, value in (aux or {}).items():
        if _address(value, f"auxiliary address {name}") not in net:
            raise Forbidden(f"no matching subnet for aux-address {value}")
    return IPAMPool(
        subnet=str(net), gateway=str(gw), ip_range=ip_range, aux_addresses=dict(aux or {})
    )


def gateway_interface(pool: IPAMPool) -> ipaddress.IPv4Interface:
    """The pool's gateway with its prefix, as the bridge carries it."""
    return ipaddress.IPv4Interface(f"{pool.gateway}/{Net(pool.subnet).prefixlen}")


def first_host(net: Net) -> Addr:
    return net.network_address + 1 if net.num_addresses > 2 else net.network_address


class AddressSpace:
    """The addresses of one network's pool. Handed out serially (after the last one
    given, wrapping), as dockerd's bitmap does, so a freed address is not reused at once."""

    def __init__(self, pool: IPAMPool, network_name: str) -> None:
        self.subnet = Net(pool.subnet)
        self.range = Net(pool.ip_range) if pool.ip_range else self.subnet
        self.network_name = network_name
        self.reserved = {self.subnet.network_address, self.subnet.broadcast_address}
        if pool.gateway:
            self.reserved.add(Addr(pool.gateway))
        self.reserved |= {Addr(v) for v in pool.aux_addresses.values()}
        self.used: set[Addr] = set()
        self._last = self.range.network_address

    def hold(self, address: Addr) -> None:
        """An address already given (found again at start-up)."""
        self.used.add(address)

    def release(self, address: Addr) -> None:
        self.used.discard(address)

    def allocate(self, requested: str = "") -> Addr:
        if requested:
            address = _address(requested, "IPv4 address")
            if address not in self.subnet:
                raise InvalidParameter(
                    "invalid endpoint settings:\nno configured subnet or ip-range contain the "
                    f"IP address {requested}"
                )
            if address in self.used or address in self.reserved:
                raise InvalidParameter("Address already in use")
            self.used.add(address)
            return address
        first, last = int(self.range.network_address), int(self.range.broadcast_address)
        size = last - first + 1
        start = int(self._last) - first
        for step in range(1, size + 1):
            candidate = Addr(first + (start + step) % size)
            if candidate not in self.used and candidate not in self.reserved:
                self.used.add(candidate)
                self._last = candidate
                return candidate
        raise Unavailable(
            f"no available IPv4 addresses on this network's address pools: {self.network_name}"
        )
