"""Forwarding to upstream resolvers, against small DNS servers on this host's loopback
(`from_host` upstreams, so no namespace and no root): order, failover, TCP, truncation."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import pytest

from essaim.network.dns.forward import Forwarder, Upstream
from tests.dns_upstream import UpstreamServer, bound_pair

LOOPBACK = ipaddress.IPv4Address("127.0.0.1")
NO_NAMESPACE = Path("/nonexistent")  # from_host upstreams never enter one


def run(body: Callable[[list[Upstream]], Awaitable[None]], *servers: UpstreamServer) -> None:
    """`body(upstreams)` with each server listening on a loopback port of its own."""

    async def main() -> None:
        upstreams = []
        for server in servers:
            udp, tcp = bound_pair("127.0.0.1")
            upstreams.append(Upstream(LOOPBACK, udp.getsockname()[1], from_host=True))
            await server.start(udp, tcp)
        try:
            await body(upstreams)
        finally:
            for server in servers:
                await server.stop()

    asyncio.run(main())


def dead_upstream() -> Upstream:
    """A loopback port nothing listens on (UDP there gets a port unreachable)."""
    udp, tcp = bound_pair("127.0.0.1")
    port = udp.getsockname()[1]
    udp.close()
    tcp.close()
    return Upstream(LOOPBACK, port, from_host=True)


def addresses(response: dns.message.Message | None) -> list[str]:
    assert response is not None
    return [rdata.to_text() for rrset in response.answer for rdata in rrset]


async def forward(
    upstreams: list[Upstream],
    name: str,
    over_tcp: bool = False,
    max_size: int = 512,
    upstream_timeout: float = 4.0,
) -> dns.message.Message | None:
    query = dns.message.make_query(name, "A")
    forwarder = Forwarder(upstream_timeout)
    reply = await forwarder.forward(query, upstreams, NO_NAMESPACE, over_tcp, max_size)
    if reply is not None:
        assert reply.id == query.id  # the client's id, whatever id went upstream
    return reply


def test_answer_comes_from_the_first_upstream() -> None:
    first = UpstreamServer({"example.test": ["10.213.9.1"]})
    second = UpstreamServer({"example.test": ["10.213.9.2"]})

    async def body(upstreams: list[Upstream]) -> None:
        assert addresses(await forward(upstreams, "example.test")) == ["10.213.9.1"]

    run(body, first, second)
    assert first.names_asked("udp") == ["example.test"]
    assert second.asked == []


def test_upstream_answers_keep_their_order() -> None:
    order = ["10.213.9.9", "10.213.9.7", "10.213.9.8", "10.213.9.1"]
    server = UpstreamServer({"example.test": order})

    async def body(upstreams: list[Upstream]) -> None:
        assert addresses(await forward(upstreams, "example.test")) == order

    run(body, server)


@pytest.mark.parametrize("rcode", [dns.rcode.SERVFAIL, dns.rcode.REFUSED])
def test_servfail_or_refused_moves_to_the_next_upstream(rcode: dns.rcode.Rcode) -> None:
    failing = UpstreamServer(rcode=rcode)
    working = UpstreamServer({"example.test": ["10.213.9.2"]})

    async def body(upstreams: list[Upstream]) -> None:
        assert addresses(await forward(upstreams, "example.test")) == ["10.213.9.2"]

    run(body, failing, working)
    assert failing.names_asked() == ["example.test"]


def test_nxdomain_is_an_answer() -> None:
    first = UpstreamServer()
    second = UpstreamServer({"example.test": ["10.213.9.2"]})

    async def body(upstreams: list[Upstream]) -> None:
        reply = await forward(upstreams, "example.test")
        assert reply is not None and reply.rcode() == dns.rcode.NXDOMAIN

    run(body, first, second)
    assert second.asked == []


def test_dead_and_silent_upstreams_are_skipped() -> None:
    silent = UpstreamServer(silent=True)
    working = UpstreamServer({"example.test": ["10.213.9.3"]})

    async def body(upstreams: list[Upstream]) -> None:
        chain = [dead_upstream(), upstreams[0], upstreams[1]]
        reply = await forward(chain, "example.test", upstream_timeout=0.3)
        assert addresses(reply) == ["10.213.9.3"]

    run(body, silent, working)
    assert silent.names_asked() == ["example.test"]


def test_no_upstream_answering_gives_none() -> None:
    async def body(upstreams: list[Upstream]) -> None:
        chain = [dead_upstream(), *upstreams]
        assert await forward(chain, "example.test", upstream_timeout=0.3) is None
        assert await forward([], "example.test") is None

    run(body, UpstreamServer(rcode=dns.rcode.SERVFAIL), UpstreamServer(silent=True))


def test_only_the_first_three_upstreams_are_tried() -> None:
    servers = [UpstreamServer(rcode=dns.rcode.SERVFAIL) for _ in range(3)]
    fourth = UpstreamServer({"example.test": ["10.213.9.4"]})

    async def body(upstreams: list[Upstream]) -> None:
        assert await forward(upstreams, "example.test") is None

    run(body, *servers, fourth)
    assert fourth.asked == []


def test_client_over_tcp_is_forwarded_over_tcp() -> None:
    server = UpstreamServer({"example.test": ["10.213.9.5"]})

    async def body(upstreams: list[Upstream]) -> None:
        reply = await forward(upstreams, "example.test", over_tcp=True, max_size=65535)
        assert addresses(reply) == ["10.213.9.5"]

    run(body, server)
    assert [a.proto for a in server.asked] == ["tcp"]


def test_truncated_udp_answer_is_asked_again_over_tcp() -> None:
    server = UpstreamServer({"example.test": ["10.213.9.6", "10.213.9.7"]}, truncate_udp=True)

    async def body(upstreams: list[Upstream]) -> None:
        reply = await forward(upstreams, "example.test")
        assert reply is not None and not reply.flags & dns.flags.TC
        assert sorted(addresses(reply)) == ["10.213.9.6", "10.213.9.7"]

    run(body, server)
    assert [a.proto for a in server.asked] == ["udp", "tcp"]


def test_tcp_answer_too_big_for_the_client_relays_the_truncated_one() -> None:
    many = [f"10.213.10.{n}" for n in range(1, 101)]
    server = UpstreamServer({"example.test": many}, truncate_udp=True)

    async def body(upstreams: list[Upstream]) -> None:
        reply = await forward(upstreams, "example.test", max_size=512)
        assert reply is not None and reply.flags & dns.flags.TC
        reply = await forward(upstreams, "example.test", max_size=4096)
        assert reply is not None and len(addresses(reply)) == 100

    run(body, server)
