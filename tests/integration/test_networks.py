"""Networks as objects: create, ls with filters, inspect, rm, prune, through the docker CLI
and SDK, with Docker's refusals (overlaps, names, predefined networks, networks in use).
"""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path

import docker
import pytest

from tests.integration.conftest import new_root, running
from tests.integration.daemon import EssaimDaemon, fails, ok

pytestmark = pytest.mark.integration


def _inspect(daemon: EssaimDaemon, name: str) -> dict:
    return json.loads(ok(daemon.docker("network", "inspect", name)))[0]


def test_predefined_networks_are_listed(daemon: EssaimDaemon) -> None:
    lines = ok(daemon.docker("network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}"))
    assert {"bridge bridge local", "host host local", "none null local"} <= set(lines.splitlines())
    bridge = _inspect(daemon, "bridge")
    assert bridge["Options"]["com.docker.network.bridge.name"] == daemon.bridge
    assert bridge["Options"]["com.docker.network.bridge.default_bridge"] == "true"
    assert bridge["IPAM"]["Config"][0]["Subnet"].startswith("10.214.")
    fails(daemon.docker("network", "rm", "bridge"), "bridge is a pre-defined network")


def test_create_inspect_and_remove_a_user_network(daemon: EssaimDaemon) -> None:
    net_id = ok(
        daemon.docker(
            "network", "create", "--subnet", "10.213.31.0/24", "--gateway", "10.213.31.254",
            "--ip-range", "10.213.31.128/25", "--label", "course=net", "--internal",
            "-o", "com.docker.network.bridge.name=escourse31", "course-net",
        )
    ).strip()  # fmt: skip
    try:
        net = _inspect(daemon, "course-net")
        assert net["Id"] == net_id and net["Driver"] == "bridge" and net["Scope"] == "local"
        assert net["Internal"] is True and net["Labels"] == {"course": "net"}
        assert net["IPAM"]["Config"] == [
            {"Subnet": "10.213.31.0/24", "IPRange": "10.213.31.128/25", "Gateway": "10.213.31.254"}
        ]
        link = subprocess.run(
            ["ip", "-br", "addr", "show", "escourse31"], capture_output=True, text=True
        ).stdout
        assert "10.213.31.254/24" in link
        # By a prefix of its id too, as the CLI allows.
        assert _inspect(daemon, net_id[:10])["Name"] == "course-net"
        fails(daemon.docker("network", "create", "course-net"), "already exists")
        fails(
            daemon.docker("network", "create", "--subnet", "10.213.31.0/25", "overlapping"),
            "Pool overlaps with other one on this address space",
        )
    finally:
        ok(daemon.docker("network", "rm", "course-net"))
    assert not Path("/sys/class/net/escourse31").exists()
    fails(daemon.docker("network", "inspect", "course-net"), "network course-net not found")


def test_ls_filters(daemon: EssaimDaemon) -> None:
    ok(daemon.docker("network", "create", "--label", "tier=front", "filt-front"))
    ok(daemon.docker("network", "create", "--label", "tier=back", "filt-back"))
    try:

        def names(*flags: str) -> set[str]:
            return set(ok(daemon.docker("network", "ls", "--format", "{{.Name}}", *flags)).split())

        assert names("--filter", "label=tier=front") == {"filt-front"}
        assert names("--filter", "label=tier") == {"filt-front", "filt-back"}
        assert names("--filter", "name=filt-") == {"filt-front", "filt-back"}
        assert {"bridge", "host", "none"} == names("--filter", "type=builtin")
        assert "bridge" not in names("--filter", "type=custom")
        assert names("--filter", "driver=null") == {"none"}
        unused = names("--filter", "dangling=true")
        assert {"filt-front", "filt-back"} <= unused and "bridge" not in unused
        assert not {"filt-front", "filt-back"} & names("--filter", "dangling=false")
        fails(daemon.docker("network", "ls", "--filter", "colour=red"), "invalid filter 'colour'")
    finally:
        ok(daemon.docker("network", "rm", "filt-front", "filt-back"))


def test_a_network_in_use_is_not_removed(daemon: EssaimDaemon) -> None:
    ok(daemon.docker("network", "create", "busy-net"))
    cid = ok(daemon.docker("run", "-d", "--name", "busy-one", "--network", "busy-net",
                           "busybox", "sleep", "300")).strip()  # fmt: skip
    try:
        fails(
            daemon.docker("network", "rm", "busy-net"),
            "error while removing network: network busy-net has active endpoints",
            f'(name:"busy-one" id:"{cid[:12]}")',
        )
        containers = _inspect(daemon, "busy-net")["Containers"]
        assert containers[cid]["Name"] == "busy-one"
        assert containers[cid]["IPv4Address"].endswith("/24")
    finally:
        ok(daemon.docker("rm", "-f", "busy-one"))
    ok(daemon.docker("network", "rm", "busy-net"))


def test_prune_removes_unused_user_networks(daemon: EssaimDaemon) -> None:
    ok(daemon.docker("network", "create", "--label", "keep=yes", "prune-kept"))
    ok(daemon.docker("network", "create", "prune-gone"))
    ok(daemon.docker("network", "create", "prune-used"))
    ok(daemon.docker("run", "-d", "--name", "prune-user", "--network", "prune-used",
                     "busybox", "sleep", "300"))  # fmt: skip
    try:
        out = ok(daemon.docker("network", "prune", "-f", "--filter", "label!=keep=yes"))
        assert "prune-gone" in out and "prune-kept" not in out and "prune-used" not in out
        names = ok(daemon.docker("network", "ls", "--format", "{{.Name}}")).split()
        assert "prune-gone" not in names and {"prune-kept", "prune-used", "bridge"} <= set(names)
    finally:
        daemon.docker("rm", "-f", "prune-user")
        daemon.docker("network", "rm", "prune-kept", "prune-used")


def test_sdk_create_connect_and_inspect(daemon: EssaimDaemon) -> None:
    client = daemon.client()
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="10.213.32.0/24")])
    net = client.networks.create("sdk-net", driver="bridge", ipam=ipam, labels={"a": "b"})
    try:
        box = client.containers.run("busybox", ["sleep", "300"], detach=True, name="sdk-box")
        try:
            net.connect(box, aliases=["sdk-alias"], ipv4_address="10.213.32.50")
            box.reload()
            endpoint = box.attrs["NetworkSettings"]["Networks"]["sdk-net"]
            assert endpoint["IPAddress"] == "10.213.32.50"
            assert endpoint["Aliases"] == ["sdk-alias"]
            assert endpoint["NetworkID"] == net.id and endpoint["Gateway"] == "10.213.32.1"
            assert "sdk-alias" in endpoint["DNSNames"]
            net.reload()
            assert [c.name for c in net.containers] == ["sdk-box"]
            net.disconnect(box)
            box.reload()
            assert "sdk-net" not in box.attrs["NetworkSettings"]["Networks"]
        finally:
            box.remove(force=True)
    finally:
        net.remove()
    with pytest.raises(docker.errors.NotFound):
        client.networks.get("sdk-net")


def test_static_address_checks(daemon: EssaimDaemon) -> None:
    fails(
        daemon.docker("run", "--rm", "--ip", "10.214.0.50", "busybox", "true"),
        "user specified IP address is supported on user defined networks only",
        code=125,
    )
    # The CLI refuses this one itself; the API's own refusal is checked with the SDK.
    fails(daemon.docker("run", "--rm", "--network-alias", "x", "busybox", "true"),
          "network-scoped alias", code=125)  # fmt: skip
    client = daemon.client()
    config = client.api.create_networking_config(
        {"bridge": client.api.create_endpoint_config(aliases=["x"])}
    )
    with pytest.raises(docker.errors.APIError, match="supported only for containers in user"):
        client.api.create_container("busybox", "true", networking_config=config)
    ok(daemon.docker("network", "create", "--subnet", "10.213.33.0/24", "static-net"))
    try:
        fails(
            daemon.docker("run", "--rm", "--network", "static-net", "--ip", "10.213.99.5",
                          "busybox", "true"),
            "no configured subnet or ip-range contain the IP address 10.213.99.5",
            code=125,
        )  # fmt: skip
        out = ok(daemon.docker("run", "--rm", "--network", "static-net", "--ip", "10.213.33.77",
                               "busybox", "ip", "-4", "addr", "show", "eth0"))  # fmt: skip
        assert "10.213.33.77/24" in out
    finally:
        ok(daemon.docker("network", "rm", "static-net"))


def test_run_on_a_missing_network_fails(daemon: EssaimDaemon) -> None:
    fails(daemon.docker("run", "--rm", "--network", "nowhere", "busybox", "true"),
          "network nowhere not found", code=125)  # fmt: skip


def test_bip_and_icc_flags_shape_the_default_bridge() -> None:
    octet = 100 + secrets.randbelow(150)
    own = EssaimDaemon(new_root(), extra=["--bip", f"10.213.{octet}.1/24", "--icc", "false"])
    for daemon in running(own):
        bridge = _inspect(daemon, "bridge")
        assert bridge["IPAM"]["Config"] == [
            {"Subnet": f"10.213.{octet}.0/24", "Gateway": f"10.213.{octet}.1"}
        ]
        assert bridge["Options"]["com.docker.network.bridge.enable_icc"] == "false"
        ok(daemon.docker("run", "-d", "--name", "first", "busybox", "sleep", "300"))
        first = ok(daemon.docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "first"))
        assert first.strip() == f"10.213.{octet}.2"
        # --icc=false: containers on the default bridge do not reach each other.
        out = daemon.docker("run", "--rm", "busybox", "ping", "-c", "1", "-W", "1", first.strip())
        assert out.returncode != 0
        ok(daemon.docker("run", "--rm", "busybox", "ping", "-c", "1", "-W", "1",
                         f"10.213.{octet}.1"))  # fmt: skip


def test_run_on_several_networks_with_a_mac_address(daemon: EssaimDaemon) -> None:
    ok(daemon.docker("network", "create", "multi-a"))
    ok(daemon.docker("network", "create", "multi-b"))
    try:
        out = ok(daemon.docker(
            "run", "--rm", "--network", "name=multi-a,mac-address=02:42:0a:0b:0c:0d",
            "--network", "multi-b", "busybox", "sh", "-c",
            "ls /sys/class/net; cat /sys/class/net/eth0/address; ip route | grep default",
        ))  # fmt: skip
        lines = out.split()
        assert lines[:4] == ["eth0", "eth1", "lo", "02:42:0a:0b:0c:0d"]
        gateway = _inspect(daemon, "multi-a")["IPAM"]["Config"][0]["Gateway"]
        assert f"default via {gateway} dev eth0" in out  # the first network routes
    finally:
        ok(daemon.docker("network", "rm", "multi-a", "multi-b"))
