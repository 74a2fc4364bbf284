"""The names the embedded DNS server answers: each endpoint's names on its network, looked up
with libnetwork's scoping (per network, `name.network`, shared aliases). Pure, no I/O."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address


@dataclass(frozen=True)
class DnsRecord:
    """One endpoint: a container on a network. `names[0]` is the container's name (the one
    PTR answers); the rest are its aliases and short id. Matched case-insensitively."""

    network_id: str
    network_name: str
    container_id: str
    names: tuple[str, ...]
    address: IPv4Address


@dataclass
class _Network:
    """The endpoints of one network, indexed the two ways queries ask."""

    name: str
    records: dict[str, DnsRecord] = field(default_factory=dict)  # by container id
    # Lower-cased name -> the containers answering to it, in the order they got it.
    by_name: dict[str, dict[str, None]] = field(default_factory=dict)


def _key(name: str) -> str:
    return name.rstrip(".").lower()


def _candidates(name: str) -> list[tuple[str, str | None]]:
    """(name, network name) pairs to try, as libnetwork does for `a.b.c`: `a.b.c` on every
    network, then `a.b` on network `c`, then `a` on network `b.c` (dots allowed in both)."""
    tried: list[tuple[str, str | None]] = [(name, None)]
    cut = len(name)
    while (cut := name.rfind(".", 0, cut)) > 0:
        tried.append((name[:cut], name[cut + 1 :]))
    return tried


class NameTable:
    """Every endpoint's DNS record, shared by all sandboxes; each sandbox sees only the
    networks it is connected to."""

    def __init__(self) -> None:
        self._networks: dict[str, _Network] = {}
        # Round robin: how many times each (network, name) answered, to rotate the next answer.
        self._turns: dict[tuple[str, str], itertools.count[int]] = {}

    def set_endpoint(self, record: DnsRecord) -> None:
        """Add the record, or replace the one of the same container on the same network."""
        self.remove_endpoint(record.network_id, record.container_id)
        network = self._networks.setdefault(record.network_id, _Network(record.network_name))
        network.name = record.network_name
        network.records[record.container_id] = record
        for name in record.names:
            network.by_name.setdefault(_key(name), {})[record.container_id] = None

    def remove_endpoint(self, network_id: str, container_id: str) -> None:
        network = self._networks.get(network_id)
        if network is None:
            return
        record = network.records.pop(container_id, None)
        if record is None:
            return
        for name in record.names:
            holders = network.by_name.get(_key(name))
            if holders is None:
                continue
            holders.pop(container_id, None)
            if not holders:
                del network.by_name[_key(name)]
                self._turns.pop((network_id, _key(name)), None)
        if not network.records:
            del self._networks[network_id]

    def resolve(self, networks: Sequence[str], name: str) -> list[IPv4Address] | None:
        """The addresses of `name` for a sandbox on `networks` (its connection order), or
        None when the name is none of ours (the caller forwards it). A name several
        endpoints share answers all of them on the first network that has it, rotated."""
        found = self._lookup(networks, name)
        if found is None:
            return None
        network_id, wanted, addresses = found
        return self._rotated(network_id, wanted, addresses)

    def knows(self, networks: Sequence[str], name: str) -> bool:
        """Whether `resolve` would answer, without taking a turn of the round robin (AAAA
        and MX ask this: a client's AAAA beside each A must not skip every other turn)."""
        return self._lookup(networks, name) is not None

    def _lookup(
        self, networks: Sequence[str], name: str
    ) -> tuple[str, str, list[IPv4Address]] | None:
        for wanted, network_name in _candidates(_key(name)):
            for network_id in networks:
                network = self._networks.get(network_id)
                if network is None:
                    continue
                if network_name is not None and network.name.lower() != network_name:
                    continue
                holders = network.by_name.get(wanted)
                if holders:
                    return network_id, wanted, [network.records[c].address for c in holders]
        return None

    def reverse(self, networks: Sequence[str], address: IPv4Address) -> str | None:
        """`<container name>.<network name>` for an address on one of `networks`."""
        for network_id in networks:
            network = self._networks.get(network_id)
            if network is None:
                continue
            for record in network.records.values():
                if record.address == address and record.names:
                    return f"{record.names[0]}.{network.name}"
        return None

    def _rotated(
        self, network_id: str, name: str, addresses: list[IPv4Address]
    ) -> list[IPv4Address]:
        if len(addresses) < 2:
            return addresses
        turn = next(self._turns.setdefault((network_id, name), itertools.count()))
        shift = turn % len(addresses)
        return addresses[shift:] + addresses[:shift]
