"""The embedded DNS server in real network namespaces, asked from inside them by busybox
nslookup and dnspython: names per network, round robin, forwarding from the host's loopback
and from the sandbox's namespace, SERVFAIL, TCP, isolation of slow upstreams, detach."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import random
import secrets
import socket
import subprocess
import tempfile
import threading
from collections.abc import Coroutine, Iterator, Sequence
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, TypeVar

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.reversename
import pytest
from pyroute2 import IPRoute

from essaim.network.dns.names import DnsRecord, NameTable
from essaim.network.dns.server import EmbeddedDns, Upstream
from essaim.network.netns import NamespaceFiles, run_in_netns
from tests.dns_upstream import UpstreamServer, bound_pair, link_namespaces

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

T = TypeVar("T")

FRONT = secrets.token_hex(32)
BACK = secrets.token_hex(32)
UPSTREAM_TIMEOUT = 2.0  # short, so that the silent-upstream test ends soon


def _lo_up() -> None:
    with IPRoute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")


class Lab:
    """Namespaces under a private root, a name table, an EmbeddedDns on an event loop of
    its own thread, and upstream servers; everything made is removed by `cleanup`."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="es-dns-", dir="/tmp"))
        self.spaces = NamespaceFiles(self.root)
        self.spaces.prepare()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.subnet = random.randrange(0, 256)
        self.names = NameTable()
        self.dns = EmbeddedDns(self.names, upstream_timeout=UPSTREAM_TIMEOUT)
        self.upstreams: list[UpstreamServer] = []

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def address(self, host: int, subnet: int = 0) -> IPv4Address:
        return IPv4Address(f"10.213.{(self.subnet + subnet) % 256}.{host}")

    def namespace(self, name: str) -> Path:
        path = self.spaces.create(name)
        run_in_netns(path, _lo_up)
        return path

    def endpoint(self, network: str, container: str, address: IPv4Address, *aliases: str) -> str:
        container_id = secrets.token_hex(32)
        network_name = "front" if network == FRONT else "back"
        self.names.set_endpoint(
            DnsRecord(
                network,
                network_name,
                container_id,
                (container, *aliases, container_id[:12]),
                address,
            )
        )
        return container_id

    def attach(self, sandbox: str, path: Path, networks: Sequence[str], *ups: Upstream) -> None:
        self.call(self.dns.attach(sandbox, path, networks, ups))

    def serve(self, server: UpstreamServer, sockets: tuple[socket.socket, socket.socket]) -> None:
        self.upstreams.append(server)
        self.call(server.start(*sockets))

    def host_upstream(self, server: UpstreamServer) -> Upstream:
        """`server` on the host's loopback, to be asked from the host's namespace."""
        sockets = bound_pair("127.0.0.1")
        self.serve(server, sockets)
        return Upstream(IPv4Address("127.0.0.1"), sockets[0].getsockname()[1], from_host=True)

    def namespace_upstream(self, sandbox: Path, server: UpstreamServer) -> Upstream:
        """`server` in a namespace of its own, reachable from `sandbox` only, by a veth
        pair: 10.213.x.1 on the sandbox's side, the server on 10.213.x.2:53."""
        other = self.namespace(f"up-{secrets.token_hex(4)}")
        here, there = self.address(1, subnet=1), self.address(2, subnet=1)
        link_namespaces(sandbox, other, here, there)
        self.serve(server, run_in_netns(other, lambda: bound_pair(str(there), 53)))
        return Upstream(there)

    def cleanup(self) -> None:
        try:
            self.call(self.dns.close())
            for server in self.upstreams:
                self.call(server.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            self.loop.close()
            for name in self.spaces.names():
                self.spaces.remove(name)
            subprocess.run(["umount", str(self.root)], check=False)
            self.root.rmdir()


@pytest.fixture
def lab() -> Iterator[Lab]:
    made = Lab()
    try:
        yield made
    finally:
        made.cleanup()


def ask(
    sandbox: Path, name: str, rdtype: str = "A", tcp: bool = False, wait: float = 10.0
) -> dns.message.Message:
    """A query to 127.0.0.11 from a socket opened inside `sandbox`."""
    query = dns.message.make_query(name, rdtype)
    kind = socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM
    sock = run_in_netns(sandbox, lambda: socket.socket(socket.AF_INET, kind))
    with sock:
        if tcp:
            sock.connect(("127.0.0.11", 53))
        sock.setblocking(False)  # as dnspython makes its own: it waits with select
        if tcp:
            response = dns.query.tcp(
                query, "127.0.0.11", timeout=wait, sock=sock, one_rr_per_rrset=True
            )
        else:
            response = dns.query.udp(
                query, "127.0.0.11", timeout=wait, sock=sock, one_rr_per_rrset=True
            )
    assert response.id == query.id
    return response


def addresses(response: dns.message.Message) -> list[str]:
    return [rdata.to_text() for rrset in response.answer for rdata in rrset]


def nslookup(sandbox: Path, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nsenter", f"--net={sandbox}", "busybox", "nslookup", name, "127.0.0.11"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def listening(sandbox: Path) -> list[str]:
    """The /proc/net/{udp,tcp} lines of sockets on 127.0.0.11 (any port) in `sandbox`."""
    lines = []
    for table in ("udp", "tcp"):
        done = subprocess.run(
            ["nsenter", f"--net={sandbox}", "cat", f"/proc/net/{table}"],
            capture_output=True,
            text=True,
            check=True,
        )
        lines += [line for line in done.stdout.splitlines() if "0B00007F:" in line]
    return lines


def test_container_names_resolve_for_busybox_nslookup(lab: Lab) -> None:
    sandbox = lab.namespace("a")
    lab.endpoint(FRONT, "client", lab.address(4))
    web_id = lab.endpoint(FRONT, "c1", lab.address(2), "web")
    lab.attach("a", sandbox, [FRONT])

    for name in ("c1", "web", web_id[:12], "c1.front"):
        done = nslookup(sandbox, name)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"Address: {lab.address(2)}" in done.stdout, done.stdout
    done = nslookup(sandbox, "client")
    assert f"Address: {lab.address(4)}" in done.stdout


def test_answers_carry_dockers_records(lab: Lab) -> None:
    sandbox = lab.namespace("a")
    lab.endpoint(FRONT, "c1", lab.address(2))
    lab.attach("a", sandbox, [FRONT])

    response = ask(sandbox, "c1")
    assert addresses(response) == [str(lab.address(2))]
    assert response.answer[0].ttl == 600
    assert response.flags & dns.flags.RA
    aaaa = ask(sandbox, "c1", "AAAA")
    assert aaaa.rcode() == dns.rcode.NOERROR and aaaa.answer == []
    ptr = ask(sandbox, dns.reversename.from_address(str(lab.address(2))).to_text(), "PTR")
    assert addresses(ptr) == ["c1.front."]


def test_shared_alias_answers_all_holders_in_turn(lab: Lab) -> None:
    sandbox = lab.namespace("a")
    lab.endpoint(FRONT, "c1", lab.address(2), "web")
    lab.endpoint(FRONT, "c2", lab.address(3), "web")
    lab.attach("a", sandbox, [FRONT])

    answers = [addresses(ask(sandbox, "web")) for _ in range(2)]
    assert all(
        sorted(answer) == sorted([str(lab.address(2)), str(lab.address(3))]) for answer in answers
    )
    assert answers[0] != answers[1]


def test_other_network_sandbox_does_not_see_the_names(lab: Lab) -> None:
    front, back = lab.namespace("a"), lab.namespace("b")
    lab.endpoint(FRONT, "c1", lab.address(2), "web")
    lab.endpoint(BACK, "d1", lab.address(2, subnet=2))
    upstream = UpstreamServer()  # knows no name: NXDOMAIN
    resolver = lab.host_upstream(upstream)
    lab.attach("a", front, [FRONT], resolver)
    lab.attach("b", back, [BACK], resolver)

    assert addresses(ask(back, "d1")) == [str(lab.address(2, subnet=2))]
    for name in ("c1", "web", "c1.front"):
        assert ask(back, name).rcode() == dns.rcode.NXDOMAIN  # forwarded, not answered
    assert ask(front, "d1").rcode() == dns.rcode.NXDOMAIN
    assert sorted(upstream.names_asked()) == ["c1", "c1.front", "d1", "web"]


def test_update_changes_what_the_sandbox_sees(lab: Lab) -> None:
    sandbox = lab.namespace("a")
    lab.endpoint(BACK, "d1", lab.address(2, subnet=2))
    lab.attach("a", sandbox, [FRONT])
    assert ask(sandbox, "d1").rcode() == dns.rcode.SERVFAIL  # not ours, nowhere to forward

    lab.dns.update("a", [FRONT, BACK])
    assert addresses(ask(sandbox, "d1")) == [str(lab.address(2, subnet=2))]
    lab.dns.update("a", [FRONT])
    assert ask(sandbox, "d1").rcode() == dns.rcode.SERVFAIL


def test_forwards_to_a_host_loopback_resolver_from_the_host(lab: Lab) -> None:
    sandbox = lab.namespace("a")
    order = ["10.213.250.7", "10.213.250.3", "10.213.250.5"]
    upstream = UpstreamServer({"example.test": order})
    lab.attach("a", sandbox, [FRONT], lab.host_upstream(upstream))

    done = nslookup(sandbox, "example.test")
    assert "Address: 10.213.250.7" in done.stdout, done.stdout + done.stderr
    assert addresses(ask(sandbox, "example.test")) == order  # relayed in the upstream's order
    assert ask(sandbox, "missing.test").rcode() == dns.rcode.NXDOMAIN


def test_forwards_from_inside_the_sandboxs_namespace(lab: Lab) -> None:
    sandbox = lab.namespace("a")
    upstream = UpstreamServer({"example.test": ["10.213.250.8"]})
    lab.attach("a", sandbox, [FRONT], lab.namespace_upstream(sandbox, upstream))

    assert addresses(ask(sandbox, "example.test")) == ["10.213.250.8"]
    # It came over the sandbox's veth: the host has no way to that address.
    assert [a.source for a in upstream.asked] == [str(lab.address(1, subnet=1))]


def test_loopback_upstream_not_from_host_is_asked_in_the_sandbox(lab: Lab) -> None:
    sandbox = lab.namespace("a")
    upstream = UpstreamServer({"example.test": ["10.213.250.9"]})
    on_host = lab.host_upstream(upstream)
    lab.attach("a", sandbox, [FRONT], Upstream(on_host.address, on_host.port))

    # The sandbox's own loopback has no resolver on that port.
    assert ask(sandbox, "example.test").rcode() == dns.rcode.SERVFAIL
    assert upstream.asked == []


def test_dead_upstream_gives_servfail_and_the_next_one_is_tried(lab: Lab) -> None:
    sandbox, other = lab.namespace("a"), lab.namespace("b")
    dead_udp, dead_tcp = bound_pair("127.0.0.1")
    dead = Upstream(IPv4Address("127.0.0.1"), dead_udp.getsockname()[1], from_host=True)
    dead_udp.close()
    dead_tcp.close()
    alive = lab.host_upstream(UpstreamServer({"example.test": ["10.213.250.10"]}))
    lab.attach("a", sandbox, [FRONT], dead)
    lab.attach("b", other, [FRONT], dead, alive)

    assert ask(sandbox, "example.test").rcode() == dns.rcode.SERVFAIL
    assert addresses(ask(other, "example.test")) == ["10.213.250.10"]


def test_internal_sandbox_without_upstreams_gets_servfail_for_other_names(lab: Lab) -> None:
    sandbox = lab.namespace("a")
    lab.endpoint(FRONT, "c1", lab.address(2))
    lab.attach("a", sandbox, [FRONT])

    assert addresses(ask(sandbox, "c1")) == [str(lab.address(2))]
    assert ask(sandbox, "example.test").rcode() == dns.rcode.SERVFAIL
    assert ask(sandbox, "example.test", "TXT").rcode() == dns.rcode.SERVFAIL


def test_tcp_queries_are_answered_and_forwarded_over_tcp(lab: Lab) -> None:
    sandbox = lab.namespace("a")
    lab.endpoint(FRONT, "c1", lab.address(2))
    upstream = UpstreamServer({"example.test": ["10.213.250.11"]})
    lab.attach("a", sandbox, [FRONT], lab.host_upstream(upstream))

    assert addresses(ask(sandbox, "c1", tcp=True)) == [str(lab.address(2))]
    assert addresses(ask(sandbox, "example.test", tcp=True)) == ["10.213.250.11"]
    assert [a.proto for a in upstream.asked] == ["tcp"]


def test_truncated_upstream_answer_is_fetched_over_tcp(lab: Lab) -> None:
    sandbox = lab.namespace("a")
    both = ["10.213.250.12", "10.213.250.13"]
    upstream = UpstreamServer({"example.test": both}, truncate_udp=True)
    lab.attach("a", sandbox, [FRONT], lab.host_upstream(upstream))

    response = ask(sandbox, "example.test")
    assert not response.flags & dns.flags.TC
    assert sorted(addresses(response)) == both
    assert [a.proto for a in upstream.asked] == ["udp", "tcp"]


def test_slow_upstream_does_not_hold_up_other_sandboxes(lab: Lab) -> None:
    slow_sandbox, other = lab.namespace("a"), lab.namespace("b")
    lab.endpoint(BACK, "d1", lab.address(2, subnet=2))
    silent = UpstreamServer(silent=True)
    lab.attach("a", slow_sandbox, [FRONT], lab.host_upstream(silent))
    lab.attach(
        "b", other, [BACK], lab.host_upstream(UpstreamServer({"ok.test": ["10.213.250.14"]}))
    )

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(ask, slow_sandbox, "slow.test")
        while not silent.asked:  # the slow query is upstream now
            threading.Event().wait(0.01)
        assert addresses(ask(other, "d1")) == [str(lab.address(2, subnet=2))]
        assert addresses(ask(other, "ok.test")) == ["10.213.250.14"]
        assert not pending.done()  # answered both while the silent upstream still had it
        assert pending.result().rcode() == dns.rcode.SERVFAIL


def test_malformed_packets_are_dropped_and_serving_goes_on(lab: Lab) -> None:
    sandbox = lab.namespace("a")
    lab.endpoint(FRONT, "c1", lab.address(2))
    lab.attach("a", sandbox, [FRONT])

    def garbage() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            for packet in (b"", b"\x12", b"\xff" * 12, os.urandom(300)):
                udp.sendto(packet, ("127.0.0.11", 53))
        with socket.create_connection(("127.0.0.11", 53)) as tcp:
            tcp.sendall(b"\x00\x05hello")

    run_in_netns(sandbox, garbage)
    assert addresses(ask(sandbox, "c1")) == [str(lab.address(2))]
    assert addresses(ask(sandbox, "c1", tcp=True)) == [str(lab.address(2))]


def test_attach_again_updates_and_detach_leaves_nothing_listening(lab: Lab) -> None:
    sandbox = lab.namespace("a")
    lab.endpoint(BACK, "d1", lab.address(2, subnet=2))
    lab.attach("a", sandbox, [FRONT])
    lab.attach("a", sandbox, [BACK])  # again: new networks, same sockets
    assert addresses(ask(sandbox, "d1")) == [str(lab.address(2, subnet=2))]
    assert len(listening(sandbox)) == 2  # one UDP, one TCP

    lab.call(lab.dns.detach("a"))
    assert listening(sandbox) == []
    assert lab.dns.attached() == []
    with pytest.raises(dns.exception.Timeout):
        ask(sandbox, "d1", wait=0.5)

    lab.attach("a", sandbox, [BACK])  # and it can come back
    assert addresses(ask(sandbox, "d1")) == [str(lab.address(2, subnet=2))]
    lab.call(lab.dns.detach("a"))
    lab.call(lab.dns.detach("a"))  # twice: nothing to do
    assert listening(sandbox) == []
