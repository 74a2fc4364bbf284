"""Queries the embedded server does not answer, sent on to the sandbox's upstream resolvers
as dockerd does: in order, from inside the container's namespace unless the host's own."""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import logging
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.rcode

from essaim.errors import SystemError_
from essaim.network.netns import in_netns

log = logging.getLogger(__name__)

MAX_UPSTREAMS = 3  # dockerd's maxExtDNS: the first three nameservers of resolv.conf
EXCHANGE_TIMEOUT = 4.0  # dockerd's extIOTimeout, per upstream
RECEIVE_SIZE = 65535  # take oversized UDP replies whole, whatever the query advertised


@dataclass(frozen=True)
class Upstream:
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int = 53
    from_host: bool = False  # a loopback resolver of the host: query it from the host's namespace


class Forwarder:
    """Sends one query to the upstreams of one sandbox and picks the answer to relay."""

    def __init__(self, timeout: float = EXCHANGE_TIMEOUT) -> None:
        self.timeout = timeout

    async def forward(
        self,
        query: dns.message.Message,
        upstreams: Sequence[Upstream],
        netns: Path,
        over_tcp: bool,
        max_size: int,
    ) -> dns.message.Message | None:
        """The first usable upstream response, with the client's id, or None when none
        answered (the caller answers SERVFAIL). SERVFAIL and REFUSED try the next one."""
        for upstream in upstreams[:MAX_UPSTREAMS]:
            reply = await self._ask(query, upstream, netns, over_tcp, max_size)
            if reply is None:
                continue
            if reply.rcode() in (dns.rcode.SERVFAIL, dns.rcode.REFUSED):
                log.debug("upstream %s answered %s", upstream.address, reply.rcode().name)
                continue
            reply.id = query.id
            return reply
        return None

    async def _ask(
        self,
        query: dns.message.Message,
        upstream: Upstream,
        netns: Path,
        over_tcp: bool,
        max_size: int,
    ) -> dns.message.Message | None:
        # A fresh random id upstream, so that only the resolver we asked can answer it.
        outgoing = copy.copy(query)
        outgoing.id = secrets.randbelow(1 << 16)
        if over_tcp:
            return await self._exchange(outgoing, upstream, netns, socket.SOCK_STREAM)
        reply = await self._exchange(outgoing, upstream, netns, socket.SOCK_DGRAM)
        if reply is None or not reply.flags & dns.flags.TC:
            return reply
        # Truncated over UDP: the whole answer over TCP, relayed if it fits the client's
        # buffer (upstreams often cap UDP below what the client takes); else the truncated
        # one, and the client retries over TCP itself.
        whole = await self._exchange(outgoing, upstream, netns, socket.SOCK_STREAM)
        if whole is not None and len(whole.to_wire(max_size=RECEIVE_SIZE)) <= max_size:
            return whole
        return reply

    async def _exchange(
        self,
        outgoing: dns.message.Message,
        upstream: Upstream,
        netns: Path,
        kind: socket.SocketKind,
    ) -> dns.message.Message | None:
        family = socket.AF_INET6 if upstream.address.version == 6 else socket.AF_INET
        where = (str(upstream.address), upstream.port)
        try:
            sock = await self._socket(family, kind, upstream, netns)
        except (OSError, SystemError_) as error:  # SystemError_: the namespace is gone
            log.warning("no socket for upstream %s: %s", upstream.address, error)
            return None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                await loop.sock_connect(sock, where)
                if kind == socket.SOCK_DGRAM:
                    await loop.sock_sendall(sock, outgoing.to_wire(max_size=RECEIVE_SIZE))
                    while True:
                        reply = _reply_to(outgoing, await loop.sock_recv(sock, RECEIVE_SIZE))
                        if reply is not None:
                            return reply
                else:
                    wire = outgoing.to_wire(max_size=RECEIVE_SIZE, prepend_length=True)
                    await loop.sock_sendall(sock, wire)
                    length = int.from_bytes(await _receive_exactly(loop, sock, 2), "big")
                    return _reply_to(outgoing, await _receive_exactly(loop, sock, length))
        except (OSError, TimeoutError, EOFError) as error:
            log.debug("upstream %s:%d failed: %r", *where, error)
            return None
        finally:
            sock.close()

    async def _socket(
        self, family: int, kind: socket.SocketKind, upstream: Upstream, netns: Path
    ) -> socket.socket:
        """A socket in the namespace the upstream is reached from: a socket stays in the
        namespace it was created in, so only its creation needs to happen there."""
        if upstream.from_host:
            sock = socket.socket(family, kind)
        else:
            sock = await in_netns(netns, lambda: socket.socket(family, kind))
        sock.setblocking(False)
        return sock


def _reply_to(outgoing: dns.message.Message, wire: bytes) -> dns.message.Message | None:
    """The upstream's reply if `wire` is one to `outgoing` (same id and question)."""
    try:
        # One RRset per record: relayed as the upstream sent them, duplicates included.
        reply = dns.message.from_wire(wire, one_rr_per_rrset=True)
    except Exception:  # an upstream's bytes are untrusted too
        return None
    try:
        return reply if outgoing.is_response(reply) else None
    except dns.exception.DNSException:
        return None


async def _receive_exactly(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, size: int
) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = await loop.sock_recv(sock, size - len(data))
        if not chunk:
            raise EOFError("upstream closed the connection")
        data += chunk
    return bytes(data)
