"""The registry's filesystem storage: blobs by digest, and per repository the links that
make a blob, a manifest revision, a tag or a referrer part of it.

Layout under the root (the reference registry's, without its `docker/registry/v2`):
`blobs/<alg>/<hh>/<hex>/data`, `repositories/<name>/_layers/<alg>/<hex>/link`,
`_manifests/revisions/<alg>/<hex>/{link,mediatype}`, `_manifests/tags/<tag>/current/link`,
`_manifests/referrers/<alg>/<subject hex>/<alg>/<hex>/link`, `_uploads/<id>/data`.
Every file is written to a temp name, fsynced and renamed, and a link is written only
after what it names is durable, so a crash never leaves a corrupt blob or a link to a
missing one. Every method blocks: call them from an executor.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from essaim.image.content import fsync_dir

_REPOSITORY_DIRS = ("_manifests", "_layers", "_uploads")


def write_atomic(path: Path, data: bytes) -> None:
    """`path` holds `data` whole or not at all, even across a crash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{uuid.uuid4().hex}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _read_link(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except (FileNotFoundError, NotADirectoryError):
        return None


def _split(digest: str) -> tuple[str, str]:
    algorithm, _, hex_ = digest.partition(":")
    return algorithm, hex_


class RegistryStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.repositories = root / "repositories"

    def prepare(self) -> None:
        for path in (self.blobs, self.repositories):
            path.mkdir(parents=True, exist_ok=True)

    # Blobs, shared by every repository.

    def blob_path(self, digest: str) -> Path:
        algorithm, hex_ = _split(digest)
        return self.blobs / algorithm / hex_[:2] / hex_ / "data"

    def blob_size(self, digest: str) -> int | None:
        try:
            return self.blob_path(digest).stat().st_size
        except (FileNotFoundError, NotADirectoryError):
            return None

    def commit_blob(self, source: Path, digest: str) -> None:
        """Move a verified, fsynced upload into place (a blob already there stays)."""
        target = self.blob_path(digest)
        if target.is_file():
            source.unlink(missing_ok=True)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        fsync_dir(target.parent)

    def put_blob(self, digest: str, data: bytes) -> None:
        target = self.blob_path(digest)
        if not target.is_file():
            write_atomic(target, data)

    def read_blob(self, digest: str) -> bytes | None:
        try:
            return self.blob_path(digest).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def all_blobs(self) -> Iterator[str]:
        for algorithm_dir in sorted(self.blobs.glob("*")):
            for data in sorted(algorithm_dir.glob("*/*/data")):
                yield f"{algorithm_dir.name}:{data.parent.name}"

    def remove_blob(self, digest: str) -> None:
        directory = self.blob_path(digest).parent
        shutil.rmtree(directory, ignore_errors=True)
        with contextlib.suppress(OSError):
            directory.parent.rmdir()  # the two-hex-digit fan-out dir, once empty

    # Repositories.

    def repo(self, name: str) -> Path:
        return self.repositories / name

    def repo_exists(self, name: str) -> bool:
        return any((self.repo(name) / d).is_dir() for d in ("_manifests", "_layers"))

    def repository_names(self) -> list[str]:
        """Every repository with a manifest or a layer, in lexical order."""
        names: list[str] = []
        if not self.repositories.is_dir():
            return names
        for dirpath, dirnames, _ in os.walk(self.repositories):
            here = Path(dirpath)
            if any(d in dirnames for d in ("_manifests", "_layers")):
                names.append(here.relative_to(self.repositories).as_posix())
            # Repository names never start with `_`: those dirs are a repository's own.
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("_"))
        return sorted(names)

    def _layer_link(self, name: str, digest: str) -> Path:
        algorithm, hex_ = _split(digest)
        return self.repo(name) / "_layers" / algorithm / hex_ / "link"

    def link_blob(self, name: str, digest: str) -> None:
        link = self._layer_link(name, digest)
        if _read_link(link) != digest:
            write_atomic(link, digest.encode())

    def blob_linked(self, name: str, digest: str) -> bool:
        """The blob is part of the repository and its data exists."""
        return (
            _read_link(self._layer_link(name, digest)) == digest
            and self.blob_size(digest) is not None
        )

    def unlink_blob(self, name: str, digest: str) -> bool:
        link = self._layer_link(name, digest)
        if _read_link(link) != digest:
            return False
        shutil.rmtree(link.parent)
        return True

    def layer_links(self, name: str) -> list[str]:
        base = self.repo(name) / "_layers"
        return [f"{path.parent.parent.name}:{path.parent.name}" for path in base.glob("*/*/link")]

    # Manifests, tags, referrers.

    def _revision(self, name: str, digest: str) -> Path:
        algorithm, hex_ = _split(digest)
        return self.repo(name) / "_manifests" / "revisions" / algorithm / hex_

    def _tag_link(self, name: str, tag: str) -> Path:
        return self.repo(name) / "_manifests" / "tags" / tag / "current" / "link"

    def _referrer_link(self, name: str, subject: str, digest: str) -> Path:
        s_alg, s_hex = _split(subject)
        algorithm, hex_ = _split(digest)
        base = self.repo(name) / "_manifests" / "referrers" / s_alg / s_hex
        return base / algorithm / hex_ / "link"

    def put_manifest(
        self,
        name: str,
        digest: str,
        body: bytes,
        media_type: str,
        tag: str | None,
        subject: str | None,
    ) -> None:
        """The manifest's bytes, then its revision, referrer and tag links, in that
        order: each link is written once what it names is on disk."""
        self.put_blob(digest, body)
        revision = self._revision(name, digest)
        if _read_link(revision / "mediatype") != media_type:
            write_atomic(revision / "mediatype", media_type.encode())
        if _read_link(revision / "link") != digest:
            write_atomic(revision / "link", digest.encode())
        if subject is not None:
            link = self._referrer_link(name, subject, digest)
            if _read_link(link) != digest:
                write_atomic(link, digest.encode())
        if tag is not None and _read_link(self._tag_link(name, tag)) != digest:
            write_atomic(self._tag_link(name, tag), digest.encode())

    def manifest(self, name: str, digest: str) -> tuple[bytes, str] | None:
        """(body, media type) of a manifest revision of the repository."""
        revision = self._revision(name, digest)
        if _read_link(revision / "link") != digest:
            return None
        body = self.read_blob(digest)
        media_type = _read_link(revision / "mediatype")
        if body is None or media_type is None:
            return None
        return body, media_type

    def has_manifest(self, name: str, digest: str) -> bool:
        revision = self._revision(name, digest)
        return _read_link(revision / "link") == digest and self.blob_size(digest) is not None

    def revisions(self, name: str) -> list[str]:
        base = self.repo(name) / "_manifests" / "revisions"
        return sorted(
            f"{path.parent.parent.name}:{path.parent.name}" for path in base.glob("*/*/link")
        )

    def remove_revision(self, name: str, digest: str) -> None:
        shutil.rmtree(self._revision(name, digest), ignore_errors=True)

    def resolve_tag(self, name: str, tag: str) -> str | None:
        return _read_link(self._tag_link(name, tag))

    def tags(self, name: str) -> dict[str, str]:
        """tag -> manifest digest, for every tag of the repository."""
        base = self.repo(name) / "_manifests" / "tags"
        out: dict[str, str] = {}
        if base.is_dir():
            for entry in base.iterdir():
                digest = _read_link(entry / "current" / "link")
                if digest is not None:
                    out[entry.name] = digest
        return out

    def delete_tag(self, name: str, tag: str) -> bool:
        directory = self.repo(name) / "_manifests" / "tags" / tag
        if not directory.is_dir():
            return False
        shutil.rmtree(directory)
        return True

    def delete_manifest(self, name: str, digest: str) -> bool:
        """The revision goes, with every tag that points at it and its referrer link."""
        if _read_link(self._revision(name, digest) / "link") != digest:
            return False
        for tag, target in self.tags(name).items():
            if target == digest:
                self.delete_tag(name, tag)
        algorithm, hex_ = _split(digest)
        referrers = self.repo(name) / "_manifests" / "referrers"
        for link in referrers.glob(f"*/*/{algorithm}/{hex_}/link"):
            shutil.rmtree(link.parent, ignore_errors=True)
        self.remove_revision(name, digest)
        return True

    def referrers(self, name: str, subject: str) -> list[str]:
        s_alg, s_hex = _split(subject)
        base = self.repo(name) / "_manifests" / "referrers" / s_alg / s_hex
        return sorted(
            f"{path.parent.parent.name}:{path.parent.name}" for path in base.glob("*/*/link")
        )

    # Uploads in progress.

    def upload_dir(self, name: str, upload_id: str) -> Path:
        return self.repo(name) / "_uploads" / upload_id

    def upload_sessions(self) -> Iterator[tuple[str, str]]:
        """(repository, upload id) of every session on disk, including those of a
        repository that has nothing else yet (its first push in progress)."""
        if not self.repositories.is_dir():
            return
        for dirpath, dirnames, _ in os.walk(self.repositories):
            here = Path(dirpath)
            if "_uploads" in dirnames:
                name = here.relative_to(self.repositories).as_posix()
                for entry in sorted((here / "_uploads").iterdir()):
                    if entry.is_dir():
                        yield name, entry.name
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("_"))

    def upload_started_at(self, name: str, upload_id: str) -> float | None:
        """When the session began (Unix seconds), from its `startedat` file, or the
        directory's mtime when a crash came before that file was written; None once gone."""
        directory = self.upload_dir(name, upload_id)
        try:
            return float((directory / "startedat").read_text())
        except (OSError, ValueError):
            pass
        try:
            return directory.stat().st_mtime
        except (FileNotFoundError, NotADirectoryError):
            return None

    def remove_upload(self, name: str, upload_id: str) -> None:
        shutil.rmtree(self.upload_dir(name, upload_id), ignore_errors=True)
