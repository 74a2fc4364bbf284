"""Other "hosts" for network tests: a network namespace of the test's own, joined to the
host's by a veth pair (or left bare, for a macvlan parent), and code run inside it.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

HTTP_GET = (
    "import sys, urllib.request;"
    "print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode(), end='')"
)
UDP_ASK = (
    "import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5);"
    "s.sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])));"
    "print(s.recvfrom(512)[0].decode(), end='')"
)


def inside(netns: Path | None) -> list[str]:
    """The argv prefix that runs a command in `netns` (none: here)."""
    return ["nsenter", f"--net={netns}"] if netns else []


def _ip(*args: str, netns: Path | None = None) -> None:
    prefix = inside(netns)
    subprocess.run([*prefix, "ip", *args], check=True, capture_output=True)


def http_get(url: str, netns: Path | None = None) -> str:
    """The body at `url`, fetched from the host or from inside `netns`."""
    prefix = inside(netns)
    done = subprocess.run(
        [*prefix, sys.executable, "-c", HTTP_GET, url], capture_output=True, text=True, timeout=20
    )
    if done.returncode != 0:
        raise ConnectionError(done.stderr.strip().splitlines()[-1] if done.stderr else url)
    return done.stdout


TCP_CONNECT = (
    "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)"
)


def tcp_connects(address: str, port: int, netns: Path | None = None) -> bool:
    """Whether a TCP connection to address:port opens within a second."""
    prefix = inside(netns)
    done = subprocess.run(
        [*prefix, sys.executable, "-c", TCP_CONNECT, address, str(port)],
        capture_output=True, timeout=20,
    )  # fmt: skip
    return done.returncode == 0


def udp_ask(address: str, port: int, message: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", UDP_ASK, address, str(port), message],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    if done.returncode != 0:
        raise ConnectionError(done.stderr.strip())
    return done.stdout


@dataclass
class PeerHost:
    """A namespace at `path` on the far end of a veth pair. With `routed`, the pair is a
    /24 between the host (`.1`) and the peer (`.2`, default route via `.1`); without, the
    host side is a bare interface (a macvlan parent) and the peer has `.250`."""

    root: Path
    routed: bool = True
    octet: int = field(default_factory=lambda: 100 + secrets.randbelow(150))
    suffix: str = field(default_factory=lambda: secrets.token_hex(4))

    @property
    def path(self) -> Path:
        return self.root / f"peer-{self.suffix}"

    @property
    def host_side(self) -> str:
        return f"esh{self.suffix}"

    @property
    def subnet(self) -> str:
        return f"10.213.{self.octet}.0/24"

    @property
    def host_address(self) -> str:
        return f"10.213.{self.octet}.1"

    @property
    def address(self) -> str:
        return f"10.213.{self.octet}.{2 if self.routed else 250}"

    def create(self) -> PeerHost:
        self.path.touch()
        subprocess.run(["unshare", f"--net={self.path}", "true"], check=True)
        peer = f"esp{self.suffix}"
        _ip("link", "add", self.host_side, "type", "veth", "peer", "name", peer)
        _ip("link", "set", peer, "netns", str(self.path))
        if self.routed:
            _ip("addr", "add", f"{self.host_address}/24", "dev", self.host_side)
        _ip("link", "set", self.host_side, "up")
        _ip("addr", "add", f"{self.address}/24", "dev", peer, netns=self.path)
        _ip("link", "set", peer, "up", netns=self.path)
        _ip("link", "set", "lo", "up", netns=self.path)
        if self.routed:
            _ip("route", "add", "default", "via", self.host_address, netns=self.path)
        return self

    def run(self, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*inside(self.path), *args], capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip

    def remove(self) -> None:
        subprocess.run(["ip", "link", "del", self.host_side], capture_output=True, check=False)
        subprocess.run(["umount", str(self.path)], capture_output=True, check=False)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
