"""The built-in busybox layer: byte for byte the same on every run, and a usable rootfs
(the binary, its applets as links to it, the account files)."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from essaim.errors import NotFound
from essaim.image import archive, busybox

pytestmark = pytest.mark.skipif(
    not busybox.BUSYBOX.is_file(), reason="needs /bin/busybox (busybox-static)"
)


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("busybox") / "layer.tar"
    busybox.build_busybox_layer(path)
    return path.read_bytes()


@pytest.fixture(scope="module")
def members(layer: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_the_layer_is_byte_for_byte_reproducible(layer: bytes, tmp_path: Path) -> None:
    again = tmp_path / "again.tar"
    busybox.build_busybox_layer(again)
    assert hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(layer).digest()


def test_entries_are_sorted_root_owned_and_dated(members: dict[str, tarfile.TarInfo]) -> None:
    names = list(members)
    assert names == sorted(names)
    for info in members.values():
        assert (info.uid, info.gid, info.uname, info.gname) == (0, 0, "root", "root")
        assert info.mtime == busybox.MTIME
        assert not info.pax_headers  # nothing that varies from run to run


def test_busybox_itself_is_the_host_binary(
    members: dict[str, tarfile.TarInfo], layer: bytes
) -> None:
    info = members["bin/busybox"]
    assert info.isreg()
    assert info.mode == 0o755
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        data = tar.extractfile(info)
        assert data is not None
        assert data.read() == busybox.BUSYBOX.read_bytes()


def test_applets_link_to_busybox_and_busybox_is_not_a_link(
    members: dict[str, tarfile.TarInfo],
) -> None:
    applets = busybox.applets()
    assert "sh" in applets
    for applet in applets:
        if applet == "busybox" or "/" in applet:
            continue
        info = members[f"bin/{applet}"]
        assert info.issym(), applet
        assert info.linkname == "busybox"
    assert not members["bin/busybox"].issym()
    links = [m for m in members.values() if m.issym()]
    assert all(m.name != m.linkname and m.name != "bin/" + m.linkname for m in links)


def test_account_files_and_directories(members: dict[str, tarfile.TarInfo], layer: bytes) -> None:
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        passwd = tar.extractfile(members["etc/passwd"])
        assert passwd is not None
        text = passwd.read().decode()
    assert text.startswith("root:x:0:0:root:/root:/bin/sh\n")
    assert "nobody:x:65534:65534:" in text
    assert members["etc/group"].isreg()
    assert members["tmp"].isdir() and members["tmp"].mode == 0o1777
    assert members["root"].mode == 0o700
    for directory in ("proc", "sys", "dev", "etc", "usr/bin"):
        assert members[directory].isdir()


def test_the_layer_unpacks_into_a_working_rootfs(layer: bytes, tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    size = archive.unpack(io.BytesIO(layer), root, same_owner=False)
    assert size > busybox.BUSYBOX.stat().st_size
    assert (root / "bin/sh").resolve() == (root / "bin/busybox").resolve()
    assert (root / "bin/busybox").read_bytes()[:4] == b"\x7fELF"


def test_a_missing_binary_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="busybox-static"):
        busybox.build_busybox_layer(tmp_path / "x.tar", tmp_path / "no-busybox")
