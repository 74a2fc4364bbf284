"""What `create` checks and fills in for a container's identity and security settings,
and how those HostConfig fields travel on the wire (null and [] kept apart)."""

from __future__ import annotations

from typing import Any

import pytest

from essaim.api.identity_wire import identity_wire, parse_identity
from essaim.engine.identity_settings import settle_identity
from essaim.errors import InvalidParameter, NotFound
from essaim.model.container import Container, ContainerConfig, HostConfig
from essaim.model.device import DeviceMapping

pytestmark = pytest.mark.unit

OTHER_ID = "b" * 64


def lookup(ref: str) -> Container:
    if ref != "other":
        raise NotFound(f"No such container: {ref}")
    return Container(
        id=OTHER_ID, name="other", created="2026-01-01T00:00:00Z", image_id="sha256:0",
        config=ContainerConfig(image="busybox"), host_config=HostConfig(), path="sh", args=[],
    )  # fmt: skip


def settle(
    config: ContainerConfig | None = None, cgroup_version: int = 1, **host: Any
) -> HostConfig:
    host_config = HostConfig(**host)
    settle_identity(
        config or ContainerConfig(image="busybox"), host_config,
        cgroup_version=cgroup_version, lookup=lookup,
    )  # fmt: skip
    return host_config


def refusal(config: ContainerConfig | None = None, **host: Any) -> str:
    with pytest.raises(InvalidParameter) as info:
        settle(config, **host)
    return info.value.message


def test_dockerd_defaults_for_cgroup_v1() -> None:
    host = settle()
    assert (host.ipc_mode, host.cgroupns_mode, host.pid_mode, host.userns_mode) == (
        "private", "host", "", "",
    )  # fmt: skip


def test_cgroup_v2_gets_a_private_cgroup_namespace_even_privileged() -> None:
    assert settle(cgroup_version=2, privileged=True).cgroupns_mode == "private"


def test_shared_namespaces_are_stored_by_id() -> None:
    host = settle(ipc_mode="container:other", pid_mode="container:other")
    assert (host.ipc_mode, host.pid_mode) == (f"container:{OTHER_ID}", f"container:{OTHER_ID}")


def test_unknown_capabilities_are_refused_at_create() -> None:
    assert refusal(cap_add=["FOO"]) == 'invalid CapAdd: unknown capability: "CAP_FOO"'
    assert refusal(cap_drop=["cap_bar"]) == 'invalid CapDrop: unknown capability: "CAP_BAR"'


def test_bad_security_options_are_refused_at_create() -> None:
    assert refusal(security_opt=["no-new-privileges=maybe"]) == (
        'invalid --security-opt 2: "no-new-privileges=maybe"'
    )
    assert refusal(security_opt=["label"]) == 'invalid --security-opt 1: "label"'


def test_bad_extra_hosts_are_refused_at_create() -> None:
    assert refusal(extra_hosts=["nocolon"]) == 'bad format for add-host: "nocolon"'


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("ipc_mode", "bogus", "invalid IPC mode: bogus"),
        ("ipc_mode", "container:", "invalid IPC mode: container:"),
        ("pid_mode", "private", "invalid PID mode: private"),
        ("uts_mode", "container:other", "invalid UTS mode: container:other"),
        ("cgroupns_mode", "shared", "invalid cgroup namespace mode: shared"),
    ],
)
def test_bad_namespace_modes_are_refused(field: str, value: str, message: str) -> None:
    assert refusal(**{field: value}) == message


def test_a_shared_network_namespace_brings_its_own_names() -> None:
    named = ContainerConfig(image="busybox", hostname="h1")
    assert refusal(named, network_mode="container:other") == (
        "conflicting options: hostname and the network mode"
    )
    assert refusal(network_mode="container:other", dns=["1.1.1.1"]) == (
        "conflicting options: dns and the network mode"
    )
    assert refusal(network_mode="container:other", extra_hosts=["a:1.2.3.4"]) == (
        "conflicting options: custom host-to-IP mapping and the network mode"
    )
    assert refusal(named, uts_mode="host") == "conflicting options: hostname and the UTS mode"


def test_wire_keeps_null_and_empty_lists_apart() -> None:
    # What the CLI sends for a plain `docker run`.
    cli = parse_identity({"Devices": [], "Dns": [], "DnsSearch": [], "DnsOptions": []})
    wire = identity_wire(HostConfig(**cli))
    assert (wire["Devices"], wire["Dns"], wire["DnsSearch"], wire["DnsOptions"]) == ([], [], [], [])
    assert (wire["ExtraHosts"], wire["GroupAdd"], wire["DeviceCgroupRules"]) == (None, None, None)
    # The SDK leaves them all out.
    sdk = identity_wire(HostConfig(**parse_identity({})))
    assert (sdk["Devices"], sdk["Dns"], sdk["ExtraHosts"]) == (None, None, None)


def test_devices_on_the_wire() -> None:
    fields = parse_identity({"Devices": [{"PathOnHost": "/dev/zero"}]})
    assert fields["devices"] == [DeviceMapping("/dev/zero", "/dev/zero", "rwm")]
    assert identity_wire(HostConfig(**fields))["Devices"] == [
        {"PathOnHost": "/dev/zero", "PathInContainer": "/dev/zero", "CgroupPermissions": "rwm"}
    ]
