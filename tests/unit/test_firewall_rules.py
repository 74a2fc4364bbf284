"""The nft script rendered for the bridge driver's desired state: what each rule means
(published ports, masquerade, hairpin, isolation, icc), read back from the script's
structure, not from its layout. The kernel's view of it is in the integration tests."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network

import pytest

from essaim.network.firewall.model import BridgeRules, FirewallState, PublishedPort
from essaim.network.firewall.rules import render, render_additions

pytestmark = pytest.mark.unit

T = "essaimtest"
A = BridgeRules("esbra", IPv4Network("10.213.1.0/24"))
B = BridgeRules("esbrb", IPv4Network("10.213.2.0/24"))
WEB = PublishedPort("tcp", None, 8080, IPv4Address("10.213.1.2"), 80, "esbra")
DNS = PublishedPort("udp", IPv4Address("127.0.0.1"), 5353, IPv4Address("10.213.1.3"), 53, "esbra")


@dataclass
class Table:
    sets: dict[str, list[str]] = field(default_factory=dict)
    chains: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Script:
    commands: list[str]
    tables: dict[str, Table]  # "ip T", "bridge T"

    def chain(self, family: str, name: str) -> list[str]:
        return self.tables[f"{family} {T}"].chains[name]


def parse(script: str) -> Script:
    """Top-level commands, then each table's sets and chains as whitespace-normalised
    statements. Nested braces on one line (anonymous sets) stay inside their statement."""
    commands: list[str] = []
    tables: dict[str, Table] = {}
    table: Table | None = None
    block: list[str] | None = None
    for raw in script.splitlines():
        line = " ".join(raw.split())
        if not line:
            continue
        if line.endswith("{") and table is None:
            table = tables.setdefault(line.removeprefix("table ").removesuffix(" {"), Table())
        elif line.endswith("{"):
            kind, name, _ = line.split(" ", 2)
            block = (table.chains if kind == "chain" else table.sets).setdefault(name, [])
        elif line == "}" and block is not None:
            block = None
        elif line == "}":
            table = None
        elif block is not None:
            block.extend(part.strip() for part in line.split(";") if part.strip())
        else:
            commands.append(line)
    assert table is None and block is None, "unbalanced braces"
    return Script(commands, tables)


def entries(rule: str) -> set[str]:
    """The elements of the anonymous set or map in `rule`."""
    found = re.search(r"\{ (.*) \}", rule)
    assert found, rule
    return {item.strip() for item in found.group(1).split(",")}


def rules_with(rules: list[str], *words: str) -> list[str]:
    return [rule for rule in rules if all(word in rule for word in words)]


def test_empty_state_only_removes_our_tables() -> None:
    script = parse(render(T, FirewallState()))
    # Declared first, so deleting cannot fail when they are absent; one transaction.
    assert script.commands == [
        f"table ip {T}",
        f"delete table ip {T}",
        f"table bridge {T}",
        f"delete table bridge {T}",
    ]
    assert script.tables == {}


def test_state_replaces_the_tables_in_the_same_script() -> None:
    script = parse(render(T, FirewallState(bridges=(A,), ports=(WEB,))))
    assert script.commands[:2] == [f"table ip {T}", f"delete table ip {T}"]
    assert set(script.tables) == {f"ip {T}"}  # no bridge table while every bridge has icc


def published(script: Script, name: str) -> set[str]:
    """The elements of one of the published-port maps (named maps are listed with sets)."""
    lines = script.tables[f"ip {T}"].sets[name]
    found = [line for line in lines if line.startswith("elements = ")]
    return entries(found[0]) if found else set()


def test_published_port_on_every_address_is_dnat_from_outside_and_from_the_host() -> None:
    script = parse(render(T, FirewallState(bridges=(A,), ports=(WEB,))))
    for chain, hook in (("prerouting", "prerouting"), ("output", "output")):
        rules = script.chain("ip", chain)
        assert f"type nat hook {hook}" in rules[0]
        assert "fib daddr type local jump published" in rules
    assert script.chain("ip", "published") == [
        "dnat ip to ip daddr . meta l4proto . th dport map @published_on_address",
        "dnat ip to meta l4proto . th dport map @published_anywhere",
    ]
    assert published(script, "published_anywhere") == {"tcp . 8080 : 10.213.1.2 . 80"}
    assert published(script, "published_on_address") == set()


def test_published_port_on_one_address_matches_that_address() -> None:
    script = parse(render(T, FirewallState(bridges=(A,), ports=(WEB, DNS))))
    assert published(script, "published_on_address") == {"127.0.0.1 . udp . 5353 : 10.213.1.3 . 53"}
    assert published(script, "published_anywhere") == {"tcp . 8080 : 10.213.1.2 . 80"}
    # The address-specific map is consulted before the catch-all one.
    assert "@published_on_address" in script.chain("ip", "published")[0]


def test_unspecified_host_address_is_every_address() -> None:
    port = PublishedPort("tcp", IPv4Address("0.0.0.0"), 81, IPv4Address("10.213.1.2"), 80, "esbra")
    assert port.host_ip is None
    script = parse(render(T, FirewallState(bridges=(A,), ports=(port,))))
    assert published(script, "published_anywhere") == {"tcp . 81 : 10.213.1.2 . 80"}


def test_many_ports_share_one_map() -> None:
    ports = tuple(
        PublishedPort(proto, None, 9000 + i, IPv4Address(f"10.213.1.{i + 2}"), 80, "esbra")
        for i in range(50)
        for proto in ("tcp", "udp")
    )
    script = parse(render(T, FirewallState(bridges=(A,), ports=ports)))
    assert len(published(script, "published_anywhere")) == 100
    assert "udp . 9049 : 10.213.1.51 . 80" in published(script, "published_anywhere")


def test_no_ports_empty_maps() -> None:
    script = parse(render(T, FirewallState(bridges=(A,))))
    assert set(script.tables[f"ip {T}"].chains) == {
        "prerouting",
        "output",
        "published",
        "postrouting",
        "forward",
    }
    assert published(script, "published_anywhere") == set()
    assert published(script, "published_on_address") == set()


def test_ports_of_an_internal_bridge_are_not_published() -> None:
    internal = BridgeRules("esbri", IPv4Network("10.213.3.0/24"), internal=True)
    hidden = PublishedPort("tcp", None, 8081, IPv4Address("10.213.3.2"), 80, "esbri")
    script = parse(render(T, FirewallState(bridges=(A, internal), ports=(WEB, hidden))))
    assert published(script, "published_anywhere") == {"tcp . 8080 : 10.213.1.2 . 80"}


# --- publishing more ports: additions only ---------------------------------------------------


def test_more_ports_are_added_as_map_elements() -> None:
    old = FirewallState(bridges=(A,), ports=(WEB,))
    new = FirewallState(bridges=(A,), ports=(WEB, DNS, replace(WEB, host_port=8081)))
    script = render_additions(T, old, new)
    assert script is not None
    assert script.splitlines() == [
        f"add element ip {T} published_on_address {{ 127.0.0.1 . udp . 5353 : 10.213.1.3 . 53 }}",
        f"add element ip {T} published_anywhere {{ tcp . 8081 : 10.213.1.2 . 80 }}",
    ]


def test_first_ports_of_a_network_are_additions_too() -> None:
    script = render_additions(T, FirewallState(bridges=(A,)), FirewallState((A,), (WEB,)))
    assert script == f"add element ip {T} published_anywhere {{ tcp . 8080 : 10.213.1.2 . 80 }}\n"


def test_same_ports_in_another_order_add_nothing() -> None:
    old = FirewallState(bridges=(A,), ports=(WEB, DNS))
    assert render_additions(T, old, FirewallState(bridges=(A,), ports=(DNS, WEB))) == ""


@pytest.mark.parametrize(
    ("old", "new"),
    [
        # A port goes, or changes: something is deleted.
        (FirewallState((A,), (WEB, DNS)), FirewallState((A,), (WEB,))),
        (FirewallState((A,), (WEB,)), FirewallState((A,), (replace(WEB, container_port=81),))),
        # The bridges change.
        (FirewallState((A,), (WEB,)), FirewallState((A, B), (WEB,))),
        (FirewallState((A,), ()), FirewallState((replace(A, icc=False),), ())),
        # Nothing of ours exists yet: the tables must be made.
        (FirewallState(), FirewallState((), (WEB,))),
    ],
)
def test_anything_but_more_ports_needs_the_whole_script(
    old: FirewallState, new: FirewallState
) -> None:
    assert render_additions(T, old, new) is None


def test_additions_are_checked_like_the_whole_script() -> None:
    with pytest.raises(ValueError, match="twice"):
        render_additions(T, FirewallState((A,), ()), FirewallState((A,), (WEB, WEB)))


def test_bridge_traffic_leaving_by_another_interface_is_masqueraded() -> None:
    rules = parse(render(T, FirewallState(bridges=(A, B)))).chain("ip", "postrouting")
    assert "type nat hook postrouting priority srcnat" in rules[0]
    assert 'oifname != "esbra" ip saddr 10.213.1.0/24 masquerade' in rules
    assert 'oifname != "esbrb" ip saddr 10.213.2.0/24 masquerade' in rules


def test_masquerade_off_keeps_the_containers_addresses() -> None:
    plain = BridgeRules("esbra", IPv4Network("10.213.1.0/24"), masquerade=False)
    rules = parse(render(T, FirewallState(bridges=(plain,)))).chain("ip", "postrouting")
    assert not rules_with(rules, "oifname !=", "masquerade")
    # Hairpin still needs its masquerade: it is not outbound traffic.
    assert rules_with(rules, 'oifname "esbra"', "ct status dnat", "masquerade")


def test_loopback_sources_are_masqueraded_into_our_bridges() -> None:
    script = parse(render(T, FirewallState(bridges=(A, B))))
    assert script.tables[f"ip {T}"].sets["bridges"] == [
        "type ifname",
        'elements = { "esbra", "esbrb" }',
    ]
    assert "oifname @bridges ip saddr 127.0.0.0/8 masquerade" in script.chain("ip", "postrouting")


def test_hairpin_masquerades_dnat_traffic_back_into_its_own_bridge() -> None:
    rules = parse(render(T, FirewallState(bridges=(A, B)))).chain("ip", "postrouting")
    assert 'oifname "esbra" ip saddr 10.213.1.0/24 ct status dnat masquerade' in rules
    assert 'oifname "esbrb" ip saddr 10.213.2.0/24 ct status dnat masquerade' in rules


def test_bridges_are_isolated_from_each_other_except_through_published_ports() -> None:
    script = parse(render(T, FirewallState(bridges=(A, B))))
    rules = script.chain("ip", "forward")
    assert "type filter hook forward priority filter" in rules[0]
    assert "policy accept" in rules  # the host's policy is not ours to change
    for name in ("esbra", "esbrb"):
        between, outside = rules_with(rules, f'oifname "{name}"', "drop")
        # From another of ours, unless DNAT'd; `& dnat == 0` tests the bit, where
        # `!= dnat` would compare the whole status word.
        assert between == (
            f'oifname "{name}" iifname != "{name}" iifname @bridges ct status & dnat == 0 drop'
        )
        # From anywhere else (Docker 28's gateway mode "nat"), new connections only
        # through a published port.
        assert outside == (
            f'oifname "{name}" iifname != @bridges ct state new ct status & dnat == 0 drop'
        )


@pytest.mark.parametrize("mode", ["nat-unprotected", "routed"])
def test_other_gateway_modes_let_other_hosts_reach_containers(mode: str) -> None:
    bridge = BridgeRules("esbrr", IPv4Network("10.213.4.0/24"), gateway_mode=mode)
    script = parse(render(T, FirewallState(bridges=(bridge,))))
    assert not [r for r in script.chain("ip", "forward") if "iifname != @bridges" in r]
    masquerading = [r for r in script.chain("ip", "postrouting") if 'oifname != "esbrr"' in r]
    assert bool(masquerading) == (mode == "nat-unprotected")


def test_internal_bridge_passes_nothing_to_or_from_other_interfaces() -> None:
    internal = BridgeRules("esbri", IPv4Network("10.213.3.0/24"), internal=True)
    script = parse(render(T, FirewallState(bridges=(A, internal))))
    forward = script.chain("ip", "forward")
    assert 'iifname "esbri" oifname != "esbri" drop' in forward
    assert 'oifname "esbri" iifname != "esbri" drop' in forward
    postrouting = script.chain("ip", "postrouting")
    assert not rules_with(postrouting, "10.213.3.0/24")


def test_icc_off_drops_ipv4_between_ports_of_that_bridge_only() -> None:
    closed = BridgeRules("esbrc", IPv4Network("10.213.4.0/24"), icc=False)
    script = parse(render(T, FirewallState(bridges=(A, closed))))
    rules = script.chain("bridge", "forward")
    assert "type filter hook forward priority filter" in rules[0]
    assert "policy accept" in rules
    assert "ip saddr { 10.213.4.0/24 } drop" in rules
    assert "ip daddr { 10.213.4.0/24 } drop" in rules
    assert not rules_with(rules, "10.213.1.0/24")
    assert not rules_with(script.chain("ip", "forward"), 'iifname "esbrc" oifname "esbrc"')


def test_duplicates_are_refused_before_rendering() -> None:
    with pytest.raises(ValueError, match="twice"):
        render(T, FirewallState(bridges=(A, A)))
    with pytest.raises(ValueError, match="twice"):
        render(T, FirewallState(bridges=(A,), ports=(WEB, WEB)))


@pytest.mark.parametrize("name", ["", "x" * 16, 'es"x', "es\\x", "es x", "es/x", "es:x", "."])
def test_interface_names_that_would_break_a_rule_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="invalid interface name"):
        BridgeRules(name, IPv4Network("10.213.1.0/24"))
    with pytest.raises(ValueError, match="invalid interface name"):
        PublishedPort("tcp", None, 80, IPv4Address("10.213.1.2"), 80, name)


@pytest.mark.parametrize("table", ["", "1abc", "a b", "a;b", "a{", "x" * 65])
def test_table_names_outside_nfts_grammar_are_refused(table: str) -> None:
    with pytest.raises(ValueError, match="invalid nftables table name"):
        render(table, FirewallState())


def test_ports_and_protocols_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown protocol"):
        PublishedPort("icmp", None, 80, IPv4Address("10.213.1.2"), 80, "esbra")
    with pytest.raises(ValueError, match="invalid host port 0"):
        PublishedPort("tcp", None, 0, IPv4Address("10.213.1.2"), 80, "esbra")
    with pytest.raises(ValueError, match="invalid container port 65536"):
        PublishedPort("tcp", None, 80, IPv4Address("10.213.1.2"), 65536, "esbra")
