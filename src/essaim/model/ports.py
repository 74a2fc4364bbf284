"""Port publishing as a container asks for it: `HostConfig.PortBindings` (`-p`), kept as
given, and the `port/proto` keys Docker uses for exposed and published ports.
"""

from __future__ import annotations

import msgspec


class PortBinding(msgspec.Struct, frozen=True):
    """One host side of a container port: address and port (or range), both optional."""

    host_ip: str = ""
    host_port: str = ""


def split_proto_port(key: str) -> tuple[str, str]:
    """`80/udp` -> ("80", "udp"); a bare `80` is TCP (nat.SplitProtoPort)."""
    port, _, proto = key.partition("/")
    return port, proto or "tcp"
