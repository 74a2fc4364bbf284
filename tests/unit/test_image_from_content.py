"""Images made from blobs already in the content store (what pull and load leave): the
config's bytes are the image, layers of any compression are checked against its diff
ids as they are unpacked, and a bad layer leaves no snapshot."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import zstandard

from essaim.image import ingest, oci, reference
from essaim.image.content import DigestMismatch
from essaim.image.service import ImageService
from essaim.store import SqliteStore
from essaim.store.events import EventBus
from tests.tarballs import layer_tar
from tests.unit.image_disk import Disk

BASE = layer_tar({"bin/sh": b"shell"})
APP = layer_tar({"app/run": b"#!/bin/sh\n"})


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def config_for(*layers: bytes, extra: dict[str, object] | None = None) -> bytes:
    doc: dict[str, object] = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["sh"], "Env": ["A=b"]},
        "rootfs": {"type": "layers", "diff_ids": [sha(layer) for layer in layers]},
        # Keys a re-encoder would drop or reorder: the image id must not change.
        "zz-unknown": {"kept": True},
        **(extra or {}),
    }
    return json.dumps(doc, indent=3).encode()


@pytest.fixture
def disk(tmp_path: Path) -> Disk:
    return Disk(tmp_path)


def test_layers_of_each_compression_are_unpacked_and_named_by_their_blobs(disk: Disk) -> None:
    config = disk.content.write(config_for(BASE, APP))
    gz = disk.content.write(gzip.compress(BASE, mtime=0))
    zst = disk.content.write(zstandard.ZstdCompressor().compress(APP))
    layers = [
        oci.Descriptor(oci.DOCKER_LAYER_GZIP, gz, disk.content.size(gz)),
        oci.Descriptor(oci.OCI_LAYER_ZSTD, zst, disk.content.size(zst)),
    ]
    image = ingest.image_from_content(disk.content, disk.snapshots, config, layers, "")
    assert image.id == config
    assert image.layer_digests == [gz, zst]
    assert image.layer_media_types == [oci.DOCKER_LAYER_GZIP, oci.OCI_LAYER_ZSTD]
    assert image.layer_sizes == [5, 10]
    chains = oci.chain_ids(image.diff_ids)
    assert (disk.snapshots.fs(chains[1]) / "app/run").read_bytes() == b"#!/bin/sh\n"
    manifest = oci.parse_manifest(disk.content.read(image.manifest_digest))
    assert manifest.config.digest == config
    assert [d.media_type for d in manifest.layers] == [oci.OCI_LAYER_GZIP, oci.OCI_LAYER_ZSTD]


def test_a_layer_that_is_not_its_diff_id_leaves_no_snapshot(disk: Disk) -> None:
    config = disk.content.write(config_for(BASE))
    other = disk.content.write(gzip.compress(layer_tar({"bin/sh": b"evil!"})))
    layers = [oci.Descriptor(oci.OCI_LAYER_GZIP, other, disk.content.size(other))]
    with pytest.raises(DigestMismatch, match="layer content digest mismatch"):
        ingest.image_from_content(disk.content, disk.snapshots, config, layers, "")
    assert disk.snapshots.chain_ids_on_disk() == []


def test_trailing_bytes_after_the_tar_count_in_the_digest(disk: Disk) -> None:
    padded = BASE + b"\0" * 10240
    config = disk.content.write(config_for(BASE))
    blob = disk.content.write(padded)
    layers = [oci.Descriptor(oci.OCI_LAYER, blob, len(padded))]
    with pytest.raises(DigestMismatch):
        ingest.image_from_content(disk.content, disk.snapshots, config, layers, "")


def test_a_layer_count_unlike_the_config_is_refused(disk: Disk) -> None:
    config = disk.content.write(config_for(BASE, APP))
    blob = disk.content.write(BASE)
    with pytest.raises(Exception, match="1 layers for 2 diff ids"):
        ingest.image_from_content(
            disk.content, disk.snapshots, config, [oci.Descriptor(oci.OCI_LAYER, blob, 1)], ""
        )


def test_an_unknown_layer_media_type_is_refused_before_unpacking(disk: Disk) -> None:
    config = disk.content.write(config_for(BASE))
    blob = disk.content.write(BASE)
    layers = [oci.Descriptor("application/x-other", blob, len(BASE))]
    with pytest.raises(Exception, match="unsupported layer media type"):
        ingest.image_from_content(disk.content, disk.snapshots, config, layers, "")
    assert disk.snapshots.chain_ids_on_disk() == []


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[ImageService, EventBus]]:
    executor = ThreadPoolExecutor(max_workers=2)
    store = SqliteStore(tmp_path / "state.db")
    events = EventBus()
    yield ImageService(tmp_path / "data", store, events, executor), events
    asyncio.run(store.close())
    executor.shutdown()


def test_the_service_indexes_the_image_with_its_tag_and_digest(
    service: tuple[ImageService, EventBus],
) -> None:
    images, _ = service

    async def scenario() -> None:
        raw_config = config_for(BASE)
        config = images.content.write(raw_config)
        gz = images.content.write(gzip.compress(BASE, mtime=0))
        layer = oci.Descriptor(oci.DOCKER_LAYER_GZIP, gz, images.content.size(gz))
        manifest_bytes = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": oci.DOCKER_MANIFEST,
                "config": {
                    "mediaType": oci.DOCKER_CONFIG,
                    "digest": config,
                    "size": len(raw_config),
                },
                "layers": [layer.encode()],
            }
        ).encode()
        manifest = images.content.write(manifest_bytes)
        refs = [
            reference.parse("127.0.0.1:5000/bb:v1"),
            reference.parse(f"127.0.0.1:5000/bb@{manifest}"),
        ]
        image = await images.add_from_content(
            config, [layer], manifest_digest=manifest, refs=refs, event="pull"
        )
        assert image.id == config
        assert image.manifest_digest == manifest
        assert image.repo_tags == ["127.0.0.1:5000/bb:v1"]
        assert image.repo_digests == [f"127.0.0.1:5000/bb@{manifest}"]
        assert (await images.get("127.0.0.1:5000/bb:v1")).id == config
        assert (await images.get(f"127.0.0.1:5000/bb@{manifest}")).id == config
        # Again, with another tag: the same image, one more name, no second snapshot.
        again = await images.add_from_content(
            config, [layer], manifest_digest=manifest, refs=[reference.parse("bb:copy")]
        )
        assert again.id == config
        assert "docker.io/library/bb:copy" in again.repo_tags
        assert len(images.snapshots.chain_ids_on_disk()) == 1
        # A container made from it can stack its layers (the blob stays compressed).
        chains, digests = images.rootfs_layers(image)
        assert digests == [gz]
        assert chains == oci.chain_ids(image.diff_ids)

    asyncio.run(scenario())


def test_a_failed_add_indexes_nothing(service: tuple[ImageService, EventBus]) -> None:
    images, _ = service

    async def scenario() -> None:
        config = images.content.write(config_for(BASE))
        wrong = images.content.write(APP)
        with pytest.raises(DigestMismatch):
            await images.add_from_content(
                config,
                [oci.Descriptor(oci.OCI_LAYER, wrong, len(APP))],
                refs=[reference.parse("bad:1")],
            )
        assert await images.list() == []
        assert images.snapshots.chain_ids_on_disk() == []

    asyncio.run(scenario())


def test_a_present_snapshot_does_not_vouch_for_an_unknown_blob(disk: Disk) -> None:
    config = disk.content.write(config_for(BASE))
    plain = disk.content.write(BASE)
    layers = [oci.Descriptor(oci.OCI_LAYER, plain, len(BASE))]
    ingest.image_from_content(disk.content, disk.snapshots, config, layers, "")
    # Same diff id, so the snapshot is there; but this blob holds other bytes.
    liar = disk.content.write(gzip.compress(layer_tar({"bin/sh": b"evil!"})))
    lying = [oci.Descriptor(oci.OCI_LAYER_GZIP, liar, disk.content.size(liar))]
    with pytest.raises(DigestMismatch):
        ingest.image_from_content(disk.content, disk.snapshots, config, lying, "")
    # An honest compressed copy of the same layer is accepted without a second unpack.
    honest = disk.content.write(gzip.compress(BASE, mtime=0))
    good = [oci.Descriptor(oci.OCI_LAYER_GZIP, honest, disk.content.size(honest))]
    image = ingest.image_from_content(disk.content, disk.snapshots, config, good, "")
    assert image.layer_digests == [honest]
