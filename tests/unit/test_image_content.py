"""The content store: blobs by sha256 digest, written through the ingest directory,
verified, and never addressed by anything but a well-formed digest."""

from __future__ import annotations

import hashlib
import io
import os
import stat
from pathlib import Path

import pytest

from essaim.errors import InvalidParameter, NotFound
from essaim.image.content import ContentStore, DigestMismatch, sha256_digest


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "content")


def test_layout(store: ContentStore) -> None:
    assert store.blobs == store.root / "blobs" / "sha256"
    assert store.blobs.is_dir()
    assert store.ingest_dir.is_dir()


def test_sha256_digest() -> None:
    assert sha256_digest(b"") == (
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_write_stores_read_only_blob_by_digest(store: ContentStore) -> None:
    digest = store.write(b"hello")
    assert digest == digest_of(b"hello")
    path = store.path(digest)
    assert path == store.blobs / digest.removeprefix("sha256:")
    assert path.read_bytes() == b"hello"
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert store.has(digest)
    assert store.size(digest) == 5
    assert store.read(digest) == b"hello"
    with store.open(digest) as blob:
        assert blob.read() == b"hello"
    assert store.digests() == [digest]
    assert list(store.ingest_dir.iterdir()) == []


def test_write_with_the_right_expected_digest(store: ContentStore) -> None:
    assert store.write(b"x", expected=digest_of(b"x")) == digest_of(b"x")


def test_digest_mismatch_stores_nothing(store: ContentStore) -> None:
    wrong = digest_of(b"something else")
    with pytest.raises(DigestMismatch) as info:
        store.write(b"x", expected=wrong)
    assert str(info.value) == f"digest mismatch: expected {wrong}, got {digest_of(b'x')}"
    assert isinstance(info.value, InvalidParameter)
    assert not store.has(digest_of(b"x"))
    assert store.digests() == []
    assert list(store.ingest_dir.iterdir()) == []


def test_write_stream_in_chunks(store: ContentStore) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    digest, size = store.write_stream(io.BytesIO(data))
    assert (digest, size) == (digest_of(data), len(data))
    assert store.read(digest) == data


def test_write_chunks_that_fail_midway_leave_no_trace(store: ContentStore) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b"first"
        raise OSError("connection reset")

    with pytest.raises(OSError, match="connection reset"):
        store.write_chunks(chunks())
    assert store.digests() == []
    assert list(store.ingest_dir.iterdir()) == []


def test_writing_the_same_bytes_twice_is_one_blob(store: ContentStore) -> None:
    assert store.write(b"same") == store.write(b"same")
    assert len(store.digests()) == 1
    assert list(store.ingest_dir.iterdir()) == []


def test_a_damaged_blob_is_replaced_by_a_good_write(store: ContentStore) -> None:
    digest = store.write(b"the real content")
    path = store.path(digest)
    path.chmod(0o644)
    path.write_bytes(b"the real")  # truncated on disk
    with pytest.raises(DigestMismatch):
        store.read(digest)
    store.write(b"the real content")
    assert store.read(digest) == b"the real content"


def test_adopt_moves_a_finished_file_in(store: ContentStore) -> None:
    temp = store.temp_file(".layer")
    assert temp.parent == store.ingest_dir
    temp.write_bytes(b"layer bytes")
    digest, size = store.adopt(temp)
    assert (digest, size) == (digest_of(b"layer bytes"), 11)
    assert not temp.exists()
    assert store.read(digest) == b"layer bytes"


def test_adopt_with_a_wrong_digest_removes_the_file(store: ContentStore) -> None:
    temp = store.temp_file()
    temp.write_bytes(b"abc")
    with pytest.raises(DigestMismatch):
        store.adopt(temp, expected=digest_of(b"xyz"))
    assert not temp.exists()
    assert store.digests() == []


def test_adopt_of_known_content_drops_the_copy(store: ContentStore) -> None:
    digest = store.write(b"known")
    temp = store.temp_file()
    temp.write_bytes(b"known")
    assert store.adopt(temp) == (digest, 5)
    assert not temp.exists()


def test_read_verifies_the_bytes(store: ContentStore) -> None:
    digest = store.write(b"original")
    path = store.path(digest)
    path.chmod(0o644)
    path.write_bytes(b"tampered")
    with pytest.raises(DigestMismatch):
        store.read(digest)


def test_missing_blobs_are_not_found(store: ContentStore) -> None:
    missing = digest_of(b"never written")
    assert not store.has(missing)
    for call in (store.read, store.open, store.size):
        with pytest.raises(NotFound) as info:
            call(missing)
        assert str(info.value) == f"content digest {missing}: not found"


def test_delete(store: ContentStore) -> None:
    digest = store.write(b"doomed")
    assert store.delete(digest) is True
    assert not store.has(digest)
    assert store.delete(digest) is False


@pytest.mark.parametrize(
    ("digest", "message"),
    [
        ("sha256:../../../../etc/passwd", "invalid checksum digest length"),
        ("sha256:" + "../" * 21 + "a", "invalid checksum digest format"),
        ("sha256:" + "A" * 64, "invalid checksum digest format"),
        ("sha256:" + "a" * 63, "invalid checksum digest length"),
        ("sha256:" + "a" * 63 + "\n", "invalid checksum digest format"),
        ("sha256:" + "a" * 64 + "/", "invalid checksum digest length"),
        ("md5:" + "a" * 32, "unsupported digest algorithm"),
        ("a" * 64, "unsupported digest algorithm"),
        ("", "unsupported digest algorithm"),
    ],
)
def test_malformed_digests_never_become_paths(
    digest: str, message: str, store: ContentStore
) -> None:
    for call in (store.path, store.has, store.delete, store.read):
        with pytest.raises(InvalidParameter) as info:
            call(digest)
        assert str(info.value) == message
    with pytest.raises(InvalidParameter):
        store.write(b"x", expected=digest)


def test_other_known_algorithms_are_not_stored(store: ContentStore) -> None:
    with pytest.raises(InvalidParameter, match="unsupported digest algorithm: sha512"):
        store.path("sha512:" + "a" * 128)


def test_clean_ingest_removes_leftovers_only(store: ContentStore) -> None:
    digest = store.write(b"kept")
    for name in ("tmp1", "tmp2.layer"):
        (store.ingest_dir / name).write_bytes(b"partial")
    store.clean_ingest()
    assert list(store.ingest_dir.iterdir()) == []
    assert store.read(digest) == b"kept"


def test_reopening_keeps_blobs(store: ContentStore) -> None:
    digest = store.write(b"durable")
    assert ContentStore(store.root).read(digest) == b"durable"
