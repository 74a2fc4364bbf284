"""Layer files without mounts: who still needs a snapshot or a layer blob (images, and
containers holding theirs past a forced `rmi`), what a delete leaves, and the sweep."""

from __future__ import annotations

from pathlib import Path

import pytest

from essaim.errors import SystemError_
from essaim.image import oci
from essaim.image.layers import HeldLayers
from essaim.model.image import Image
from tests.tarballs import layer_tar
from tests.unit.image_disk import Disk as SharedDisk


class Disk(SharedDisk):
    def image(self, n: int, *layer_files: dict[str, bytes]) -> Image:
        """An image of these layers, its blobs and snapshots on disk, in the index."""
        diff_ids = [self.content.write(layer_tar(files)) for files in layer_files]
        for chain, diff_id in zip(oci.chain_ids(diff_ids), diff_ids, strict=True):
            self.snapshots.unpack(chain, self.content.path(diff_id))
        config = self.content.write(b'{"n": %d}' % n)
        manifest = self.content.write(b'{"m": %d}' % n)
        image = Image(
            id=config, manifest_digest=manifest, diff_ids=diff_ids, layer_digests=diff_ids
        )
        self.index.put(image)
        return image


@pytest.fixture
def disk(tmp_path: Path) -> Disk:
    return Disk(tmp_path)


BASE = {"bin/sh": b"shell"}
APP = {"app": b"app"}


def test_an_image_in_the_index_uses_its_layers(disk: Disk) -> None:
    image = disk.image(1, BASE)
    (chain,) = disk.index.chain_ids(image)
    assert disk.layers.chain_used(chain)
    assert disk.layers.layer_blob_used(image.layer_digests[0])
    disk.index.remove(image.id)
    assert not disk.layers.chain_used(chain)
    assert not disk.layers.layer_blob_used(image.layer_digests[0])


def test_a_holding_container_keeps_layers_until_released(disk: Disk) -> None:
    image = disk.image(1, BASE)
    chains = disk.index.chain_ids(image)
    disk.layers.hold("c1", chains, image.layer_digests)
    disk.index.remove(image.id)
    assert disk.layers.chain_used(chains[0])
    assert disk.layers.layer_blob_used(image.layer_digests[0])
    held = disk.layers.release("c1")
    assert held == HeldLayers(tuple(chains), tuple(image.layer_digests))
    assert disk.layers.unused(held) == (chains, image.layer_digests)
    assert disk.layers.release("c1") is None


def test_what_a_deleted_image_leaves_is_what_nobody_else_uses(disk: Disk) -> None:
    base = disk.image(1, BASE)
    top = disk.image(2, BASE, APP)
    chains = disk.index.chain_ids(top)
    disk.index.remove(top.id)
    doomed_chains, doomed_blobs = disk.layers.left_by(top, chains)
    assert doomed_chains == chains[1:]  # the base layer is still `base`'s
    assert sorted(doomed_blobs) == sorted([top.id, top.manifest_digest, top.layer_digests[1]])
    assert disk.layers.remove(doomed_chains, doomed_blobs) == chains[1:]
    assert not disk.snapshots.exists(chains[1])
    assert disk.snapshots.exists(chains[0])
    assert sorted(disk.content.digests()) == sorted(
        [base.id, base.manifest_digest, base.layer_digests[0]]
    )


def test_a_force_deleted_image_leaves_its_containers_layers(disk: Disk) -> None:
    image = disk.image(1, BASE)
    chains = disk.index.chain_ids(image)
    disk.layers.hold("c1", chains, image.layer_digests)
    disk.index.remove(image.id)
    assert disk.layers.left_by(image, chains) == ([], [image.id, image.manifest_digest])


def test_remove_reports_only_the_snapshots_that_were_there(disk: Disk) -> None:
    image = disk.image(1, BASE)
    (chain,) = disk.index.chain_ids(image)
    missing = "sha256:" + "9" * 64
    assert disk.layers.remove([missing, chain], [image.layer_digests[0]] * 2) == [chain]
    assert not disk.content.has(image.layer_digests[0])


def test_sweep_removes_what_nobody_uses(disk: Disk) -> None:
    kept = disk.image(1, BASE)
    held = disk.image(2, APP)
    gone = disk.image(3, {"old": b"old"})
    held_chains = disk.index.chain_ids(held)
    disk.layers.hold("c1", held_chains, held.layer_digests)
    disk.index.remove(held.id)
    disk.index.remove(gone.id)
    assert disk.layers.sweep() == disk.index.chain_ids(gone)
    assert sorted(disk.content.digests()) == sorted(
        [kept.id, kept.manifest_digest, kept.layer_digests[0], held.layer_digests[0]]
    )
    assert sorted(disk.snapshots.chain_ids_on_disk()) == sorted(
        [*disk.index.chain_ids(kept), *held_chains]
    )


def test_mount_refuses_a_lost_snapshot_without_its_blob(disk: Disk, tmp_path: Path) -> None:
    image = disk.image(1, BASE)
    chains = disk.index.chain_ids(image)
    disk.snapshots.remove(chains[0])
    disk.content.delete(image.layer_digests[0])
    with pytest.raises(SystemError_, match="is missing: no snapshot, and no blob"):
        disk.layers.mount(chains, image.layer_digests, tmp_path / "container")
    with pytest.raises(SystemError_, match="is missing"):
        disk.layers.mount(chains, [], tmp_path / "container")
