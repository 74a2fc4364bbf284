"""The firewall's desired state: the bridges we own and the ports published on them.
Pure data, checked on construction so that rendering never emits a malformed rule."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

PROTOCOLS = ("tcp", "udp", "sctp")

# Linux forbids '/', ':' and whitespace in interface names but allows quotes and
# backslashes, which would break out of an nft string: refuse those too.
_FORBIDDEN_IN_NAME = frozenset("/:\"\\'") | frozenset(" \t\n\r\v\f")
IFNAMSIZ = 16


def check_interface_name(name: str) -> None:
    if not 0 < len(name.encode()) < IFNAMSIZ or name in (".", ".."):
        raise ValueError(f"invalid interface name {name!r}")
    if any(ch in _FORBIDDEN_IN_NAME or not ch.isprintable() for ch in name):
        raise ValueError(f"invalid interface name {name!r}")


def _check_port(port: int, what: str) -> None:
    if not 0 < port <= 65535:
        raise ValueError(f"invalid {what} {port}")


GATEWAY_MODES = ("nat", "nat-unprotected", "routed")


@dataclass(frozen=True)
class BridgeRules:
    bridge: str  # Linux bridge name
    subnet: ipaddress.IPv4Network
    internal: bool = False  # --internal: nothing in or out but between its members
    icc: bool = True  # com.docker.network.bridge.enable_icc
    masquerade: bool = True  # com.docker.network.bridge.enable_ip_masquerade
    # com.docker.network.bridge.gateway_mode_ipv4: "nat" (Docker 28's default: containers
    # reached from outside only through published ports), "nat-unprotected" (directly
    # too), "routed" (directly, and no masquerade).
    gateway_mode: str = "nat"

    def __post_init__(self) -> None:
        check_interface_name(self.bridge)
        if self.gateway_mode not in GATEWAY_MODES:
            raise ValueError(f"bridge {self.bridge}: unknown gateway mode {self.gateway_mode!r}")
        if not isinstance(self.subnet, ipaddress.IPv4Network):
            raise ValueError(f"bridge {self.bridge}: subnet must be IPv4, not {self.subnet!r}")


@dataclass(frozen=True)
class PublishedPort:
    proto: str  # "tcp" | "udp" | "sctp"
    host_ip: ipaddress.IPv4Address | None  # None: every host address (0.0.0.0)
    host_port: int
    container_ip: ipaddress.IPv4Address
    container_port: int
    bridge: str

    def __post_init__(self) -> None:
        if self.proto not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.proto!r}")
        _check_port(self.host_port, "host port")
        _check_port(self.container_port, "container port")
        check_interface_name(self.bridge)
        if self.host_ip is not None and self.host_ip.is_unspecified:
            # 0.0.0.0 means every address: one spelling only, so duplicates are visible.
            object.__setattr__(self, "host_ip", None)


@dataclass(frozen=True)
class FirewallState:
    bridges: tuple[BridgeRules, ...] = ()
    ports: tuple[PublishedPort, ...] = ()
