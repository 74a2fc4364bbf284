"""`--network` before networks exist as objects: an isolated namespace (`none`, and for
now `default`/`bridge`, which get no bridge yet), the host's (`host`), or another
container's (`container:<name|id>`). Any other name is a network that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from essaim.errors import InvalidParameter, NotFound

ISOLATED = "isolated"
HOST = "host"
CONTAINER = "container"
_ISOLATED_NAMES = ("", "default", "bridge", "none")


@dataclass(frozen=True, slots=True)
class NetworkMode:
    kind: str  # ISOLATED, HOST or CONTAINER
    container: str = ""  # the name or id given with container:


def parse_network_mode(mode: str) -> NetworkMode:
    if mode in _ISOLATED_NAMES:
        return NetworkMode(ISOLATED)
    if mode == HOST:
        return NetworkMode(HOST)
    if mode.startswith("container:"):
        ref = mode.removeprefix("container:")
        if not ref:
            raise InvalidParameter("invalid container format container:<name|id>")
        return NetworkMode(CONTAINER, ref)
    raise NotFound(f"network {mode} not found")
