"""The embedded DNS server: 127.0.0.11:53 (UDP and TCP) inside each attached sandbox's
namespace, served on the daemon's event loop, answering from the name table or forwarding."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode

from essaim.errors import SystemError_
from essaim.network.dns.answers import (
    TCP_MAX_SIZE,
    error_response,
    local_answer,
    max_response_size,
    parse_query,
    refusal,
    render,
)
from essaim.network.dns.forward import EXCHANGE_TIMEOUT, Forwarder, Upstream
from essaim.network.dns.names import NameTable
from essaim.network.firewall.libnft import run_script
from essaim.network.netns import in_netns

__all__ = ["LISTEN_ADDRESS", "LISTEN_PORT", "EmbeddedDns", "Upstream"]

log = logging.getLogger(__name__)

Address = tuple[Any, int]  # a UDP client, as asyncio hands it over

LISTEN_ADDRESS = "127.0.0.11"
LISTEN_PORT = 53
MAX_FORWARDS = 1024  # dockerd's maxConcurrent: queries in flight upstream, per sandbox
# Queries waiting for a turn upstream and TCP clients, per sandbox: past it a container
# flooding its resolver gets REFUSED at once instead of costing the daemon a task each.
MAX_PENDING = 4 * MAX_FORWARDS
TCP_IDLE_TIMEOUT = 8.0  # the Go DNS server's idle timeout between queries on a connection


@dataclass
class _Sandbox:
    """One sandbox's listeners and what its queries may see and use."""

    netns: Path
    networks: tuple[str, ...]
    upstreams: tuple[Upstream, ...]
    udp: asyncio.DatagramTransport
    udp_closed: asyncio.Future[None]
    tcp: asyncio.Server
    forwards: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_FORWARDS))
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def own(self, task: asyncio.Task[None]) -> None:
        """Track a query's task, so that detaching cancels and awaits it."""
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


class _UdpListener(asyncio.DatagramProtocol):
    def __init__(self, server: EmbeddedDns, sandbox_id: str) -> None:
        self.server = server
        self.sandbox_id = sandbox_id
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.server._datagram(self.sandbox_id, data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("dns udp error in sandbox %s: %s", self.sandbox_id, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


# Inside the sandbox: 127.0.0.11:53 sent to the server's own ports, as dockerd does, so
# that the container may still listen on port 53 of its other addresses (or 0.0.0.0).
REDIRECT_TABLE = "essaim-dns"
# Declared, flushed, filled: a transaction that deletes a table makes the kernel wait
# (about 15 ms here); flushing a chain that is empty, in a new namespace, does not.
REDIRECT = """table ip {table} {{
\tchain output {{
\t\ttype nat hook output priority -100; policy accept;
\t}}
}}
flush chain ip {table} output
add rule ip {table} output ip daddr {address} udp dport {port} dnat to {address}:{udp}
add rule ip {table} output ip daddr {address} tcp dport {port} dnat to {address}:{tcp}
"""


def _listen() -> tuple[socket.socket, socket.socket]:
    """The server's sockets on ports of their own, created by a thread inside the
    sandbox's namespace, which also redirects 127.0.0.11:53 to them."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        udp.bind((LISTEN_ADDRESS, 0))
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((LISTEN_ADDRESS, 0))
        tcp.listen(128)
        udp.setblocking(False)
        tcp.setblocking(False)
        script = REDIRECT.format(
            table=REDIRECT_TABLE, address=LISTEN_ADDRESS, port=LISTEN_PORT,
            udp=udp.getsockname()[1], tcp=tcp.getsockname()[1],
        )  # fmt: skip
        try:
            run_script(script)  # in this thread's namespace: the sandbox's
        except SystemError_ as exc:
            raise OSError(exc.message) from None
    except BaseException:
        udp.close()
        tcp.close()
        raise
    return udp, tcp


class EmbeddedDns:
    """One server for all sandboxes, sharing the name table; each sandbox has its own
    sockets (which keep its namespace alive: detach before removing the namespace)."""

    def __init__(self, names: NameTable, *, upstream_timeout: float = EXCHANGE_TIMEOUT) -> None:
        self.names = names
        self._forwarder = Forwarder(upstream_timeout)
        self._sandboxes: dict[str, _Sandbox] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def attach(
        self,
        sandbox_id: str,
        netns: Path,
        networks: Sequence[str],
        upstreams: Sequence[Upstream],
    ) -> None:
        """Serve the sandbox at `netns` (its `lo` up); again: new networks and upstreams."""
        async with self._lock(sandbox_id):
            sandbox = self._sandboxes.get(sandbox_id)
            if sandbox is not None:
                sandbox.networks = tuple(networks)
                sandbox.upstreams = tuple(upstreams)
                return
            try:
                udp_sock, tcp_sock = await in_netns(netns, _listen)
            except OSError as error:
                raise SystemError_(
                    f"embedded DNS server on {LISTEN_ADDRESS}:{LISTEN_PORT} in {netns}: {error}"
                ) from error
            loop = asyncio.get_running_loop()
            try:
                transport, listener = await loop.create_datagram_endpoint(
                    lambda: _UdpListener(self, sandbox_id), sock=udp_sock
                )
            except BaseException:
                udp_sock.close()
                tcp_sock.close()
                raise
            try:
                tcp = await asyncio.start_server(
                    lambda r, w: self._connection(sandbox_id, r, w), sock=tcp_sock
                )
            except BaseException:
                tcp_sock.close()
                transport.close()
                await listener.closed
                raise
            self._sandboxes[sandbox_id] = _Sandbox(
                netns, tuple(networks), tuple(upstreams), transport, listener.closed, tcp
            )

    def update(self, sandbox_id: str, networks: Sequence[str]) -> None:
        """The sandbox's networks changed (connect, disconnect): next queries see them.
        A sandbox not attached (no embedded DNS) is left alone."""
        sandbox = self._sandboxes.get(sandbox_id)
        if sandbox is not None:
            sandbox.networks = tuple(networks)

    async def detach(self, sandbox_id: str) -> None:
        """Close the sandbox's sockets and end its queries in flight; unknown: nothing."""
        async with self._lock(sandbox_id):
            sandbox = self._sandboxes.pop(sandbox_id, None)
            if sandbox is not None:
                await self._stop(sandbox)
        self._locks.pop(sandbox_id, None)

    async def close(self) -> None:
        for sandbox_id in list(self._sandboxes):
            await self.detach(sandbox_id)

    def attached(self) -> list[str]:
        return sorted(self._sandboxes)

    def _lock(self, sandbox_id: str) -> asyncio.Lock:
        return self._locks.setdefault(sandbox_id, asyncio.Lock())

    async def _stop(self, sandbox: _Sandbox) -> None:
        sandbox.tcp.close()  # closes the listening socket at once
        sandbox.udp.close()
        for task in list(sandbox.tasks):
            task.cancel()
        await asyncio.gather(*sandbox.tasks, return_exceptions=True)
        await sandbox.udp_closed
        await sandbox.tcp.wait_closed()

    # Serving

    def _datagram(self, sandbox_id: str, data: bytes, addr: Address) -> None:
        """A UDP query: answered on the spot when the table has it (no task, no await),
        forwarded by a task of the sandbox otherwise."""
        sandbox = self._sandboxes.get(sandbox_id)
        query = parse_query(data)
        if sandbox is None or query is None:
            return
        try:
            max_size = max_response_size(query, over_tcp=False)
            response = self._own_response(sandbox, query)
            if response is None and len(sandbox.tasks) >= MAX_PENDING:
                response = error_response(query, dns.rcode.REFUSED)
            if response is not None:
                sandbox.udp.sendto(render(response, max_size), addr)
                return
        except Exception:  # one odd query must not disturb the sandbox's listener
            log.exception("dns query dropped in sandbox %s", sandbox_id)
            return
        sandbox.own(asyncio.create_task(self._forward_udp(sandbox, query, addr, max_size)))

    async def _forward_udp(
        self,
        sandbox: _Sandbox,
        query: dns.message.Message,
        addr: Address,
        max_size: int,
    ) -> None:
        try:
            response = await self._forwarded(sandbox, query, over_tcp=False, max_size=max_size)
            if not sandbox.udp.is_closing():
                # Relayed as the upstream sent it (dockerd does too), even past the client's
                # size: the client's own buffer is the judge.
                sandbox.udp.sendto(render(response, TCP_MAX_SIZE), addr)
        except Exception:  # the task's owner only cancels it: report here
            log.exception("dns query to forward dropped")

    async def _connection(
        self, sandbox_id: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """A TCP client: length-prefixed queries answered in turn until it closes or idles."""
        sandbox = self._sandboxes.get(sandbox_id)
        task = asyncio.current_task()
        if sandbox is None or task is None or len(sandbox.tasks) >= MAX_PENDING:
            writer.close()
            return
        sandbox.own(task)
        try:
            while True:
                async with asyncio.timeout(TCP_IDLE_TIMEOUT):
                    length = int.from_bytes(await reader.readexactly(2), "big")
                    data = await reader.readexactly(length)
                query = parse_query(data)
                if query is None:
                    return  # not DNS: a stream cannot resynchronise, so hang up
                response = self._own_response(sandbox, query)
                if response is None:
                    response = await self._forwarded(
                        sandbox, query, over_tcp=True, max_size=TCP_MAX_SIZE
                    )
                wire = render(response, TCP_MAX_SIZE)
                writer.write(len(wire).to_bytes(2, "big") + wire)
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            return
        except Exception:
            log.exception("dns connection dropped in sandbox %s", sandbox_id)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _own_response(
        self, sandbox: _Sandbox, query: dns.message.Message
    ) -> dns.message.Message | None:
        """The response the server makes itself, or None to forward the query."""
        refused = refusal(query)
        if refused is not None:
            return refused
        response = local_answer(self.names, sandbox.networks, query)
        if response is None and not sandbox.upstreams:
            # Nowhere to forward (an internal network, or no resolver): dockerd's resolver
            # without proxyDNS answers SERVFAIL at once.
            return error_response(query, dns.rcode.SERVFAIL)
        return response

    async def _forwarded(
        self, sandbox: _Sandbox, query: dns.message.Message, over_tcp: bool, max_size: int
    ) -> dns.message.Message:
        """The upstreams' answer, SERVFAIL if none gave one, REFUSED when the sandbox has
        too many queries upstream already (as dockerd, after waiting as long as one try)."""
        try:
            async with asyncio.timeout(self._forwarder.timeout):
                await sandbox.forwards.acquire()
        except TimeoutError:
            log.warning("more than %d concurrent dns queries upstream", MAX_FORWARDS)
            return error_response(query, dns.rcode.REFUSED)
        try:
            reply = await self._forwarder.forward(
                query, sandbox.upstreams, sandbox.netns, over_tcp, max_size
            )
        finally:
            sandbox.forwards.release()
        return reply if reply is not None else error_response(query, dns.rcode.SERVFAIL)
