"""The bridge driver's nftables rules on a real kernel, without a daemon: a small topology
of bridges, "container" namespaces and a client namespace, and what crosses it under each
firewall state (published ports, hairpin, masquerade, isolation, internal, icc)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from essaim.errors import SystemError_
from essaim.network.firewall.model import BridgeRules, FirewallState, PublishedPort
from essaim.network.firewall.nft import Firewall, run_nft
from essaim.network.firewall.ports import HostPorts
from essaim.network.firewall.rules import render
from essaim.network.netns import NamespaceFiles

TOOLS = ("nft", "ip", "nsenter", "busybox")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.geteuid() != 0 or not all(shutil.which(tool) for tool in TOOLS),
        reason=f"needs root and {', '.join(TOOLS)}",
    ),
]

HTTP = 80
UDP = 5353

# The CGI answers who served the request and whom it saw as the client.
WHO = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s %s\\n' {name} \"$REMOTE_ADDR\"\n"

UDP_ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[2])))
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(f"{sys.argv[1]} {peer[0]}".encode(), peer)
"""

UDP_ASK = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(float(sys.argv[3]))
s.sendto(b"who", (sys.argv[1], int(sys.argv[2])))
print(s.recv(2048).decode())
"""


def _run(*argv: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def _sh(*argv: str) -> None:
    result = _run(*argv)
    assert result.returncode == 0, f"{' '.join(argv)}: {result.stderr}"


def _unmapped(answer: str) -> str:
    """busybox httpd listens on IPv6 too, so it sees IPv4 clients as [::ffff:a.b.c.d]."""
    return re.sub(r"\[::ffff:([0-9.]+)\]", r"\1", answer.strip())


def _free_octets(count: int) -> list[int]:
    """Third octets of 10.213.x.0/24 networks no interface or route of this host uses."""
    seen = (
        _run("ip", "-4", "-o", "addr").stdout
        + _run("ip", "-4", "route", "show", "table", "all").stdout
    )
    used = {int(octet) for octet in re.findall(r"10\.213\.(\d+)\.", seen)}
    free = [octet for octet in range(1, 255) if octet not in used]
    return secrets.SystemRandom().sample(free, count)


@dataclass
class Box:
    """A network namespace standing for a container (or the client host), one veth in it."""

    name: str
    ns: Path
    address: IPv4Address

    def run(self, *argv: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return _run("nsenter", f"--net={self.ns}", *argv, timeout=timeout)

    def get(self, host: IPv4Address | str, port: int = HTTP, wait: int = 3) -> str | None:
        """Who answered http://host:port/ and whom it saw, or None when nothing did
        within `wait` seconds. (busybox wget's own -T crashes in Debian's 1.35.)"""
        url = f"http://{host}:{port}/cgi-bin/who"
        result = self.run("timeout", str(wait), "busybox", "wget", "-q", "-O", "-", url)
        return _unmapped(result.stdout) if result.returncode == 0 else None

    def ask_udp(self, host: IPv4Address | str, port: int, wait: float = 3) -> str | None:
        result = self.run(sys.executable, "-c", UDP_ASK, str(host), str(port), str(wait))
        return result.stdout.strip() if result.returncode == 0 else None


@dataclass
class Topology:
    suffix: str
    bridge_a: BridgeRules  # c1, c2
    bridge_b: BridgeRules  # c3
    c1: Box
    c2: Box
    c3: Box
    client: Box
    host_side: IPv4Address  # the host's address facing the client
    gateway_a: IPv4Address
    gateway_b: IPv4Address

    @property
    def table(self) -> str:
        return f"es{self.suffix}"


def _host_get(host: IPv4Address | str, port: int, wait: float = 3) -> str | None:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/cgi-bin/who", timeout=wait) as reply:
            return _unmapped(reply.read().decode())
    except OSError:
        return None


def _host_ask_udp(host: str, port: int, wait: float = 3) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(wait)
        sock.sendto(b"who", (host, port))
        try:
            return sock.recv(2048).decode()
        except OSError:
            return None


@pytest.fixture(scope="module")
def net() -> Iterator[Topology]:
    """Bridge A (c1, c2) and bridge B (c3) with their gateways on the host, and a client
    namespace on a veth pair to the host, with no route but its own /30."""
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")  # as the daemon will
    suffix = secrets.token_hex(3)
    work = Path(f"/tmp/es-firewall-{suffix}")
    namespaces = NamespaceFiles(work / "netns")
    links: list[str] = []  # host-side names: deleting them takes the peers too
    servers: list[subprocess.Popen[bytes]] = []
    a, b, y = _free_octets(3)
    try:
        namespaces.prepare()

        def bridge(letter: str, octet: int) -> str:
            name = f"es{suffix}{letter}"
            _sh("ip", "link", "add", name, "type", "bridge")
            links.append(name)
            _sh("ip", "addr", "add", f"10.213.{octet}.1/24", "dev", name)
            _sh("ip", "link", "set", name, "up")
            # What the lead's bridge setup does, so that 127.0.0.1:port can be DNAT'd out.
            Path(f"/proc/sys/net/ipv4/conf/{name}/route_localnet").write_text("1\n")
            return name

        def box(name: str, veth: str, address: str, gateway: str | None) -> Box:
            ns = namespaces.create(name)
            _sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", str(ns))
            links.append(veth)
            created = Box(name, ns, IPv4Address(address.split("/")[0]))
            for argv in (
                ("ip", "link", "set", "lo", "up"),
                ("ip", "addr", "add", address, "dev", "eth0"),
                ("ip", "link", "set", "eth0", "up"),
                *((("ip", "route", "add", "default", "via", gateway),) if gateway else ()),
            ):
                result = created.run(*argv)
                assert result.returncode == 0, result.stderr
            return created

        bridge_a, bridge_b = bridge("a", a), bridge("b", b)
        c1 = box("c1", f"es{suffix}1", f"10.213.{a}.2/24", f"10.213.{a}.1")
        c2 = box("c2", f"es{suffix}2", f"10.213.{a}.3/24", f"10.213.{a}.1")
        c3 = box("c3", f"es{suffix}3", f"10.213.{b}.2/24", f"10.213.{b}.1")
        for veth, master in (
            (f"es{suffix}1", bridge_a),
            (f"es{suffix}2", bridge_a),
            (f"es{suffix}3", bridge_b),
        ):
            _sh("ip", "link", "set", veth, "master", master, "up")
            # As dockerd without its userland proxy: with br_netfilter, a container's
            # packet DNAT'd back to itself is bridged out of the port it came in by.
            _sh("ip", "link", "set", veth, "type", "bridge_slave", "hairpin", "on")
        client = box("client", f"es{suffix}c", f"10.213.{y}.2/30", None)
        _sh("ip", "addr", "add", f"10.213.{y}.1/30", "dev", f"es{suffix}c")
        _sh("ip", "link", "set", f"es{suffix}c", "up")

        for who in (c1, c2, c3, client):
            www = work / "www" / who.name
            (www / "cgi-bin").mkdir(parents=True)
            (www / "cgi-bin" / "who").write_text(WHO.format(name=who.name))
            (www / "cgi-bin" / "who").chmod(0o755)
            argv = ["busybox", "httpd", "-f", "-p", str(HTTP), "-h", str(www)]
            servers.append(subprocess.Popen(["nsenter", f"--net={who.ns}", *argv]))
        servers.append(
            subprocess.Popen(
                ["nsenter", f"--net={c1.ns}", sys.executable, "-c", UDP_ECHO, "c1", str(UDP)]
            )
        )
        for who in (c1, c2, c3, client):
            deadline = time.monotonic() + 10
            while who.get("127.0.0.1") is None:
                assert time.monotonic() < deadline, f"httpd in {who.name} did not start"
                time.sleep(0.05)
        yield Topology(
            suffix,
            BridgeRules(bridge_a, IPv4Network(f"10.213.{a}.0/24")),
            BridgeRules(bridge_b, IPv4Network(f"10.213.{b}.0/24")),
            c1,
            c2,
            c3,
            client,
            IPv4Address(f"10.213.{y}.1"),
            IPv4Address(f"10.213.{a}.1"),
            IPv4Address(f"10.213.{b}.1"),
        )
    finally:
        for server in servers:
            server.kill()
            server.wait()
        for link in links:
            _run("ip", "link", "del", link)
        for name in namespaces.names():
            namespaces.remove(name)
        if work.exists():
            _run("umount", str(work / "netns"))
            shutil.rmtree(work, ignore_errors=True)


def _tables() -> list[str]:
    return _run("nft", "list", "tables").stdout.split("\n")


@pytest.fixture
def firewall(net: Topology) -> Iterator[Firewall]:
    """Our tables for one test, gone after it whatever happened."""
    yield Firewall(net.table)
    asyncio.run(Firewall(net.table).remove())
    assert not [line for line in _tables() if line.endswith(f" {net.table}")]


@pytest.fixture(scope="module")
def host_ports() -> Iterator[tuple[int, int]]:
    """A TCP and a UDP host port held for the module, so that no one else on this host
    uses them while our DNAT rules send them to the namespaces."""
    ports = HostPorts()
    tcp, udp = ports.reserve("tcp", None, 0), ports.reserve("udp", None, 0)
    yield tcp.host_port, udp.host_port
    ports.release(tcp)
    ports.release(udp)


def _apply(firewall: Firewall, state: FirewallState) -> None:
    asyncio.run(firewall.apply(state))


def _web(net: Topology, port: int, host_ip: IPv4Address | None = None) -> PublishedPort:
    return PublishedPort("tcp", host_ip, port, net.c1.address, HTTP, net.bridge_a.bridge)


def _state(net: Topology, *ports: PublishedPort, **changes: bool) -> FirewallState:
    """Both bridges, bridge A changed by `changes` (icc=..., masquerade=...), with `ports`."""
    return FirewallState(bridges=(replace(net.bridge_a, **changes), net.bridge_b), ports=ports)


# --- the script ---------------------------------------------------------------------------


def test_rendered_script_is_accepted_by_nft(net: Topology) -> None:
    state = FirewallState(
        bridges=(
            net.bridge_a,
            replace(net.bridge_b, icc=False),
            BridgeRules(f"es{net.suffix}i", IPv4Network("10.213.0.0/24"), internal=True),
            BridgeRules(f"es{net.suffix}m", IPv4Network("10.213.255.0/24"), masquerade=False),
        ),
        ports=(
            _web(net, 8080),
            PublishedPort(
                "udp", IPv4Address("127.0.0.1"), 53, net.c1.address, 53, net.bridge_a.bridge
            ),
            PublishedPort("sctp", None, 9000, net.c3.address, 9000, net.bridge_b.bridge),
        ),
    )
    asyncio.run(run_nft(render(net.table, state), check=True))
    asyncio.run(run_nft(render(net.table, FirewallState()), check=True))


def test_nft_refusal_raises_nfts_own_message() -> None:
    # `map` passes our name check but is an nft keyword: nft refuses the whole script.
    with pytest.raises(SystemError_, match="syntax error"):
        asyncio.run(Firewall("map").apply(FirewallState()))


# --- published ports ------------------------------------------------------------------------


def test_published_tcp_port_from_the_host(
    net: Topology, firewall: Firewall, host_ports: tuple[int, int]
) -> None:
    port, _ = host_ports
    assert _host_get("127.0.0.1", port, wait=1) is None
    _apply(firewall, _state(net, _web(net, port)))
    # From loopback the source is masqueraded to the bridge's address; from a host
    # address it stays that address.
    assert _host_get("127.0.0.1", port) == f"c1 {net.gateway_a}"
    assert _host_get(net.host_side, port) == f"c1 {net.host_side}"
    assert _host_get(net.gateway_a, port) == f"c1 {net.gateway_a}"


def test_published_tcp_port_from_another_namespace_keeps_the_clients_address(
    net: Topology, firewall: Firewall, host_ports: tuple[int, int]
) -> None:
    port, _ = host_ports
    assert net.client.get(net.host_side, port, wait=1) is None
    _apply(firewall, _state(net, _web(net, port)))
    assert net.client.get(net.host_side, port) == f"c1 {net.client.address}"


def test_ports_published_one_by_one_and_unpublished(
    net: Topology, firewall: Firewall, host_ports: tuple[int, int]
) -> None:
    """Ports added to an applied state go in as map elements; one taken away, out."""
    port, udp = host_ports
    echo = PublishedPort("udp", None, udp, net.c1.address, UDP, net.bridge_a.bridge)
    _apply(firewall, _state(net))
    _apply(firewall, _state(net, _web(net, port)))
    assert _host_get("127.0.0.1", port) == f"c1 {net.gateway_a}"
    _apply(firewall, _state(net, _web(net, port), echo))
    assert _host_ask_udp("127.0.0.1", udp) == f"c1 {net.gateway_a}"
    _apply(firewall, _state(net, echo))
    assert _host_get("127.0.0.1", port, wait=1) is None
    assert _host_ask_udp("127.0.0.1", udp) == f"c1 {net.gateway_a}"


def test_port_published_on_loopback_only_is_not_reachable_from_outside(
    net: Topology, firewall: Firewall, host_ports: tuple[int, int]
) -> None:
    port, _ = host_ports
    _apply(firewall, _state(net, _web(net, port, IPv4Address("127.0.0.1"))))
    assert _host_get("127.0.0.1", port) == f"c1 {net.gateway_a}"
    assert net.client.get(net.host_side, port, wait=1) is None


def test_published_udp_port(net: Topology, firewall: Firewall, host_ports: tuple[int, int]) -> None:
    _, port = host_ports
    echo = PublishedPort("udp", None, port, net.c1.address, UDP, net.bridge_a.bridge)
    assert _host_ask_udp("127.0.0.1", port, wait=1) is None
    _apply(firewall, _state(net, echo))
    assert _host_ask_udp("127.0.0.1", port) == f"c1 {net.gateway_a}"
    assert net.client.ask_udp(net.host_side, port) == f"c1 {net.client.address}"


def test_hairpin_container_reaches_its_own_and_its_neighbours_published_port(
    net: Topology, firewall: Firewall, host_ports: tuple[int, int]
) -> None:
    port, _ = host_ports
    _apply(firewall, _state(net, _web(net, port)))
    # Answered from the bridge's address: the answer comes back through the host.
    assert net.c1.get(net.host_side, port) == f"c1 {net.gateway_a}"
    assert net.c2.get(net.host_side, port) == f"c1 {net.gateway_a}"
    assert net.c1.get(net.gateway_a, port) == f"c1 {net.gateway_a}"


# --- masquerade, isolation, internal, icc -----------------------------------------------------


def test_outbound_traffic_is_masqueraded_to_the_hosts_address(
    net: Topology, firewall: Firewall
) -> None:
    _apply(firewall, _state(net, masquerade=False))
    # The client has no route back to the bridge's subnet: unanswered without masquerade.
    assert net.c1.get(net.client.address, wait=1) is None
    _apply(firewall, _state(net))
    assert net.c1.get(net.client.address) == f"client {net.host_side}"


def test_bridges_are_isolated_except_through_published_ports(
    net: Topology, firewall: Firewall, host_ports: tuple[int, int]
) -> None:
    port, _ = host_ports
    _apply(firewall, FirewallState())
    assert net.c3.get(net.c1.address) == f"c1 {net.c3.address}"  # routed, when no rules
    _apply(firewall, _state(net, _web(net, port)))
    assert net.c3.get(net.c1.address, wait=1) is None
    assert net.c1.get(net.c3.address, wait=1) is None
    # Let in as DNAT'd, and masqueraded as it leaves bridge B's subnet by another bridge.
    assert net.c3.get(net.host_side, port) == f"c1 {net.gateway_a}"


def test_internal_bridge_cannot_reach_out(net: Topology, firewall: Firewall) -> None:
    _apply(firewall, _state(net))
    assert net.c3.get(net.client.address) == f"client {net.host_side}"
    internal = FirewallState(bridges=(net.bridge_a, replace(net.bridge_b, internal=True)))
    _apply(firewall, internal)
    assert net.c3.get(net.client.address, wait=1) is None
    assert net.c1.get(net.c3.address, wait=1) is None


def test_icc_off_blocks_containers_of_the_same_bridge(
    net: Topology, firewall: Firewall, host_ports: tuple[int, int]
) -> None:
    port, _ = host_ports
    _apply(firewall, _state(net, _web(net, port)))
    assert net.c2.get(net.c1.address) == f"c1 {net.c2.address}"
    _apply(firewall, _state(net, _web(net, port), icc=False))
    assert net.c2.get(net.c1.address, wait=1) is None
    assert net.c1.get(net.c2.address, wait=1) is None
    # The host still reaches it through the published port: it routes, not bridges.
    # (A neighbour's way through the host's address is bridged under br_netfilter, and
    # dropped then, as dockerd's ICC rule drops it.)
    assert _host_get("127.0.0.1", port) == f"c1 {net.gateway_a}"


# --- the tables' lifetime ---------------------------------------------------------------------


def test_empty_state_and_remove_leave_no_table(net: Topology, firewall: Firewall) -> None:
    ours = [f"table ip {net.table}", f"table bridge {net.table}"]
    _apply(firewall, _state(net, icc=False))
    assert [line for line in _tables() if line in ours] == ours
    _apply(firewall, FirewallState())
    assert not [line for line in _tables() if line in ours]
    _apply(firewall, _state(net))
    assert [line for line in _tables() if line in ours] == ours[:1]
    asyncio.run(firewall.remove())
    assert not [line for line in _tables() if line in ours]
    asyncio.run(firewall.remove())  # when there is nothing to remove


def test_apply_skips_an_unchanged_state(net: Topology, firewall: Firewall) -> None:
    _apply(firewall, _state(net))
    _sh("nft", "delete", "table", "ip", net.table)  # behind its back
    _apply(firewall, _state(net))
    assert f"table ip {net.table}" not in _tables()  # nothing was run
    _apply(firewall, _state(net, masquerade=False))
    assert f"table ip {net.table}" in _tables()


def test_concurrent_applies_leave_the_last_state(net: Topology, firewall: Firewall) -> None:
    states = [_state(net, _web(net, 20000 + i)) for i in range(6)]

    async def race() -> None:
        await asyncio.gather(*(firewall.apply(state) for state in states))

    asyncio.run(race())
    listed = _run("nft", "list", "map", "ip", net.table, "published_anywhere").stdout
    assert "20005" in listed
    assert not [p for p in range(20000, 20005) if str(p) in listed]


def test_our_tables_leave_the_hosts_other_rules_alone(net: Topology, firewall: Firewall) -> None:
    """Another table of the same name in another family, and other tables, survive."""
    with contextlib.ExitStack() as cleanup:
        _sh("nft", "add", "table", "inet", net.table)
        cleanup.callback(_run, "nft", "delete", "table", "inet", net.table)
        _apply(firewall, _state(net, icc=False))
        asyncio.run(firewall.remove())
        assert f"table inet {net.table}" in _tables()
