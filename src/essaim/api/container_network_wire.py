"""A container's network side on the wire: `HostConfig.PortBindings` read and shown as
given, `NetworkSettings.Ports` and `Networks`, and the `Ports` list of `docker ps`.
"""

from __future__ import annotations

from typing import Any

from essaim.errors import InvalidParameter
from essaim.model.container import PAUSED, RUNNING, Container
from essaim.model.ports import PortBinding, split_proto_port

# Network modes whose container sits on the default bridge, where ports are published.
_BRIDGE_MODES = ("default", "bridge")


def _port_number(text: str) -> bool:
    return text.isdigit() and int(text) <= 65535


def _port_range(text: str) -> bool:
    start, sep, end = text.partition("-")
    if not sep:
        return _port_number(start)
    return _port_number(start) and _port_number(end) and int(start) <= int(end)


def parse_port_bindings(value: Any) -> dict[str, list[PortBinding]]:
    """`HostConfig.PortBindings`, checked as dockerd checks it at create."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidParameter("json: cannot unmarshal PortBindings: expected an object")
    bindings: dict[str, list[PortBinding]] = {}
    for key, entries in value.items():
        port, _ = split_proto_port(str(key))
        if port and not _port_number(port):
            raise InvalidParameter(f'invalid port specification: "{port}"')
        parsed = []
        for entry in entries or []:
            if not isinstance(entry, dict):
                raise InvalidParameter("json: cannot unmarshal PortBinding: expected an object")
            host_port = str(entry.get("HostPort") or "")
            number, _ = split_proto_port(host_port)
            if number and not _port_range(number):
                raise InvalidParameter(f'invalid port specification: "{host_port}"')
            parsed.append(PortBinding(str(entry.get("HostIp") or ""), host_port))
        bindings[str(key)] = parsed
    return bindings


def port_bindings_wire(bindings: dict[str, list[PortBinding]]) -> dict[str, Any]:
    return {
        key: [{"HostIp": b.host_ip, "HostPort": b.host_port} for b in entries]
        for key, entries in bindings.items()
    }


def on_bridge(container: Container) -> bool:
    return container.host_config.network_mode in _BRIDGE_MODES


def network_ports(container: Container) -> dict[str, None]:
    """`NetworkSettings.Ports`: a running container on the bridge lists its exposed and
    bound ports. Publishing is not wired to the host yet, so each maps to null, as an
    exposed port Docker does not publish does: nothing claims a host port it lacks."""
    if container.state.status not in (RUNNING, PAUSED) or not on_bridge(container):
        return {}
    keys = [*container.config.exposed_ports, *container.host_config.port_bindings]
    return {"/".join(split_proto_port(key)): None for key in keys}


def summary_ports(container: Container) -> list[dict[str, Any]]:
    """`Ports` of `docker ps`: one entry per port, no PublicPort while unpublished."""
    out = []
    for key in network_ports(container):
        port, proto = split_proto_port(key)
        if not _port_number(port):
            continue  # dockerd skips (and logs) a port it cannot parse
        out.append({"PrivatePort": int(port), "Type": proto})
    return out


def network_names(container: Container) -> list[str]:
    """The networks a container belongs to, named after its network mode as dockerd
    names them (`default` is the `bridge` network; `container:` joins none of its own)."""
    mode = container.host_config.network_mode
    if mode in _BRIDGE_MODES:
        return ["bridge"]
    if mode.startswith("container:"):
        return []
    return [mode]


def endpoint_wire() -> dict[str, Any]:
    """An endpoint as Docker shows one not (or no longer) connected: no id, no address.
    Networks do not exist as objects yet, so no container gets more than this."""
    return {
        "IPAMConfig": None,
        "Links": None,
        "Aliases": None,
        "MacAddress": "",
        "DriverOpts": None,
        "GwPriority": 0,
        "NetworkID": "",
        "EndpointID": "",
        "Gateway": "",
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DNSNames": None,
    }


def networks_wire(container: Container) -> dict[str, Any]:
    return {name: endpoint_wire() for name in network_names(container)}
