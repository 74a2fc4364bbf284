"""Render the firewall's desired state as one nft script that replaces our tables in a
single transaction: Docker's bridge rules (userland proxy off), written for nftables."""

from __future__ import annotations

import re
from collections.abc import Iterable

from essaim.network.firewall.model import BridgeRules, FirewallState, PublishedPort

# nft's identifier grammar, less the characters we never need.
_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")

LOOPBACK = "127.0.0.0/8"


def check_table_name(table: str) -> None:
    if not _TABLE_NAME.fullmatch(table):
        raise ValueError(f"invalid nftables table name {table!r}")


def render(table: str, state: FirewallState) -> str:
    """The script: declare our tables (so deleting them cannot fail when they are absent),
    delete them, then define what `state` needs. `nft -f` runs it as one transaction, so
    packets see either the old rules or the new ones, never none."""
    check_table_name(table)
    _check_unique(state)
    lines = [
        f"table ip {table}",
        f"delete table ip {table}",
        f"table bridge {table}",
        f"delete table bridge {table}",
    ]
    if state.bridges or state.ports:
        lines += _ip_table(table, state)
    no_icc = [b for b in state.bridges if not b.icc]
    if no_icc:
        lines += _bridge_table(table, no_icc)
    return "\n".join(lines) + "\n"


def _check_unique(state: FirewallState) -> None:
    names = [b.bridge for b in state.bridges]
    if len(set(names)) != len(names):
        raise ValueError(f"a bridge is listed twice: {sorted(names)}")
    keys = [(p.host_ip, p.proto, p.host_port) for p in state.ports]
    if len(set(keys)) != len(keys):
        raise ValueError("a host address, protocol and port is published twice")


def _quote(name: str) -> str:
    return f'"{name}"'  # names are checked by the model: no quote or backslash inside


def _elements(items: Iterable[str]) -> str:
    return "{ " + ", ".join(items) + " }"


def _published(state: FirewallState) -> list[PublishedPort]:
    # Docker publishes no port of an internal network (it never is a container's gateway),
    # and the forward rules would drop the traffic from outside anyway.
    internal = {b.bridge for b in state.bridges if b.internal}
    return [p for p in state.ports if p.bridge not in internal]


def _on_address(p: PublishedPort) -> str:
    return f"{p.host_ip} . {p.proto} . {p.host_port} : {p.container_ip} . {p.container_port}"


def _anywhere(p: PublishedPort) -> str:
    return f"{p.proto} . {p.host_port} : {p.container_ip} . {p.container_port}"


def _ip_table(table: str, state: FirewallState) -> list[str]:
    ports = _published(state)
    blocks: list[list[str]] = []
    if state.bridges:
        names = _elements(_quote(b.bridge) for b in state.bridges)
        blocks.append(["\tset bridges {", "\t\ttype ifname", f"\t\telements = {names}", "\t}"])
    blocks += _nat_published(ports)
    blocks.append(_nat_postrouting(state.bridges))
    blocks.append(_filter_forward(state.bridges))
    body: list[str] = []
    for block in filter(None, blocks):
        if body:
            body.append("")  # a blank line between blocks, for the people who list them
        body += block
    return [f"table ip {table} {{", *body, "}"]


def _map(name: str, key: str, elements: list[str]) -> list[str]:
    lines = [f"\tmap {name} {{", f"\t\ttype {key} : ipv4_addr . inet_service"]
    if elements:
        lines.append(f"\t\telements = {_elements(elements)}")
    return [*lines, "\t}"]


def _nat_published(ports: list[PublishedPort]) -> list[list[str]]:
    """DNAT of the published ports, for packets to any local address arriving from outside
    (prerouting) or sent by the host itself (output, so 127.0.0.1:port works). The ports
    are in two named maps, present even when empty, so that publishing more ports is only
    adding elements (see `render_additions`)."""
    return [
        _map(
            "published_on_address",
            "ipv4_addr . inet_proto . inet_service",
            [_on_address(p) for p in ports if p.host_ip is not None],
        ),
        _map(
            "published_anywhere",
            "inet_proto . inet_service",
            [_anywhere(p) for p in ports if p.host_ip is None],
        ),
        [
            "\tchain prerouting {",
            "\t\ttype nat hook prerouting priority dstnat; policy accept;",
            "\t\tfib daddr type local jump published",
            "\t}",
        ],
        [
            "\tchain output {",
            # `dstnat` names -100 in prerouting only; the output hook takes the number.
            "\t\ttype nat hook output priority -100; policy accept;",
            "\t\tfib daddr type local jump published",
            "\t}",
        ],
        [
            "\tchain published {",
            # An address of its own is looked up before every address.
            "\t\tdnat ip to ip daddr . meta l4proto . th dport map @published_on_address",
            "\t\tdnat ip to meta l4proto . th dport map @published_anywhere",
            "\t}",
        ],
    ]


def render_additions(table: str, old: FirewallState, new: FirewallState) -> str | None:
    """When `new` is `old` plus published ports and nothing else, the script that adds
    just their map elements (it may be empty); otherwise None, and `render` it is.
    The kernel pays for any deletion with a wait of its own (about 13 ms here against
    3 for an addition), so starting a container publishes its ports this way."""
    check_table_name(table)
    if new.bridges != old.bridges or not (old.bridges or old.ports):
        return None
    before = set(old.ports)
    if not before <= set(new.ports):
        return None
    _check_unique(new)
    added = [p for p in _published(new) if p not in before]
    lines = []
    on_address = [_on_address(p) for p in added if p.host_ip is not None]
    anywhere = [_anywhere(p) for p in added if p.host_ip is None]
    if on_address:
        lines.append(f"add element ip {table} published_on_address {_elements(on_address)}")
    if anywhere:
        lines.append(f"add element ip {table} published_anywhere {_elements(anywhere)}")
    return "".join(f"{line}\n" for line in lines)


def _nat_postrouting(bridges: tuple[BridgeRules, ...]) -> list[str]:
    rules: list[str] = []
    if bridges:
        # The host reaching a published port on 127.0.0.1: the DNAT'd packet leaves by a
        # bridge with a loopback source, which only the host can answer to.
        rules.append(f"\t\toifname @bridges ip saddr {LOOPBACK} masquerade")
    for b in bridges:
        name = _quote(b.bridge)
        if b.internal:
            continue
        # Hairpin: a container reaching its own or a neighbour's published port through a
        # host address. Without this the answer would go straight back over the bridge,
        # from an address the client never talked to.
        rules.append(f"\t\toifname {name} ip saddr {b.subnet} ct status dnat masquerade")
        if b.masquerade and b.gateway_mode != "routed":
            rules.append(f"\t\toifname != {name} ip saddr {b.subnet} masquerade")
    if not rules:
        return []
    return [
        "\tchain postrouting {",
        "\t\ttype nat hook postrouting priority srcnat; policy accept;",
        *rules,
        "\t}",
    ]


def _filter_forward(bridges: tuple[BridgeRules, ...]) -> list[str]:
    """Only drops, and a policy of accept: the host's own policy stays the host's."""
    rules: list[str] = []
    for b in bridges:
        name = _quote(b.bridge)
        if b.internal:
            rules.append(f"\t\tiifname {name} oifname != {name} drop")
            rules.append(f"\t\toifname {name} iifname != {name} drop")
        else:
            # Our bridges do not reach one another, except through a published port
            # (DNAT'd: Docker 28 lets those in from anywhere). `ct status & dnat == 0`,
            # not `!= dnat`, which would compare the whole status word.
            rules.append(
                f"\t\toifname {name} iifname != {name} iifname @bridges ct status & dnat == 0 drop"
            )
            if b.gateway_mode == "nat":
                # Docker 28: from anywhere else, a container is reached only through a
                # published port; what it opened itself still answers (not `new`).
                rules.append(
                    f"\t\toifname {name} iifname != @bridges ct state new "
                    "ct status & dnat == 0 drop"
                )
    if not rules:
        return []
    return [
        "\tchain forward {",
        "\t\ttype filter hook forward priority filter; policy accept;",
        *rules,
        "\t}",
    ]


def _bridge_table(table: str, no_icc: list[BridgeRules]) -> list[str]:
    """icc=false: IPv4 between two ports of the bridge is dropped where the bridge forwards
    it, which holds with or without br_netfilter. The bridge is told by its subnet, as
    `meta ibrname` needs NFT_BRIDGE_META, which kernels may lack; ARP still passes, and
    traffic routed by the host (published ports, hairpin) never crosses this hook."""
    subnets = _elements(str(b.subnet) for b in no_icc)
    return [
        f"table bridge {table} {{",
        "\tchain forward {",
        "\t\ttype filter hook forward priority filter; policy accept;",
        f"\t\tip saddr {subnets} drop",
        f"\t\tip daddr {subnets} drop",
        "\t}",
        "}",
    ]
