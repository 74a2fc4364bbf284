"""The local volume driver's names and options, its paths (never outside the volumes
root), listing filters, and resolving a volume's path inside a rootfs for seeding."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from essaim.errors import EssaimError, InvalidParameter
from essaim.model.volume import Volume
from essaim.volume.copy_up import copy_if_empty, resolve_in_root
from essaim.volume.local import LocalDriver
from essaim.volume.names import new_anonymous_name, validate_local_options, validate_volume_name
from essaim.volume.query import VolumeQuery, matches

pytestmark = pytest.mark.unit


def test_volume_names() -> None:
    for good in ("ab", "my_vol.1-x", new_anonymous_name()):
        validate_volume_name(good)
    with pytest.raises(InvalidParameter, match="create a: volume name is too short"):
        validate_volume_name("a")
    for bad in ("..", ".hidden", "a/b", "-x", "a b", "ü1"):
        with pytest.raises(InvalidParameter, match="includes invalid characters"):
            validate_volume_name(bad)


@given(st.text(max_size=20))
def test_a_valid_name_stays_inside_the_volumes_root(name: str) -> None:
    try:
        validate_volume_name(name)
    except InvalidParameter:
        return
    root = Path("/data/volumes")
    driver = LocalDriver.__new__(LocalDriver)
    driver.root = root
    assert driver.mountpoint(name).parent.parent == root
    assert os.path.normpath(driver.mountpoint(name)) == str(driver.mountpoint(name))


def test_driver_refuses_escaping_names(tmp_path: Path) -> None:
    driver = LocalDriver(tmp_path / "volumes")
    for bad in ("", ".", "..", "../x", "a/b"):
        with pytest.raises(EssaimError):
            driver.volume_dir(bad)


def test_local_options() -> None:
    validate_local_options("v", {})
    validate_local_options("v", {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})
    with pytest.raises(InvalidParameter, match='create v: invalid option: "colour"'):
        validate_local_options("v", {"colour": "red"})
    with pytest.raises(InvalidParameter, match='missing required option: "type"'):
        validate_local_options("v", {"device": "tmpfs"})
    with pytest.raises(InvalidParameter, match='missing required option: "device"'):
        validate_local_options("v", {"o": "size=1m"})


def test_query_matching() -> None:
    volume = Volume(name="web-data", labels={"tier": "web", "anon": ""})
    assert matches(VolumeQuery(), volume, in_use=False)
    assert matches(VolumeQuery(names=["web"]), volume, in_use=False)
    assert matches(VolumeQuery(names=["^web-d"]), volume, in_use=False)
    assert not matches(VolumeQuery(names=["db"]), volume, in_use=False)
    assert matches(VolumeQuery(labels=["tier=web", "anon"]), volume, in_use=False)
    assert not matches(VolumeQuery(labels=["tier=db"]), volume, in_use=False)
    assert not matches(VolumeQuery(not_labels=["tier"]), volume, in_use=False)
    assert matches(VolumeQuery(dangling=True), volume, in_use=False)
    assert not matches(VolumeQuery(dangling=True), volume, in_use=True)
    assert matches(VolumeQuery(drivers=["local"]), volume, in_use=True)


def test_resolve_in_root_keeps_symlinks_inside(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "real" / "dir").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "abs").symlink_to("/real")
    (root / "rel").symlink_to("../../real/dir")
    (root / "out").symlink_to("/../../etc")
    (root / "loop").symlink_to("loop")
    assert resolve_in_root(root, "/abs/dir") == root / "real" / "dir"
    assert resolve_in_root(root, "/rel") == root / "real" / "dir"
    assert resolve_in_root(root, "/../../real") == root / "real"
    assert resolve_in_root(root, "/out") == root / "etc"  # not the host's /etc
    assert resolve_in_root(root, "/missing/x") is None
    assert resolve_in_root(root, "/loop") is None


def test_copy_only_into_an_empty_volume(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "f").write_text("x")
    target = tmp_path / "vol"
    target.mkdir()
    assert copy_if_empty(source, target)
    assert (target / "sub" / "f").read_text() == "x"
    assert not copy_if_empty(source, target)
