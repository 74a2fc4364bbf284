"""Snapshots as root: whiteouts and opaque directories unpacked into overlayfs' own
marks, ownership and device nodes, and the overlay mounts stacked from snapshots."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from essaim.image import archive
from essaim.image.snapshot import (
    Snapshotter,
    mount_overlay,
    remove_container_layer,
    unmount_overlay,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mknod, mount)")


def chain(n: int) -> str:
    return f"sha256:{n:064x}"


def tar_file(path: Path, *members: tuple[tarfile.TarInfo, bytes | None]) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    path.write_bytes(buf.getvalue())
    return path


def reg(name: str, data: bytes = b"", **attrs: object) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def node(name: str, kind: bytes, **attrs: object) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o755
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, None


@pytest.fixture
def snapshots(tmp_path: Path) -> Snapshotter:
    return Snapshotter(tmp_path / "snapshots")


@pytest.fixture
def container(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "container"
    directory.mkdir()
    try:
        yield directory
    finally:
        unmount_overlay(directory)


def is_whiteout(path: Path) -> bool:
    st = os.lstat(path)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)


def test_whiteouts_become_overlay_whiteouts(snapshots: Snapshotter, tmp_path: Path) -> None:
    layer = tar_file(
        tmp_path / "l.tar",
        node("etc", tarfile.DIRTYPE),
        reg("etc/.wh.motd"),
        node("opt", tarfile.DIRTYPE),
        reg("opt/.wh..wh..opq"),
        reg("opt/kept", b"k"),
    )
    snapshots.unpack(chain(1), layer)
    fs = snapshots.fs(chain(1))
    assert is_whiteout(fs / "etc/motd")
    assert not (fs / "etc/.wh.motd").exists()
    assert os.getxattr(fs / "opt", "trusted.overlay.opaque") == b"y"
    assert not (fs / "opt/.wh..wh..opq").exists()
    assert (fs / "opt/kept").read_bytes() == b"k"


def test_whiteout_replaces_what_the_same_layer_put_there(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    layer = tar_file(tmp_path / "l.tar", reg("d/x/f", b"1"), reg("d/.wh.x"))
    with layer.open("rb") as raw:
        archive.unpack(raw, root, whiteouts=True)
    assert is_whiteout(root / "d/x")


def test_ownership_modes_and_device_nodes_as_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    layer = tar_file(
        tmp_path / "l.tar",
        reg("bin/su", b"elf", uid=0, gid=0, mode=0o4755),
        reg("home/app/file", b"x", uid=1000, gid=1001, mode=0o640),
        node("home/app", tarfile.DIRTYPE, uid=1000, gid=1001, mode=0o750),
        node("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666),
        node("dev/loop9", tarfile.BLKTYPE, devmajor=7, devminor=9, mode=0o660, gid=6),
        node("link", tarfile.SYMTYPE, linkname="bin/su", uid=5, gid=5),
    )
    with layer.open("rb") as raw:
        archive.unpack(raw, root)
    su = os.lstat(root / "bin/su")
    assert stat.S_IMODE(su.st_mode) == 0o4755  # chown did not clear the setuid bit
    app = os.lstat(root / "home/app/file")
    assert (app.st_uid, app.st_gid, stat.S_IMODE(app.st_mode)) == (1000, 1001, 0o640)
    assert (os.lstat(root / "home/app").st_uid, os.lstat(root / "home/app").st_gid) == (1000, 1001)
    null = os.lstat(root / "dev/null")
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    loop = os.lstat(root / "dev/loop9")
    assert stat.S_ISBLK(loop.st_mode) and loop.st_rdev == os.makedev(7, 9)
    assert loop.st_gid == 6
    link = os.lstat(root / "link")
    assert (link.st_uid, link.st_gid) == (5, 5)


def test_overlay_marks_cannot_come_from_pax_headers(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    smuggled = node("d", tarfile.DIRTYPE)
    smuggled[0].pax_headers = {
        "SCHILY.xattr.trusted.overlay.opaque": "y",
        "SCHILY.xattr.trusted.overlay.redirect": "/etc",
        "SCHILY.xattr.trusted.essaim-test": "kept",
    }
    layer = tar_file(tmp_path / "l.tar", smuggled)
    with layer.open("rb") as raw:
        archive.unpack(raw, root, whiteouts=True)
    names = os.listxattr(root / "d")
    assert "trusted.overlay.opaque" not in names
    assert "trusted.overlay.redirect" not in names
    assert os.getxattr(root / "d", "trusted.essaim-test") == b"kept"


def test_overlay_of_snapshots(snapshots: Snapshotter, container: Path, tmp_path: Path) -> None:
    base = tar_file(
        tmp_path / "base.tar",
        reg("etc/motd", b"base"),
        reg("etc/hostname", b"box"),
        reg("opt/old/a", b"a"),
        reg("bin/sh", b"sh"),
    )
    top = tar_file(
        tmp_path / "top.tar",
        reg("etc/.wh.motd"),
        reg("opt/.wh..wh..opq"),
        reg("opt/new", b"n"),
        reg("bin/sh", b"newer sh"),
    )
    snapshots.unpack(chain(1), base)
    snapshots.unpack(chain(2), top)
    rootfs = mount_overlay(snapshots.lower_dirs([chain(1), chain(2)]), container)
    assert rootfs == container / "rootfs"
    assert os.path.ismount(rootfs)
    assert not (rootfs / "etc/motd").exists()
    assert (rootfs / "etc/hostname").read_bytes() == b"box"
    assert sorted(os.listdir(rootfs / "opt")) == ["new"]
    assert (rootfs / "bin/sh").read_bytes() == b"newer sh"

    (rootfs / "etc/written").write_bytes(b"by the container")
    assert (container / "upper/etc/written").read_bytes() == b"by the container"
    assert not (snapshots.fs(chain(2)) / "etc/written").exists()
    # Mounting again is a no-op; unmounting twice is fine.
    assert mount_overlay(snapshots.lower_dirs([chain(1), chain(2)]), container) == rootfs
    unmount_overlay(container)
    assert not os.path.ismount(rootfs)
    unmount_overlay(container)
    remove_container_layer(container)
    assert not (container / "upper").exists()
    assert not (container / "work").exists()


def test_overlay_of_an_image_without_layers(snapshots: Snapshotter, container: Path) -> None:
    rootfs = mount_overlay(snapshots.lower_dirs([]), container)
    assert os.listdir(rootfs) == []


def test_overlay_of_more_layers_than_mount_options_hold(
    snapshots: Snapshotter, container: Path, tmp_path: Path
) -> None:
    chains = [chain(n) for n in range(1, 61)]
    for n, chain_id in enumerate(chains, start=1):
        snapshots.unpack(chain_id, tar_file(tmp_path / f"{n}.tar", reg(f"layer{n}", b"x")))
    lowers = snapshots.lower_dirs(chains)
    assert len(":".join(map(str, lowers))) > os.sysconf("SC_PAGE_SIZE")
    try:
        rootfs = mount_overlay(lowers, container)
    except Exception as exc:  # older kernels lack fsconfig's lowerdir+
        if "Invalid argument" in str(exc):
            pytest.skip(f"kernel without lowerdir+: {exc}")
        raise
    assert sorted(os.listdir(rootfs)) == sorted(f"layer{n}" for n in range(1, 61))
