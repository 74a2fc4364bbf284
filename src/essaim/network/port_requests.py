"""What a container asks to publish: its `-p` bindings, and with `-P` every exposed port
it did not bind, each as one host port (or range, or an ephemeral one) to reserve.
"""

from __future__ import annotations

from dataclasses import dataclass

from essaim.model.container import Container
from essaim.model.ports import split_proto_port


@dataclass(frozen=True)
class PortRequest:
    container_port: int
    proto: str
    host_ip: str  # "" for the network's default binding address
    host_port: int  # 0: an ephemeral port
    host_port_end: int | None = None  # "8000-8010": the first free port of the range


def _host_port(text: str) -> tuple[int, int | None]:
    number, _ = split_proto_port(text)
    if not number:
        return 0, None
    start, sep, end = number.partition("-")
    if not sep or start == end:
        return int(start), None
    return int(start), int(end)


def port_requests(container: Container) -> list[PortRequest]:
    requests: list[PortRequest] = []
    bound: set[str] = set()
    host = container.host_config
    for key, bindings in host.port_bindings.items():
        port, proto = split_proto_port(key)
        if not port.isdigit():
            continue
        bound.add(f"{port}/{proto}")
        for binding in bindings:
            start, end = _host_port(binding.host_port)
            host_ip = "" if binding.host_ip in ("", "0.0.0.0") else binding.host_ip
            if ":" in host_ip:
                continue  # IPv6 host addresses: no IPv6 networking here yet
            requests.append(PortRequest(int(port), proto, host_ip, start, end))
    if host.publish_all_ports:
        for key in container.config.exposed_ports:
            port, proto = split_proto_port(key)
            if port.isdigit() and f"{port}/{proto}" not in bound:
                bound.add(f"{port}/{proto}")
                requests.append(PortRequest(int(port), proto, "", 0))
    return requests
