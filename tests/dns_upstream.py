"""A small upstream DNS server for the embedded server's tests: real UDP and TCP sockets
(wherever the test opened them), answering fixed names and recording what it was asked."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from pyroute2 import IPRoute

from essaim.network.netns import run_in_netns


@dataclass
class Asked:
    """One query as the upstream saw it."""

    proto: str  # "udp" or "tcp"
    source: str  # the address it came from
    name: str
    id: int


@dataclass
class UpstreamServer:
    """`records`: name -> addresses (A, TTL 30); other names NXDOMAIN. `rcode` forces an
    error for every query; `silent` never answers; `truncate_udp` answers UDP with TC
    and no records, so only TCP gets the records."""

    records: dict[str, list[str]] = field(default_factory=dict)
    rcode: dns.rcode.Rcode | None = None
    silent: bool = False
    truncate_udp: bool = False
    asked: list[Asked] = field(default_factory=list)
    _udp: asyncio.DatagramTransport | None = None
    _tcp: asyncio.Server | None = None

    async def start(self, udp: socket.socket, tcp: socket.socket) -> None:
        """Serve on bound sockets (`tcp` listening) on the running loop."""
        udp.setblocking(False)
        tcp.setblocking(False)
        loop = asyncio.get_running_loop()
        server = self

        class Datagrams(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[Any, int]) -> None:
                wire = server._answer(data, "udp", addr[0])
                if wire is not None and server._udp is not None:
                    server._udp.sendto(wire, addr)

        self._udp, _ = await loop.create_datagram_endpoint(Datagrams, sock=udp)
        self._tcp = await asyncio.start_server(self._connection, sock=tcp)

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()

    def names_asked(self, proto: str | None = None) -> list[str]:
        return [a.name for a in self.asked if proto is None or a.proto == proto]

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        source = writer.get_extra_info("peername")[0]
        try:
            while True:
                length = int.from_bytes(await reader.readexactly(2), "big")
                wire = self._answer(await reader.readexactly(length), "tcp", source)
                if wire is None:
                    await asyncio.sleep(3600)
                    return
                writer.write(len(wire).to_bytes(2, "big") + wire)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _answer(self, data: bytes, proto: str, source: str) -> bytes | None:
        query = dns.message.from_wire(data)
        name = query.question[0].name.to_text(omit_final_dot=True).lower()
        self.asked.append(Asked(proto, source, name, query.id))
        if self.silent:
            return None
        response = dns.message.make_response(query, recursion_available=True)
        if self.rcode is not None:
            response.set_rcode(self.rcode)
        elif name not in self.records:
            response.set_rcode(dns.rcode.NXDOMAIN)
            response.flags |= dns.flags.AA
        elif proto == "udp" and self.truncate_udp:
            response.flags |= dns.flags.TC
        else:
            rdatas = [
                dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.A, address)
                for address in self.records[name]
            ]
            response.answer.append(dns.rrset.from_rdata_list(query.question[0].name, 30, rdatas))
        return response.to_wire(max_size=65535, want_shuffle=False)  # records in given order


def bound_pair(address: str, port: int = 0) -> tuple[socket.socket, socket.socket]:
    """A UDP and a listening TCP socket on the same `address:port` (port 0: a free one,
    the same for both). Call it inside the namespace the server should live in."""
    for _ in range(20):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind((address, port))
        chosen = udp.getsockname()[1]
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((address, chosen))
        except OSError:
            udp.close()
            tcp.close()
            if port:
                raise
            continue
        tcp.listen(16)
        return udp, tcp
    raise OSError(f"no port free for both UDP and TCP on {address}")


def link_namespaces(near_ns: Path, far_ns: Path, near: IPv4Address, far: IPv4Address) -> None:
    """A veth pair between two namespaces, `near`/24 on one end and `far`/24 on the other,
    both up (the pair goes with either namespace)."""
    near_name, far_name = f"es{secrets.token_hex(5)}", f"es{secrets.token_hex(5)}"

    def up(ipr: IPRoute, name: str, address: IPv4Address) -> None:
        index = ipr.link_lookup(ifname=name)[0]
        ipr.addr("add", index=index, address=str(address), prefixlen=24)
        ipr.link("set", index=index, state="up")

    def near_side() -> None:
        with IPRoute() as ipr:
            ipr.link("add", ifname=near_name, kind="veth", peer=far_name)
            fd = os.open(far_ns, os.O_RDONLY)
            try:
                ipr.link("set", index=ipr.link_lookup(ifname=far_name)[0], net_ns_fd=fd)
            finally:
                os.close(fd)
            up(ipr, near_name, near)

    def far_side() -> None:
        with IPRoute() as ipr:
            up(ipr, far_name, far)

    run_in_netns(near_ns, near_side)
    run_in_netns(far_ns, far_side)
