"""Host devices given to a container: --device read from the host's nodes into OCI
devices and cgroup rules, --device-cgroup-rule parsing, and what --privileged gets."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from essaim.errors import InvalidParameter
from essaim.model.device import DeviceMapping
from essaim.runtime.devices import (
    cgroup_rule,
    container_devices,
    devices_from_path,
    host_devices,
)

pytestmark = pytest.mark.unit


def test_a_node_keeps_the_hosts_numbers_mode_and_owner() -> None:
    info = os.stat("/dev/zero")
    devices, rules = devices_from_path("/dev/zero", "/dev/myzero", "r")
    assert devices == [
        {
            "path": "/dev/myzero",
            "type": "c",
            "major": 1,
            "minor": 5,
            "fileMode": stat.S_IMODE(info.st_mode),
            "uid": info.st_uid,
            "gid": info.st_gid,
        }
    ]
    assert rules == [{"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"}]


def test_a_symlink_to_a_node_is_followed(tmp_path: Path) -> None:
    (tmp_path / "null-link").symlink_to("/dev/null")
    devices, _ = devices_from_path(str(tmp_path / "null-link"), "/dev/n", "rwm")
    assert (devices[0]["major"], devices[0]["minor"], devices[0]["path"]) == (1, 3, "/dev/n")


def test_a_missing_device_is_mobys_error() -> None:
    with pytest.raises(InvalidParameter) as info:
        devices_from_path("/dev/nope", "/dev/nope", "rwm")
    # The CLI reads "no such file or directory" in it: `docker run` exits 127, as with dockerd.
    assert info.value.message == (
        'error gathering device information while adding custom device "/dev/nope": '
        "no such file or directory"
    )


def test_a_regular_file_is_not_a_device(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    with pytest.raises(InvalidParameter, match="not a device node"):
        devices_from_path(str(tmp_path / "plain"), "/dev/x", "rwm")


def test_a_directory_without_nodes_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="not a device node"):
        devices_from_path(str(tmp_path), "/dev/x", "rwm")


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_a_directory_brings_every_node_under_it(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    os.mknod(tmp_path / "a", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(tmp_path / "sub" / "b", 0o640 | stat.S_IFBLK, os.makedev(7, 9))
    (tmp_path / "notes").write_text("not a device")
    devices, rules = devices_from_path(str(tmp_path), "/dev/things", "rw")
    assert [(d["path"], d["type"], d["fileMode"]) for d in devices] == [
        ("/dev/things/a", "c", 0o600),
        ("/dev/things/sub/b", "b", 0o640),
    ]
    assert [r["access"] for r in rules] == ["rw", "rw"]


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("c 1:5 rwm", {"type": "c", "major": 1, "minor": 5, "access": "rwm"}),
        ("b 7:* r", {"type": "b", "major": 7, "minor": -1, "access": "r"}),
        ("c *:* m", {"type": "c", "major": -1, "minor": -1, "access": "m"}),
        ("a", {"type": "a", "major": -1, "minor": -1, "access": "rwm"}),
    ],
)
def test_cgroup_rules(text: str, rule: dict[str, object]) -> None:
    assert cgroup_rule(text) == {"allow": True, **rule}


@pytest.mark.parametrize(
    "text", ["", "c 1:1  rwm", "c  1:1 rwm", " c 1:1 rwm", "c 1:1 rwm ", "z 1:1 rwm", "c 1:1 x"]
)
def test_bad_cgroup_rules_are_mobys_error(text: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        cgroup_rule(text)
    assert info.value.message == f"invalid device cgroup rule format: '{text}'"


def test_container_devices_add_mappings_then_rules() -> None:
    devices, rules = container_devices(
        [DeviceMapping("/dev/zero", "/dev/myzero", "r")], ["c 1:9 rwm"], privileged=False
    )
    assert [d["path"] for d in devices] == ["/dev/myzero"]
    assert [(r["major"], r["minor"], r["access"]) for r in rules] == [(1, 5, "r"), (1, 9, "rwm")]


def test_privileged_gets_the_hosts_nodes_and_renamed_mappings() -> None:
    devices, rules = container_devices(
        [DeviceMapping("/dev/zero", "/dev/myzero", "r"), DeviceMapping("/dev/null", "/dev/null")],
        ["c 1:9 rwm"],
        privileged=True,
    )
    paths = [d["path"] for d in devices]
    assert "/dev/null" in paths and "/dev/zero" in paths and "/dev/myzero" in paths
    assert paths.count("/dev/null") == 1  # a mapping to the same path is there already
    assert rules == []  # everything is allowed anyway


def test_host_devices_leave_out_the_console_and_per_namespace_directories() -> None:
    paths = [d["path"] for d in host_devices()]
    assert "/dev/null" in paths
    assert "/dev/console" not in paths
    assert not any(p.startswith(("/dev/pts/", "/dev/shm/", "/dev/mqueue/")) for p in paths)
