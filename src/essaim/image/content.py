"""The content store: blobs addressed by their sha256 digest under `content/blobs/sha256/`.

Writes go to `content/ingest/` first and are fsynced, verified and renamed into place,
so a blob that exists is complete. Every method blocks: call them from the executor.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from essaim.errors import InvalidParameter, NotFound
from essaim.image.reference import validate_digest

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

CHUNK = 1 << 20


class DigestMismatch(InvalidParameter):
    """The bytes written do not hash to the digest the writer promised."""


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class HashingReader(io.RawIOBase):
    """A stream that hashes what is read through it; `check` reads what the consumer
    left (a tar's trailing padding is part of a layer's digest) and compares."""

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._hasher = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        data = self._source.read(len(view))
        self._hasher.update(data)
        view[: len(data)] = data
        return len(data)

    def check(self, expected: str) -> None:
        while chunk := self._source.read(CHUNK):
            self._hasher.update(chunk)
        actual = "sha256:" + self._hasher.hexdigest()
        if actual != expected:
            raise DigestMismatch(
                f"layer content digest mismatch: expected {expected}, got {actual}"
            )


class ContentStore:
    def __init__(self, root: Path) -> None:
        self.root = root  # <data_root>/content
        self.blobs = root / "blobs" / "sha256"
        self.ingest_dir = root / "ingest"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.ingest_dir.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        validate_digest(digest)
        algorithm, _, hex_ = digest.partition(":")
        if algorithm != "sha256":
            raise InvalidParameter(f"unsupported digest algorithm: {algorithm}")
        return self.blobs / hex_

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"content digest {digest}: not found") from None

    def read(self, digest: str) -> bytes:
        """A small blob (config, manifest), re-verified: a corrupted file must not
        silently become a different image."""
        try:
            data = self.path(digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"content digest {digest}: not found") from None
        actual = sha256_digest(data)
        if actual != digest:
            raise DigestMismatch(f"digest mismatch: expected {digest}, got {actual}")
        return data

    def open(self, digest: str) -> BinaryIO:
        try:
            return self.path(digest).open("rb")
        except FileNotFoundError:
            raise NotFound(f"content digest {digest}: not found") from None

    def temp_file(self, suffix: str = "") -> Path:
        """A fresh path in the ingest directory (same filesystem as the blobs)."""
        fd, name = tempfile.mkstemp(dir=self.ingest_dir, suffix=suffix)
        os.close(fd)
        return Path(name)

    def write(self, data: bytes, expected: str | None = None) -> str:
        return self.write_chunks([data], expected)[0]

    def write_chunks(self, chunks: Iterable[bytes], expected: str | None = None) -> tuple[str, int]:
        """Hash and store `chunks`; (digest, size). Raises DigestMismatch if `expected`
        is given and differs; nothing is stored then."""
        if expected is not None:
            validate_digest(expected)
        hasher = hashlib.sha256()
        size = 0
        fd, name = tempfile.mkstemp(dir=self.ingest_dir)
        temp = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    hasher.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = "sha256:" + hasher.hexdigest()
            if expected is not None and digest != expected:
                raise DigestMismatch(f"digest mismatch: expected {expected}, got {digest}")
            self._commit(temp, digest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        return digest, size

    def write_stream(self, source: BinaryIO, expected: str | None = None) -> tuple[str, int]:
        return self.write_chunks(iter(lambda: source.read(CHUNK), b""), expected)

    def adopt(self, temp: Path, expected: str | None = None) -> tuple[str, int]:
        """Move a finished file from the ingest directory into the store after hashing
        it; saves a copy when the caller already wrote the bytes (import, commit)."""
        hasher = hashlib.sha256()
        size = 0
        with temp.open("rb") as src:
            while chunk := src.read(CHUNK):
                hasher.update(chunk)
                size += len(chunk)
            os.fsync(src.fileno())
        digest = "sha256:" + hasher.hexdigest()
        if expected is not None and digest != expected:
            temp.unlink()
            raise DigestMismatch(f"digest mismatch: expected {expected}, got {digest}")
        self._commit(temp, digest)
        return digest, size

    def _commit(self, temp: Path, digest: str) -> None:
        target = self.path(digest)
        try:
            existing = target.stat().st_size
        except FileNotFoundError:
            existing = -1
        if existing == temp.stat().st_size:
            # Same digest, same bytes: the existing blob is as good as ours.
            temp.unlink()
            return
        # Absent, or damaged (truncated by a disk fault): ours, verified, takes its place.
        temp.chmod(0o444)
        os.rename(temp, target)
        fsync_dir(self.blobs)

    def delete(self, digest: str) -> bool:
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            return False
        return True

    def digests(self) -> list[str]:
        return ["sha256:" + p.name for p in self.blobs.iterdir() if not p.name.startswith(".")]

    def clean_ingest(self) -> None:
        """Leftovers of writes interrupted by a crash; only safe before any new write."""
        for leftover in self.ingest_dir.iterdir():
            if leftover.is_dir() and not leftover.is_symlink():
                # An archive being loaded is unpacked in a directory here.
                shutil.rmtree(leftover, ignore_errors=True)
                continue
            with contextlib.suppress(OSError):
                leftover.unlink()
