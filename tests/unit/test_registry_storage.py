"""The registry's filesystem storage: atomic writes, links, tags, manifests, referrers,
repository listing; and the names and digests it accepts."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from essaim.image.registry.errors import RegistryError
from essaim.image.registry.names import check_digest, check_name, check_tag
from essaim.image.registry.storage import RegistryStorage, write_atomic


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def storage(tmp_path: Path) -> RegistryStorage:
    s = RegistryStorage(tmp_path / "root")
    s.prepare()
    return s


def test_write_atomic_leaves_no_temp_file_and_replaces_whole(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "link"
    write_atomic(target, b"first")
    write_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    assert os.listdir(target.parent) == ["link"]


def test_a_failed_write_leaves_the_old_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "link"
    write_atomic(target, b"old")

    def broken_fsync(fd: int) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["link"]


def test_blob_links_are_per_repository(storage: RegistryStorage, tmp_path: Path) -> None:
    data = b"layer"
    digest = digest_of(data)
    upload = tmp_path / "upload"
    upload.write_bytes(data)
    storage.commit_blob(upload, digest)
    assert not upload.exists()
    assert storage.blob_size(digest) == len(data)
    assert not storage.blob_linked("a", digest)
    storage.link_blob("a", digest)
    assert storage.blob_linked("a", digest)
    assert not storage.blob_linked("b", digest)
    assert storage.unlink_blob("a", digest)
    assert not storage.unlink_blob("a", digest)
    assert storage.blob_size(digest) == len(data)  # only gc removes data


def test_a_link_to_missing_data_is_not_a_blob(storage: RegistryStorage) -> None:
    digest = digest_of(b"never stored")
    storage.link_blob("a", digest)
    assert not storage.blob_linked("a", digest)


def test_manifests_tags_and_referrers(storage: RegistryStorage) -> None:
    body = b'{"schemaVersion":2}'
    digest = digest_of(body)
    subject = digest_of(b"subject")
    storage.put_manifest(
        "r/x", digest, body, "application/vnd.oci.image.manifest.v1+json", "v1", subject
    )
    assert storage.manifest("r/x", digest) == (body, "application/vnd.oci.image.manifest.v1+json")
    assert storage.manifest("other", digest) is None
    assert storage.resolve_tag("r/x", "v1") == digest
    assert storage.tags("r/x") == {"v1": digest}
    assert storage.referrers("r/x", subject) == [digest]
    assert storage.repository_names() == ["r/x"]
    assert storage.delete_manifest("r/x", digest)
    assert storage.tags("r/x") == {}
    assert storage.referrers("r/x", subject) == []
    assert storage.manifest("r/x", digest) is None


def test_repository_names_are_nested_and_sorted(storage: RegistryStorage) -> None:
    for name in ("b", "a/c", "a", "a/b/c"):
        storage.link_blob(name, digest_of(name.encode()))
    assert storage.repository_names() == ["a", "a/b/c", "a/c", "b"]


@pytest.mark.parametrize("name", ["a", "a/b", "a-b/c.d", "a__b", "x0/y_1/z--2"])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "A", "a/", "/a", "a//b", "_a", "a/_layers", "a..b", "a" * 256]
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(RegistryError) as err:
        check_name(name)
    assert (err.value.code, err.value.status) == ("NAME_INVALID", 400)


def test_digests_and_tags() -> None:
    check_digest("sha256:" + "a" * 64)
    check_digest("sha512:" + "0" * 128)
    for bad in ("sha256:" + "A" * 64, "sha256:abc", "md5:" + "a" * 32, "sha256", "../../etc"):
        with pytest.raises(RegistryError) as err:
            check_digest(bad)
        assert err.value.code == "DIGEST_INVALID"
    check_tag("v1.0_rc-1")
    for bad in (".hidden", "-x", "a" * 129, "a/b"):
        with pytest.raises(RegistryError):
            check_tag(bad)
