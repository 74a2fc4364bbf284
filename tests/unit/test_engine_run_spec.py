"""The RunSpec a container's record turns into: its command and limits as recorded, the
host files it bind-mounts, and the network namespace its `--network` mode asks for."""

from __future__ import annotations

from pathlib import Path

import pytest

from essaim.engine.run_spec import run_spec
from essaim.errors import Conflict, NotFound
from essaim.model.container import (
    Container,
    ContainerConfig,
    ContainerState,
    HostConfig,
)  # fmt: skip
from essaim.model.device import DeviceMapping
from essaim.runtime.mounts import bind_mount
from essaim.runtime.rlimits import Ulimit

ROOT = Path("/var/lib/essaim/containers")
ROOTFS = Path("/var/lib/essaim/containers/aaaa/rootfs")


def container(cid: str = "a" * 64, host: HostConfig | None = None) -> Container:
    return Container(
        id=cid,
        name="web",
        created="2026-01-01T00:00:00.000000000Z",
        image_id="sha256:" + "0" * 64,
        config=ContainerConfig(
            image="busybox", env=["A=1"], working_dir="", user="1000", hostname="web", tty=True
        ),
        host_config=host or HostConfig(),
        path="/bin/sh",
        args=["-c", "true"],
    )


def no_lookup(ref: str) -> Container:
    raise NotFound(f"No such container: {ref}")


def test_the_record_becomes_the_process() -> None:
    c = container(host=HostConfig(memory=64 << 20, pids_limit=50, ulimits=[("nofile", 100, 200)]))
    spec = run_spec(c, ROOTFS, containers_root=ROOT, cgroup_parent="essaim", lookup=no_lookup)
    assert spec.container_id == c.id
    assert spec.rootfs == str(ROOTFS)
    assert spec.args == ["/bin/sh", "-c", "true"]
    assert (spec.env, spec.cwd, spec.user, spec.hostname) == (["A=1"], "/", "1000", "web")
    assert spec.cgroups_path == f"/essaim/{c.id}"
    assert (spec.memory, spec.pids_limit) == (64 << 20, 50)
    assert spec.ulimits == [Ulimit(name="nofile", soft=100, hard=200)]


def test_own_network_namespace_and_own_host_files() -> None:
    c = container()
    spec = run_spec(c, ROOTFS, containers_root=ROOT, cgroup_parent="essaim", lookup=no_lookup)
    assert spec.network_namespace == ""
    assert spec.mounts == [
        bind_mount(str(ROOT / c.id / "resolv.conf"), "/etc/resolv.conf"),
        bind_mount(str(ROOT / c.id / "hostname"), "/etc/hostname"),
        bind_mount(str(ROOT / c.id / "hosts"), "/etc/hosts"),
    ]


def test_host_network_shares_the_hosts_namespace() -> None:
    c = container(host=HostConfig(network_mode="host"))
    spec = run_spec(c, ROOTFS, containers_root=ROOT, cgroup_parent="essaim", lookup=no_lookup)
    assert spec.network_namespace is None


def test_container_network_joins_the_other_ones_namespace_and_names() -> None:
    other = container("b" * 64)
    other.state = ContainerState(status="running", pid=4242)
    c = container(host=HostConfig(network_mode=f"container:{other.id}"))
    lookup = {other.id: other}.__getitem__
    spec = run_spec(c, ROOTFS, containers_root=ROOT, cgroup_parent="essaim", lookup=lookup)
    assert spec.network_namespace == "/proc/4242/ns/net"
    assert spec.mounts[0] == bind_mount(str(ROOT / other.id / "resolv.conf"), "/etc/resolv.conf")


def test_joining_a_stopped_containers_network_is_a_conflict() -> None:
    other = container("b" * 64)
    c = container(host=HostConfig(network_mode=f"container:{other.id}"))
    lookup = {other.id: other}.__getitem__
    with pytest.raises(Conflict, match="cannot join network of a non running container"):
        run_spec(c, ROOTFS, containers_root=ROOT, cgroup_parent="essaim", lookup=lookup)


@pytest.mark.parametrize(("console", "tty", "expected"), [
    ((24, 80), True, (24, 80)),
    ((24, 80), False, None),
    ((0, 0), True, None),
])  # fmt: skip
def test_console_size_only_with_a_tty(
    console: tuple[int, int], tty: bool, expected: tuple[int, int] | None
) -> None:
    c = container(host=HostConfig(console_size=console))
    c.config.tty = tty
    spec = run_spec(c, ROOTFS, containers_root=ROOT, cgroup_parent="essaim", lookup=no_lookup)
    assert spec.console_size == expected


def test_identity_settings_reach_the_run_spec() -> None:
    devices = [DeviceMapping("/dev/zero", "/dev/myzero", "r")]
    c = container(
        host=HostConfig(group_add=["audio"], devices=devices, device_cgroup_rules=["c 1:9 rwm"])
    )
    c.config.domainname = "example.org"
    spec = run_spec(c, ROOTFS, containers_root=ROOT, cgroup_parent="essaim", lookup=no_lookup)
    assert (spec.group_add, spec.devices, spec.device_cgroup_rules, spec.domainname) == (
        ["audio"], devices, ["c 1:9 rwm"], "example.org",
    )  # fmt: skip
    assert (spec.pid_namespace, spec.ipc_namespace, spec.uts_namespace) == ("", "", "")


def test_host_pid_ipc_and_uts_share_the_hosts_namespaces_and_shm() -> None:
    c = container(host=HostConfig(pid_mode="host", ipc_mode="host", uts_mode="host"))
    spec = run_spec(c, ROOTFS, containers_root=ROOT, cgroup_parent="essaim", lookup=no_lookup)
    assert (spec.pid_namespace, spec.ipc_namespace, spec.uts_namespace) == (None, None, None)
    assert bind_mount("/dev/shm", "/dev/shm") in spec.mounts


def test_pid_and_ipc_of_another_container_join_its_namespaces() -> None:
    other = container("b" * 64)
    other.state = ContainerState(status="running", pid=4242)
    mode = f"container:{other.id}"
    c = container(host=HostConfig(pid_mode=mode, ipc_mode=mode, cgroupns_mode="private"))
    lookup = {other.id: other}.__getitem__
    spec = run_spec(c, ROOTFS, containers_root=ROOT, cgroup_parent="essaim", lookup=lookup)
    assert (spec.pid_namespace, spec.ipc_namespace) == ("/proc/4242/ns/pid", "/proc/4242/ns/ipc")
    assert spec.cgroup_namespace is True


def test_joining_a_stopped_containers_pid_namespace_is_a_conflict() -> None:
    other = container("b" * 64)
    c = container(host=HostConfig(pid_mode=f"container:{other.id}"))
    lookup = {other.id: other}.__getitem__
    with pytest.raises(Conflict, match=f"container {other.id} is not running"):
        run_spec(c, ROOTFS, containers_root=ROOT, cgroup_parent="essaim", lookup=lookup)
