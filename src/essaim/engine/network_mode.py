"""`--network` as a container's mode: a network of its own namespace (the default bridge,
a user network), an isolated namespace (`none`), the host's (`host`), or another
container's (`container:<name|id>`).
"""

from __future__ import annotations

from dataclasses import dataclass

from essaim.errors import InvalidParameter

ISOLATED = "isolated"
HOST = "host"
CONTAINER = "container"
NETWORK = "network"
DEFAULT_BRIDGE = "bridge"
_DEFAULT_NAMES = ("", "default", DEFAULT_BRIDGE)


@dataclass(frozen=True, slots=True)
class NetworkMode:
    kind: str  # NETWORK, ISOLATED, HOST or CONTAINER
    container: str = ""  # the name or id given with container:
    network: str = ""  # NETWORK: the network's name (or id) as given


def parse_network_mode(mode: str) -> NetworkMode:
    if mode in _DEFAULT_NAMES:
        return NetworkMode(NETWORK, network=DEFAULT_BRIDGE)
    if mode == "none":
        return NetworkMode(ISOLATED)
    if mode == HOST:
        return NetworkMode(HOST)
    if mode.startswith("container:"):
        ref = mode.removeprefix("container:")
        if not ref:
            raise InvalidParameter("invalid container format container:<name|id>")
        return NetworkMode(CONTAINER, ref)
    return NetworkMode(NETWORK, network=mode)
