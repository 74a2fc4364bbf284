"""Creating images without a daemon: a layer tar becomes an uncompressed blob and a
snapshot, the image record stacks them on its base, and its blobs name the image."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from essaim.errors import InvalidParameter
from essaim.image import ingest, oci
from essaim.model.image import HistoryEntry, Image, ImageConfig
from tests.tarballs import layer_tar
from tests.unit.image_disk import Disk as SharedDisk


class Disk(SharedDisk):
    def ingest(self, layer: Path, lower: list[str] | None = None) -> tuple[str, int]:
        return ingest.ingest_layer(self.content, self.snapshots, self.layers, layer, lower or [])


@pytest.fixture
def disk(tmp_path: Path) -> Disk:
    return Disk(tmp_path)


def test_a_compressed_layer_is_stored_uncompressed(disk: Disk, tmp_path: Path) -> None:
    raw = layer_tar({"etc/motd": b"hello"})
    path = tmp_path / "layer.tar.gz"
    path.write_bytes(gzip.compress(raw))
    diff_id, size = disk.ingest(path)
    assert diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert size == 5
    assert disk.content.path(diff_id).read_bytes() == raw
    assert (disk.snapshots.fs(diff_id) / "etc/motd").read_bytes() == b"hello"
    assert path.exists()  # copied, not consumed


def test_an_ingest_file_is_linked_and_left_to_its_owner(disk: Disk) -> None:
    raw = layer_tar({"f": b"x"})
    temp = disk.content.temp_file(".import")
    temp.write_bytes(raw)
    diff_id, _ = disk.ingest(temp)
    assert disk.content.path(diff_id).read_bytes() == raw
    assert temp.read_bytes() == raw


def test_a_layer_on_a_lower_one_gets_its_chain_id(disk: Disk, tmp_path: Path) -> None:
    lower = "sha256:" + "a" * 64
    path = tmp_path / "layer.tar"
    path.write_bytes(layer_tar({"f": b"x"}))
    diff_id, _ = disk.ingest(path, [lower])
    assert disk.snapshots.exists(oci.chain_ids([lower, diff_id])[-1])
    assert not disk.snapshots.exists(diff_id)


def test_a_layer_that_cannot_be_unpacked_leaves_no_blob(disk: Disk, tmp_path: Path) -> None:
    path = tmp_path / "evil.tar"
    path.write_bytes(layer_tar({"../../evil": b"x"}))
    with pytest.raises(InvalidParameter):
        disk.ingest(path)
    assert disk.content.digests() == []


def test_a_failed_unpack_keeps_a_blob_someone_holds(disk: Disk, tmp_path: Path) -> None:
    raw = layer_tar({"../../evil": b"x"})
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    disk.layers.hold("c1", [], [digest])
    path = tmp_path / "evil.tar"
    path.write_bytes(raw)
    with pytest.raises(InvalidParameter):
        disk.ingest(path)
    assert disk.content.digests() == [digest]


def test_new_image_stacks_on_its_base_and_keeps_its_platform() -> None:
    base = Image(
        id="sha256:" + "1" * 64,
        architecture="arm64",
        variant="v8",
        os="linux",
        diff_ids=["sha256:" + "a" * 64],
        layer_digests=["sha256:" + "c" * 64],  # compressed, as pulled
        layer_sizes=[10],
    )
    history = [HistoryEntry(created="t", comment="c")]
    image = ingest.new_image(
        [("sha256:" + "b" * 64, 5)],
        config=ImageConfig(user="me"),
        created="t",
        history=history,
        base=base,
        parent=base.id,
        comment="c",
    )
    assert image.id == ""
    assert image.diff_ids == ["sha256:" + "a" * 64, "sha256:" + "b" * 64]
    assert image.layer_digests == ["sha256:" + "c" * 64, "sha256:" + "b" * 64]
    assert (image.layer_sizes, image.size) == ([10, 5], 15)
    assert (image.architecture, image.variant, image.os) == ("arm64", "v8", "linux")
    assert (image.parent, image.comment, image.config.user) == (base.id, "c", "me")
    assert image.history == history


def test_write_blobs_names_the_image_by_its_config(disk: Disk, tmp_path: Path) -> None:
    path = tmp_path / "layer.tar"
    path.write_bytes(layer_tar({"f": b"x"}))
    diff_id, size = disk.ingest(path)
    draft = ingest.new_image([(diff_id, size)], config=ImageConfig(), created="t", history=[])
    image = ingest.write_blobs(disk.content, draft)
    assert image.id == "sha256:" + hashlib.sha256(disk.content.read(image.id)).hexdigest()
    manifest = json.loads(disk.content.read(image.manifest_digest))
    assert manifest["config"]["digest"] == image.id
    assert [layer["digest"] for layer in manifest["layers"]] == [diff_id]


def test_what_a_concurrent_rmi_took_is_put_back_before_indexing(disk: Disk, tmp_path: Path) -> None:
    """An rmi of another image sharing the layer ran while this one was being made, and
    removed its snapshot, blob and (identical image) config: all come back."""
    lower_tar = tmp_path / "lower.tar"
    lower_tar.write_bytes(layer_tar({"a": b"lower"}))
    upper_tar = tmp_path / "upper.tar"
    upper_tar.write_bytes(layer_tar({"b": b"upper"}))
    lower = disk.ingest(lower_tar)
    upper = disk.ingest(upper_tar, [lower[0]])
    draft = ingest.new_image([lower, upper], config=ImageConfig(), created="t", history=[])
    image = ingest.write_blobs(disk.content, draft)
    chains = oci.chain_ids(image.diff_ids)
    disk.snapshots.remove(chains[0])  # blob kept: unpacked again from it
    disk.snapshots.remove(chains[1])
    disk.content.delete(upper[0])  # blob gone too: ingested again from the tar
    disk.content.delete(image.id)
    ingest.ensure_on_disk(disk.content, disk.snapshots, disk.layers, image, [upper_tar])
    assert all(disk.snapshots.exists(chain) for chain in chains)
    assert disk.content.has(upper[0]) and disk.content.has(image.id)
    assert (disk.snapshots.fs(chains[1]) / "b").read_bytes() == b"upper"
