"""Snapshots on disk (no mounts; those are in tests/integration/test_snapshots.py): one
unpacked directory per chain id, whole or absent, and the overlay lower-dir order."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from essaim.errors import InvalidParameter
from essaim.image.snapshot import Snapshotter

CHAIN_A = "sha256:" + "a" * 64
CHAIN_B = "sha256:" + "b" * 64


def layer(path: Path, files: dict[str, bytes], *, compress: bool = False) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


@pytest.fixture
def snapshots(tmp_path: Path) -> Snapshotter:
    return Snapshotter(tmp_path / "snapshots")


def leftovers(snapshots: Snapshotter) -> list[str]:
    return sorted(p.name for p in snapshots.root.iterdir() if p.name.startswith(".tmp-"))


@pytest.mark.parametrize(
    "chain_id",
    [
        "sha256:" + "a" * 63,
        "sha256:" + "A" * 64,
        "sha512:" + "a" * 64,
        "sha256:" + "../" * 21 + "a",
        "sha256:" + "a" * 31 + "/" + "a" * 32,
        "a" * 64,
    ],
)
def test_malformed_chain_ids_are_refused(chain_id: str, snapshots: Snapshotter) -> None:
    with pytest.raises(ValueError, match="bad chain id"):
        snapshots.dir(chain_id)


def test_unpack_makes_a_complete_snapshot(snapshots: Snapshotter, tmp_path: Path) -> None:
    size = snapshots.unpack(CHAIN_A, layer(tmp_path / "l.tar", {"etc/motd": b"hi\n"}))
    assert size == 3
    assert snapshots.exists(CHAIN_A)
    assert snapshots.size(CHAIN_A) == 3
    assert snapshots.fs(CHAIN_A) == snapshots.root / ("a" * 64) / "fs"
    assert (snapshots.fs(CHAIN_A) / "etc/motd").read_bytes() == b"hi\n"
    assert snapshots.chain_ids_on_disk() == [CHAIN_A]
    assert leftovers(snapshots) == []


def test_unpack_takes_compressed_layers(snapshots: Snapshotter, tmp_path: Path) -> None:
    path = layer(tmp_path / "l.tar.gz", {"f": b"12345"}, compress=True)
    assert snapshots.unpack(CHAIN_A, path) == 5
    assert (snapshots.fs(CHAIN_A) / "f").read_bytes() == b"12345"


def test_unpack_is_done_once(snapshots: Snapshotter, tmp_path: Path) -> None:
    snapshots.unpack(CHAIN_A, layer(tmp_path / "one.tar", {"f": b"first"}))
    again = snapshots.unpack(CHAIN_A, layer(tmp_path / "two.tar", {"f": b"second!"}))
    assert again == 5
    assert (snapshots.fs(CHAIN_A) / "f").read_bytes() == b"first"


def test_a_bad_layer_leaves_nothing_behind(snapshots: Snapshotter, tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(InvalidParameter):
        snapshots.unpack(CHAIN_A, bad)
    assert not snapshots.exists(CHAIN_A)
    assert not snapshots.dir(CHAIN_A).exists()
    assert leftovers(snapshots) == []


def test_an_escaping_layer_leaves_nothing_behind(snapshots: Snapshotter, tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter, match="outside of the target"):
        snapshots.unpack(CHAIN_A, layer(tmp_path / "l.tar", {"ok": b"", "../../evil": b"x"}))
    assert not snapshots.dir(CHAIN_A).exists()
    assert leftovers(snapshots) == []
    assert not (snapshots.root / "evil").exists()
    assert not (tmp_path / "evil").exists()


def test_an_incomplete_directory_is_replaced(snapshots: Snapshotter, tmp_path: Path) -> None:
    # A directory without its size file is not a snapshot (made by hand, or half made
    # by an older layout): unpacking must not take it for one.
    junk = snapshots.fs(CHAIN_A)
    junk.mkdir(parents=True)
    (junk / "stale").write_bytes(b"junk")
    assert not snapshots.exists(CHAIN_A)
    assert snapshots.unpack(CHAIN_A, layer(tmp_path / "l.tar", {"f": b"real"})) == 4
    assert snapshots.exists(CHAIN_A)
    assert sorted(os.listdir(snapshots.fs(CHAIN_A))) == ["f"]
    snapshots.clean()
    assert leftovers(snapshots) == []


def test_remove(snapshots: Snapshotter, tmp_path: Path) -> None:
    snapshots.unpack(CHAIN_A, layer(tmp_path / "l.tar", {"f": b"x"}))
    assert snapshots.remove(CHAIN_A) is True
    assert not snapshots.exists(CHAIN_A)
    assert not snapshots.dir(CHAIN_A).exists()
    assert snapshots.remove(CHAIN_A) is False
    assert leftovers(snapshots) == []
    assert snapshots.size(CHAIN_A) == 0


def test_clean_drops_interrupted_work_only(snapshots: Snapshotter, tmp_path: Path) -> None:
    snapshots.unpack(CHAIN_A, layer(tmp_path / "l.tar", {"f": b"x"}))
    for name in (".tmp-unpack", ".tmp-del-x"):
        (snapshots.root / name / "fs").mkdir(parents=True)
    snapshots.clean()
    assert leftovers(snapshots) == []
    assert snapshots.exists(CHAIN_A)
    assert snapshots.empty.is_dir()


def test_chain_ids_on_disk_lists_complete_snapshots_only(
    snapshots: Snapshotter, tmp_path: Path
) -> None:
    snapshots.unpack(CHAIN_B, layer(tmp_path / "l.tar", {"f": b"x"}))
    snapshots.dir(CHAIN_A).mkdir()  # no size file: not a snapshot
    assert snapshots.chain_ids_on_disk() == [CHAIN_B]


def test_size_of_a_damaged_size_file_is_zero(snapshots: Snapshotter, tmp_path: Path) -> None:
    snapshots.unpack(CHAIN_A, layer(tmp_path / "l.tar", {"f": b"x"}))
    (snapshots.dir(CHAIN_A) / "size").write_text("garbage")
    assert snapshots.size(CHAIN_A) == 0


def test_lower_dirs_put_the_top_layer_first(snapshots: Snapshotter) -> None:
    assert snapshots.lower_dirs([CHAIN_A, CHAIN_B]) == [
        snapshots.fs(CHAIN_B),
        snapshots.fs(CHAIN_A),
    ]


def test_lower_dirs_of_an_image_without_layers(snapshots: Snapshotter) -> None:
    assert snapshots.lower_dirs([]) == [snapshots.empty]
    assert snapshots.empty.is_dir()


@pytest.mark.parametrize("compress", [False, True])
def test_unpack_reports_how_far_into_the_layer_file_it_has_read(
    snapshots: Snapshotter, tmp_path: Path, compress: bool
) -> None:
    path = layer(tmp_path / "l.tar", {"big": os.urandom(3 << 20)}, compress=compress)
    offsets: list[int] = []
    data = path.read_bytes()
    diff_id = "sha256:" + hashlib.sha256(gzip.decompress(data) if compress else data).hexdigest()
    snapshots.unpack(CHAIN_A, path, diff_id=diff_id, on_read=offsets.append)
    assert len(offsets) > 1
    assert offsets == sorted(offsets)
    assert offsets[-1] == path.stat().st_size
    assert (snapshots.dir(CHAIN_A) / "fs" / "big").stat().st_size == 3 << 20
