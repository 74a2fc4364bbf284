"""A container's network side on the wire: `HostConfig.PortBindings` read and shown as
given, `NetworkingConfig` read, `NetworkSettings` (ports, endpoints) and `docker ps`'s Ports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from essaim.api.wire_fields import string_map, strings
from essaim.errors import InvalidParameter
from essaim.model.container import PAUSED, RUNNING, Container
from essaim.model.network import Endpoint, EndpointConfig
from essaim.model.ports import PortBinding, split_proto_port


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


def network_ports(container: Container) -> dict[str, list[dict[str, str]] | None]:
    """`NetworkSettings.Ports`: while it runs in a namespace of its own, each exposed or
    bound port, with the host ports it holds (null for a port exposed, not published)."""
    state = container.network_state
    if container.state.status not in (RUNNING, PAUSED) or state is None:
        return {}
    keys = [*container.config.exposed_ports, *container.host_config.port_bindings]
    ports: dict[str, list[dict[str, str]] | None] = {
        "/".join(split_proto_port(key)): None for key in keys
    }
    for published in state.ports:
        key = f"{published.container_port}/{published.proto}"
        entry = {"HostIp": published.host_ip, "HostPort": str(published.host_port)}
        ports[key] = [*(ports.get(key) or []), entry]
    return ports


def summary_ports(container: Container) -> list[dict[str, Any]]:
    """`Ports` of `docker ps`: one entry per host port, and one per unpublished port."""
    out: list[dict[str, Any]] = []
    for key, bindings in network_ports(container).items():
        port, proto = split_proto_port(key)
        if not _port_number(port):
            continue  # dockerd skips (and logs) a port it cannot parse
        if not bindings:
            out.append({"PrivatePort": int(port), "Type": proto})
        for b in bindings or []:
            out.append(
                {"IP": b["HostIp"], "PrivatePort": int(port), "PublicPort": int(b["HostPort"]),
                 "Type": proto}
            )  # fmt: skip
    return out


def network_names(container: Container) -> list[str]:
    """The networks a container belongs to, as dockerd names them (`host`, `none`; none
    of its own in another's namespace)."""
    mode = container.host_config.network_mode
    if mode.startswith("container:"):
        return []
    if mode in ("host", "none"):
        return [mode]
    return list(container.networks) or ["bridge"]


def endpoint_wire(
    container: Container, name: str, network_id: str, endpoint: Endpoint | None
) -> dict[str, Any]:
    """One of `NetworkSettings.Networks`: what was asked, and what it holds while it runs."""
    config = container.networks.get(name) or EndpointConfig()
    aliases = config.aliases or None
    dns_names = None
    if endpoint is not None and name not in ("bridge", "host", "none"):
        dns_names = list(dict.fromkeys([container.name, *config.aliases, container.id[:12]]))
    return {
        "IPAMConfig": {"IPv4Address": config.ipv4_address} if config.ipv4_address else None,
        "Links": config.links or None,
        "Aliases": aliases,
        "MacAddress": endpoint.mac_address if endpoint else config.mac_address,
        "DriverOpts": config.driver_opts or None,
        "GwPriority": 0,
        "NetworkID": network_id,
        "EndpointID": endpoint.endpoint_id if endpoint else "",
        "Gateway": endpoint.gateway if endpoint else "",
        "IPAddress": endpoint.ip_address if endpoint else "",
        "IPPrefixLen": endpoint.prefix_len if endpoint else 0,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DNSNames": dns_names,
    }


def networks_wire(container: Container, network_id: Callable[[str], str]) -> dict[str, Any]:
    state = container.network_state
    endpoints = state.endpoints if state is not None else {}
    return {
        name: endpoint_wire(container, name, network_id(name), endpoints.get(name))
        for name in network_names(container)
    }


def network_settings_wire(container: Container, network_id: Callable[[str], str]) -> dict[str, Any]:
    """`NetworkSettings` of inspect; the top-level address fields describe the default
    bridge's endpoint, as dockerd's deprecated fields do."""
    state = container.network_state
    bridge = state.endpoints.get("bridge") if state is not None else None
    return {
        "Bridge": "",
        "SandboxID": state.sandbox_id if state else "",
        "SandboxKey": state.sandbox_key if state else "",
        "Ports": network_ports(container),
        "HairpinMode": False,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None,
        "EndpointID": bridge.endpoint_id if bridge else "",
        "Gateway": bridge.gateway if bridge else "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": bridge.ip_address if bridge else "",
        "IPPrefixLen": bridge.prefix_len if bridge else 0,
        "IPv6Gateway": "",
        "MacAddress": bridge.mac_address if bridge else "",
        "Networks": networks_wire(container, network_id),
    }


def parse_endpoint_config(value: Any) -> EndpointConfig:
    """One `EndpointSettings` as a client sends it (create, connect)."""
    if value is None:
        return EndpointConfig()
    if not isinstance(value, dict):
        raise InvalidParameter("json: cannot unmarshal EndpointSettings: expected an object")
    ipam = value.get("IPAMConfig") or {}
    if not isinstance(ipam, dict):
        raise InvalidParameter("json: cannot unmarshal IPAMConfig: expected an object")
    return EndpointConfig(
        aliases=strings(value.get("Aliases"), "Aliases"),
        ipv4_address=str(ipam.get("IPv4Address") or ""),
        links=strings(value.get("Links"), "Links"),
        mac_address=str(value.get("MacAddress") or ""),
        driver_opts=string_map(value.get("DriverOpts"), "DriverOpts"),
    )


def parse_networking_config(body: dict[str, Any]) -> dict[str, EndpointConfig]:
    """`NetworkingConfig.EndpointsConfig` of a create, keyed as sent; the old top-level
    `MacAddress` (API < 1.44) goes to the first endpoint."""
    networking = body.get("NetworkingConfig") or {}
    if not isinstance(networking, dict):
        raise InvalidParameter("json: cannot unmarshal NetworkingConfig: expected an object")
    raw = networking.get("EndpointsConfig") or {}
    if not isinstance(raw, dict):
        raise InvalidParameter("json: cannot unmarshal EndpointsConfig: expected an object")
    endpoints = {str(k): parse_endpoint_config(v) for k, v in raw.items()}
    mac = str(body.get("MacAddress") or "")
    if mac:
        mode = str((body.get("HostConfig") or {}).get("NetworkMode") or "default")
        first = next(iter(endpoints), mode)
        config = endpoints.get(first) or EndpointConfig()
        if not config.mac_address:
            config.mac_address = mac
        endpoints[first] = config
    return endpoints
