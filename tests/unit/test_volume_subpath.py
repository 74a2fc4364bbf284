"""Volume subpaths: dockerd's lexical check at create (Go's filepath.IsLocal), its
messages, and the symlink evaluation (Go's EvalSymlinks) that start relies on."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from essaim.errors import InvalidParameter, NotFound
from essaim.model.mount import MountPoint, MountSpec, VolumeOptions
from essaim.volume.mount_spec import mount_point, validate_mount
from essaim.volume.oci import oci_mounts
from essaim.volume.subpath import eval_symlinks, is_local, resolve

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "subpath", ["a", "a/b", "a/b/", ".", "./a", "a/..", "a/../b", "..a", "a/..b", "a//b"]
)
def test_local_subpaths(subpath: str) -> None:
    assert is_local(subpath)


@pytest.mark.parametrize(
    "subpath", ["", "/", "/etc/passwd", "..", "../", "../a", "a/../..", "a/../../b", "./../a"]
)
def test_subpaths_that_leave_the_volume(subpath: str) -> None:
    assert not is_local(subpath)


@given(st.lists(st.sampled_from(["a", "b", ".", "..", ""]), min_size=1, max_size=8))
def test_is_local_is_lexical_containment(parts: list[str]) -> None:
    subpath = "/".join(parts)
    inside = posixpath.normpath(posixpath.join("/base", subpath))
    expected = bool(subpath) and (inside == "/base" or inside.startswith("/base/"))
    assert is_local(subpath) == expected


def _volume_mount(source: str, subpath: str) -> MountSpec:
    return MountSpec(
        type="volume", source=source, target="/d", volume_options=VolumeOptions(subpath=subpath)
    )


@pytest.mark.parametrize(
    ("source", "subpath", "reason"),
    [
        ("v", "/etc", "subpath must be a relative path within the volume"),
        ("v", "../../etc/passwd", "subpath must be a relative path within the volume"),
        ("v", "a/../../b", "subpath must be a relative path within the volume"),
        ("", "sub", "must not set Subpath when using anonymous volumes"),
        ("", "/abs", "must not set Subpath when using anonymous volumes"),
    ],
)
def test_bad_subpaths_refused_in_dockerd_words(source: str, subpath: str, reason: str) -> None:
    with pytest.raises(InvalidParameter) as raised:
        validate_mount(_volume_mount(source, subpath), source_exists=None)
    assert raised.value.message == f'invalid mount config for type "volume": {reason}'


def test_subpath_carried_to_the_mount_point() -> None:
    spec = _volume_mount("v", "sub/dir")
    validate_mount(spec, source_exists=None)
    assert mount_point(spec).subpath == "sub/dir"


def test_oci_mount_of_a_subpath_is_its_checked_mount_only() -> None:
    point = MountPoint(type="volume", destination="/d", source="/vols/v/_data", subpath="s")
    (mount,) = oci_mounts([point], {}, {"/d": "/run/subpaths/c/0"})
    assert mount.source == "/run/subpaths/c/0"
    # Without its mount the volume as a whole must not be mounted in its stead.
    with pytest.raises(Exception, match="not mounted"):
        oci_mounts([point], {})


def _tree(tmp_path: Path) -> Path:
    base = tmp_path / "vol" / "_data"
    (base / "sub" / "dir").mkdir(parents=True)
    (base / "file").write_text("x")
    os.symlink("sub", base / "rel")
    os.symlink("../..", base / "sub" / "up")
    os.symlink("/", base / "root")
    os.symlink("root", base / "via_root")
    os.symlink(str(base / "sub"), base / "abs_inside")
    return base


def test_eval_symlinks_follows_links_as_go(tmp_path: Path) -> None:
    base = _tree(tmp_path)
    assert eval_symlinks(str(base / "rel" / "dir")) == str(base / "sub" / "dir")
    assert eval_symlinks(str(base / "sub" / "up")) == str(base.parent)
    assert eval_symlinks(str(base / "via_root")) == "/"
    assert eval_symlinks(str(base / "sub" / ".." / "file")) == str(base / "file")


def test_resolve_keeps_subpaths_inside(tmp_path: Path) -> None:
    base = _tree(tmp_path)
    real = os.path.realpath(base)
    assert resolve(str(base), "rel/dir") == (real, "sub/dir")
    assert resolve(str(base), "abs_inside") == (real, "sub")
    assert resolve(str(base), ".") == (real, ".")
    for escaping in ("root", "via_root", "sub/up"):
        with pytest.raises(InvalidParameter) as raised:
            resolve(str(base), escaping)
        assert raised.value.message == (
            f"path concatenation escapes the base directory, base: {real}, subpath: {escaping}"
        )


def test_resolve_missing_subpath_in_dockerd_words(tmp_path: Path) -> None:
    base = _tree(tmp_path)
    with pytest.raises(NotFound) as raised:
        resolve(str(base), "some/missing")
    assert raised.value.message == (
        f"cannot access path {base}/some/missing: lstat {base}/some: no such file or directory"
    )
