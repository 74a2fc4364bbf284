"""What a container asks to publish, from -p bindings and -P."""

from __future__ import annotations

import pytest

from essaim.model.container import Container, ContainerConfig, HostConfig
from essaim.model.ports import PortBinding
from essaim.network.port_requests import PortRequest, port_requests

pytestmark = pytest.mark.unit


def container(host: HostConfig, exposed: list[str] | None = None) -> Container:
    return Container(
        id="c" * 64, name="c", created="", image_id="", path="sh", args=[],
        config=ContainerConfig(image="busybox", exposed_ports=exposed or []), host_config=host,
    )  # fmt: skip


def test_bindings_as_given() -> None:
    host = HostConfig(
        port_bindings={
            "80/tcp": [PortBinding("", "8080"), PortBinding("127.0.0.1", "8081")],
            "53/udp": [PortBinding("", "")],
            "90/tcp": [PortBinding("0.0.0.0", "9000-9010")],
        }
    )
    assert port_requests(container(host)) == [
        PortRequest(80, "tcp", "", 8080),
        PortRequest(80, "tcp", "127.0.0.1", 8081),
        PortRequest(53, "udp", "", 0),
        PortRequest(90, "tcp", "", 9000, 9010),
    ]


def test_publish_all_adds_the_exposed_ports_not_bound() -> None:
    host = HostConfig(publish_all_ports=True, port_bindings={"80/tcp": [PortBinding("", "8080")]})
    requests = port_requests(container(host, ["80/tcp", "443/tcp", "53/udp"]))
    assert requests == [
        PortRequest(80, "tcp", "", 8080),
        PortRequest(443, "tcp", "", 0),
        PortRequest(53, "udp", "", 0),
    ]


def test_exposed_ports_alone_publish_nothing() -> None:
    assert port_requests(container(HostConfig(), ["80/tcp"])) == []


def test_ipv6_host_addresses_are_left_out() -> None:
    host = HostConfig(port_bindings={"80/tcp": [PortBinding("::", "8080")]})
    assert port_requests(container(host)) == []
