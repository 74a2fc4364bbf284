"""Registry garbage collection: what a kept manifest references is marked (configs,
layers, index children, subjects), the rest swept; untagged manifests on request."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from essaim.image.registry.gc import collect
from essaim.image.registry.storage import RegistryStorage

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob(storage: RegistryStorage, repo: str, data: bytes) -> str:
    digest = digest_of(data)
    storage.put_blob(digest, data)
    storage.link_blob(repo, digest)
    return digest


def descriptor(digest: str, media_type: str = "application/octet-stream") -> dict[str, object]:
    return {"mediaType": media_type, "digest": digest, "size": 1}


def manifest(
    storage: RegistryStorage, repo: str, seed: str, tag: str | None, subject: str | None = None
) -> tuple[str, list[str]]:
    config = blob(storage, repo, f"config {seed}".encode())
    layer = blob(storage, repo, f"layer {seed}".encode())
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(config),
        "layers": [descriptor(layer)],
    }
    if subject:
        doc["subject"] = descriptor(subject, OCI_MANIFEST)
    body = json.dumps(doc).encode()
    digest = digest_of(body)
    storage.put_manifest(repo, digest, body, OCI_MANIFEST, tag, subject)
    return digest, [config, layer]


@pytest.fixture
def storage(tmp_path: Path) -> RegistryStorage:
    s = RegistryStorage(tmp_path / "root")
    s.prepare()
    return s


def test_unreferenced_blobs_go_and_referenced_stay(storage: RegistryStorage) -> None:
    kept, kept_blobs = manifest(storage, "app", "one", "v1")
    orphan = blob(storage, "app", b"uploaded but never in a manifest")
    report = collect(storage, delete_untagged=False, dry_run=False)
    assert report.deleted_blobs == [orphan]
    assert storage.blob_size(orphan) is None
    assert not storage.blob_linked("app", orphan)
    for digest in [kept, *kept_blobs]:
        assert storage.blob_size(digest) is not None
    assert storage.manifest("app", kept) is not None


def test_dry_run_changes_nothing(storage: RegistryStorage) -> None:
    orphan = blob(storage, "app", b"orphan")
    report = collect(storage, delete_untagged=False, dry_run=True)
    assert report.deleted_blobs == [orphan]
    assert storage.blob_linked("app", orphan)


def test_untagged_manifests_go_only_when_asked(storage: RegistryStorage) -> None:
    tagged, tagged_blobs = manifest(storage, "app", "tagged", "v1")
    untagged, untagged_blobs = manifest(storage, "app", "untagged", None)
    collect(storage, delete_untagged=False, dry_run=False)
    assert storage.manifest("app", untagged) is not None
    report = collect(storage, delete_untagged=True, dry_run=False)
    assert report.deleted_manifests == [("app", untagged)]
    assert storage.manifest("app", untagged) is None
    assert storage.manifest("app", tagged) is not None
    assert sorted(report.deleted_blobs) == sorted([untagged, *untagged_blobs])
    for digest in tagged_blobs:
        assert storage.blob_size(digest) is not None


def test_index_children_and_referrers_of_kept_manifests_stay(storage: RegistryStorage) -> None:
    child, child_blobs = manifest(storage, "app", "child", None)
    index = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(child, OCI_MANIFEST)]}
    ).encode()
    storage.put_manifest("app", digest_of(index), index, OCI_INDEX, "latest", None)
    signature, signature_blobs = manifest(storage, "app", "signature", None, subject=child)
    report = collect(storage, delete_untagged=True, dry_run=False)
    assert report.deleted_manifests == []
    assert report.deleted_blobs == []
    for digest in [child, *child_blobs, signature, *signature_blobs, digest_of(index)]:
        assert storage.blob_size(digest) is not None


def test_a_blob_shared_with_another_repository_stays(storage: RegistryStorage) -> None:
    _, blobs = manifest(storage, "one", "shared", "v1")
    storage.link_blob("two", blobs[1])  # mounted, no manifest in "two"
    collect(storage, delete_untagged=False, dry_run=False)
    assert storage.blob_linked("two", blobs[1])


def test_gc_command_refuses_a_root_a_server_holds(tmp_path: Path) -> None:
    from essaim.image.registry.serve import root_lock

    root = tmp_path / "root"
    RegistryStorage(root).prepare()
    essaim = [str(Path(sys.executable).parent / "essaim")]
    with root_lock(root, "test server"):
        busy = subprocess.run(
            [*essaim, "registry", "gc", "--root", str(root)], capture_output=True, text=True
        )
    assert busy.returncode == 1
    assert "stop the server first" in busy.stderr
    done = subprocess.run(
        [*essaim, "registry", "gc", "--root", str(root)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "0 blobs marked" in done.stdout
