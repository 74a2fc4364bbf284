"""Host ports held by published ports: Docker's allocator (the next free port after the last
one given, in the ephemeral range or a -p range) and a bound socket per port, so that no other
process can take the port while the container runs."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path

from essaim.errors import InvalidParameter, SystemError_
from essaim.network.firewall.model import PROTOCOLS

PORT_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
FALLBACK_RANGE = (49153, 65535)  # dockerd's, when the kernel's range cannot be read
MAX_ATTEMPTS = 10  # dockerd's maxAllocatePortAttempts, for ranges and ephemeral ports
ANY = "0.0.0.0"


def read_ephemeral_range(path: Path = PORT_RANGE_FILE) -> tuple[int, int]:
    try:
        begin, end = (int(word) for word in path.read_text().split())
    except (OSError, ValueError):
        return FALLBACK_RANGE
    return (begin, end) if 0 < begin <= end <= 65535 else FALLBACK_RANGE


@dataclass(frozen=True)
class Reservation:
    proto: str
    host_ip: IPv4Address | None  # None: every host address
    host_port: int
    _socket: socket.socket = field(repr=False, compare=False)


def _binding(
    host: str, start: int, end: int, target: tuple[IPv4Address, int] | None, proto: str
) -> str:
    """A port binding as dockerd's PortBinding.String() spells it in its errors:
    `HostIP:HostPort[-HostPortEnd]:IP:Port/Proto`. A request without a host port leaves
    two colons in a row, in dockerd's text too."""
    ports = "" if not start else str(start) if end == start else f"{start}-{end}"
    if target is None:  # the caller did not say: the host side alone
        return f"{host}:{ports}/{proto}"
    return f"{host}:{ports}:{target[0]}:{target[1]}/{proto}"


def _reason(exc: OSError) -> str:
    """Go prints errno text in lower case ("address already in use")."""
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


_SOCKET_TYPES = {
    "tcp": (socket.SOCK_STREAM, socket.IPPROTO_TCP),
    "udp": (socket.SOCK_DGRAM, socket.IPPROTO_UDP),
    "sctp": (socket.SOCK_STREAM, socket.IPPROTO_SCTP),
}


def _open(proto: str, binding: str) -> socket.socket:
    kind, number = _SOCKET_TYPES[proto]
    try:
        return socket.socket(socket.AF_INET, kind, number)  # close-on-exec: runc never has it
    except OSError as exc:  # SCTP on a kernel without it, say
        raise SystemError_(
            f"failed to create socket for userland proxy for {binding}: {_reason(exc)}"
        ) from exc


def _bind(sock: socket.socket, proto: str, host: str, port: int) -> None:
    """Bind `sock`, or close it and raise the OSError."""
    try:
        if proto == "tcp":
            # As dockerd: SO_REUSEADDR so a port in TIME_WAIT can be taken again, then
            # listen, because a listener is what makes bind() refuse 0.0.0.0:p next to
            # 127.0.0.1:p. Nothing accepts: the DNAT rule takes the packets first.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # UDP keeps SO_REUSEADDR off (dockerd sets it): with it, two UDP sockets share a
        # port, and a second reservation of ours or another process's would not be refused.
        sock.bind((host, port))
        if proto == "tcp":
            sock.listen(0)
    except BaseException:
        sock.close()
        raise


class HostPorts:
    """The host ports of this daemon. Its own conflicts get dockerd's allocator error
    ("port is already allocated"), other processes' the kernel's ("address already in
    use"). Safe to call from several threads."""

    def __init__(self, ephemeral: tuple[int, int] | None = None) -> None:
        self.ephemeral = ephemeral if ephemeral is not None else read_ephemeral_range()
        self._taken: dict[tuple[str, str], set[int]] = {}  # (address, proto) -> ports
        self._last: dict[tuple[str, str, int, int], int] = {}  # per range: the last given
        self._lock = threading.Lock()

    def reserve(
        self,
        proto: str,
        host_ip: IPv4Address | None,
        port: int,
        *,
        end: int | None = None,
        target: tuple[IPv4Address, int] | None = None,
    ) -> Reservation:
        """Hold `port` (0: an ephemeral one; with `end`: the first free in port..end).
        `target`, the container's address and port, only completes the error text."""
        if proto not in PROTOCOLS:
            raise InvalidParameter("unknown protocol")
        if host_ip is not None and host_ip.is_unspecified:
            host_ip = None
        host = ANY if host_ip is None else str(host_ip)
        if end is None or end == port:
            end = port
        if not (0 <= port <= 65535 and 0 <= end <= 65535) or (port != end and not 0 < port < end):
            raise InvalidParameter(f"invalid port range: {port}-{end}")
        with self._lock:
            if port and port == end:
                return self._reserve_exact(proto, host_ip, host, port, target)
            return self._reserve_in_range(proto, host_ip, host, port, end, target)

    def release(self, reservation: Reservation) -> None:
        """Give the port back. Releasing twice is harmless: a closed socket says the port
        is no longer this reservation's, and may be another's by now."""
        host = ANY if reservation.host_ip is None else str(reservation.host_ip)
        with self._lock:
            if reservation._socket.fileno() == -1:
                return
            reservation._socket.close()
            self._taken.get((host, reservation.proto), set()).discard(reservation.host_port)

    def _reserve_exact(
        self,
        proto: str,
        host_ip: IPv4Address | None,
        host: str,
        port: int,
        target: tuple[IPv4Address, int] | None,
    ) -> Reservation:
        taken = self._taken.setdefault((host, proto), set())
        if port in taken:
            raise SystemError_(f"Bind for {host}:{port} failed: port is already allocated")
        binding = _binding(host, port, port, target, proto)
        sock = _open(proto, binding)
        try:
            _bind(sock, proto, host, port)
        except OSError as exc:
            raise SystemError_(f"failed to bind host port for {binding}: {_reason(exc)}") from exc
        taken.add(port)
        return Reservation(proto, host_ip, port, sock)

    def _reserve_in_range(
        self,
        proto: str,
        host_ip: IPv4Address | None,
        host: str,
        start: int,
        end: int,
        target: tuple[IPv4Address, int] | None,
    ) -> Reservation:
        """dockerd's way: the next free port after the last one given in this range
        (wrapping), bound; if another process holds it, the next, up to MAX_ATTEMPTS."""
        begin, final = (start, end) if start else self.ephemeral
        taken = self._taken.setdefault((host, proto), set())
        binding = _binding(host, start, end, target, proto)
        error = ""
        for _ in range(MAX_ATTEMPTS):
            port = self._next_free(taken, (host, proto, begin, final))
            sock = _open(proto, binding)
            try:
                _bind(sock, proto, host, port)
            except OSError as exc:
                if start:
                    error = f"failed to bind host port {port} for {binding}: {_reason(exc)}"
                else:  # dockerd words a request without a host port like an exact one
                    error = f"failed to bind host port for {binding}: {_reason(exc)}"
                continue
            taken.add(port)
            return Reservation(proto, host_ip, port, sock)
        raise SystemError_(error)

    def _next_free(self, taken: set[int], key: tuple[str, str, int, int]) -> int:
        _, _, begin, end = key
        port = self._last.get(key, end)
        for _ in range(end - begin + 1):
            port = begin if port >= end else port + 1
            if port not in taken:
                self._last[key] = port
                return port
        raise SystemError_("all ports are allocated")
