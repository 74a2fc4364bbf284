"""`docker save`: which images and tags the names select (moby's rules), and the archive
Docker 25+ writes for them, streamed blob by blob from the content store.

The archive is an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/`) plus the
legacy `manifest.json` and `repositories`. Blobs go out exactly as stored: the config's
bytes are the image id, and a pulled image keeps its compressed layers and its
registry's manifest, so a save and load gives back the same ids and manifest digests.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from essaim.errors import InvalidParameter, NotFound
from essaim.image import oci, oci_layout, reference
from essaim.image.content import ContentStore
from essaim.image.reference import Reference
from essaim.image.service import ImageService
from essaim.model.image import Image
from essaim.model.rfc3339 import unix_time

CHUNK = 1 << 20
_BLOCK = 512
MANIFEST_FILE = "manifest.json"
REPOSITORIES_FILE = "repositories"


@dataclass(slots=True)
class SaveItem:
    """One image of the archive and the tags it is saved under (none: saved by id)."""

    image: Image
    tags: list[Reference] = field(default_factory=list)


async def select_images(images: ImageService, names: Sequence[str]) -> list[SaveItem]:
    """moby's parseNames: an id (or id prefix) saves the image without tags, `name:tag`
    that tag, `name@digest` the image without tags, and a bare repository name every
    tag of that repository (or, if it has none, the image it names as an id prefix).
    Images in the order first named."""
    if not names:
        raise InvalidParameter("no image names provided")  # what moby's CLI path implies
    items: dict[str, SaveItem] = {}

    def add(image: Image, tag: Reference | None) -> None:
        item = items.setdefault(image.id, SaveItem(image))
        if tag is not None and tag.normalized() not in {t.normalized() for t in item.tags}:
            item.tags.append(tag)

    every = await images.list()
    for name in names:
        if reference.is_image_id(name):
            add(await images.get(name), None)
            continue
        ref = reference.parse(name)
        if ref.familiar_name() == "sha256":  # `sha256:<prefix>`: an id prefix
            add(await images.get(name), None)
            continue
        if ref.tag is None and ref.digest is None:
            tagged = _repository_tags(every, ref)
            for image, tag in tagged:
                add(image, tag)
            if not tagged:
                add(await _by_id_prefix(images, name), None)
            continue
        try:
            image = await images.get(ref.normalized())
        except NotFound:
            raise NotFound("reference does not exist") from None
        add(image, ref if ref.digest is None else None)
    return list(items.values())


def _repository_tags(
    every: Sequence[Image], repository: Reference
) -> list[tuple[Image, Reference]]:
    out = []
    for image in every:
        for name in image.repo_tags:
            tag = reference.parse(name)
            if tag.name == repository.name:
                out.append((image, tag))
    return sorted(out, key=lambda pair: pair[1].normalized())


async def _by_id_prefix(images: ImageService, name: str) -> Image:
    image = images.get_cached(name)
    if image is None or not image.id.removeprefix("sha256:").startswith(name):
        raise NotFound(f"No such image: {name}")
    return image


@dataclass(frozen=True, slots=True)
class ArchiveFile:
    """One entry of the archive: a directory, a small file held in memory, or a blob
    read from the content store."""

    name: str
    size: int = 0
    mtime: int = 0
    data: bytes | None = None
    digest: str | None = None

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")


@dataclass(frozen=True, slots=True)
class StoredImage:
    """What the archive needs of an image beyond its record: its manifest's media
    type and size, and the size of each blob."""

    manifest_media_type: str
    blob_sizes: dict[str, int]


def describe(content: ContentStore, image: Image) -> StoredImage:
    """Read the manifest and blob sizes of `image` (blocking); NotFound if a blob went."""
    manifest = oci.parse_manifest(content.read(image.manifest_digest))
    sizes = {
        digest: content.size(digest)
        for digest in (image.id, image.manifest_digest, *image.layer_digests)
    }
    return StoredImage(manifest.media_type, sizes)


def plan_archive(items: Sequence[SaveItem], stored: dict[str, StoredImage]) -> list[ArchiveFile]:
    """Every entry of the archive, in the order Docker's tar of its directory has them
    (sorted paths). Each blob appears once, however many images share it."""
    blobs: dict[str, ArchiveFile] = {}
    index_entries: list[tuple[oci.Descriptor, dict[str, str]]] = []
    legacy_manifest: list[dict[str, object]] = []
    repositories: dict[str, dict[str, str]] = {}
    for item in items:
        image = item.image
        facts = stored[image.id]
        created = max(unix_time(image.created), 0)
        for digest in (image.id, *image.layer_digests):
            path = oci_layout.blob_path(digest)
            size = facts.blob_sizes[digest]
            blobs.setdefault(path, ArchiveFile(path, size, created, None, digest))
        path = oci_layout.blob_path(image.manifest_digest)
        size = facts.blob_sizes[image.manifest_digest]
        blobs.setdefault(path, ArchiveFile(path, size, 0, None, image.manifest_digest))
        descriptor = oci.Descriptor(facts.manifest_media_type, image.manifest_digest, size)
        for tag in item.tags:
            index_entries.append((descriptor, oci_layout.name_annotations(tag)))
            if image.layer_digests:
                top = image.layer_digests[-1].partition(":")[2]
                repositories.setdefault(tag.familiar_name(), {})[tag.tag or ""] = top
        if not item.tags:
            index_entries.append((descriptor, {}))
        legacy_manifest.append(
            {
                "Config": oci_layout.blob_path(image.id),
                "RepoTags": [tag.familiar() for tag in item.tags] or None,
                "Layers": [oci_layout.blob_path(d) for d in image.layer_digests],
            }
        )
    files = [ArchiveFile("blobs/"), ArchiveFile("blobs/sha256/")]
    files += sorted(blobs.values(), key=lambda f: f.name)
    files.append(_small(oci_layout.INDEX_FILE, oci_layout.encode_index(index_entries)))
    files.append(_small(MANIFEST_FILE, _go_json(legacy_manifest)))
    files.append(_small(oci_layout.LAYOUT_FILE, oci_layout.LAYOUT_BYTES))
    if repositories:
        files.append(_small(REPOSITORIES_FILE, _go_json(repositories, sort_keys=True)))
    return files


def _small(name: str, data: bytes) -> ArchiveFile:
    return ArchiveFile(name, len(data), 0, data)


def _go_json(value: object, *, sort_keys: bool = False) -> bytes:
    """What Go's json.Encoder writes: compact, then a newline; Go sorts the keys of
    maps (not of structs, whose fields keep their order)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=sort_keys).encode() + b"\n"


def tar_header(entry: ArchiveFile) -> bytes:
    info = tarfile.TarInfo(entry.name)
    info.mtime = entry.mtime
    if entry.is_dir:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.size = entry.size
        info.mode = 0o644
    return info.tobuf(format=tarfile.PAX_FORMAT)


def padding(size: int) -> bytes:
    return b"\0" * (-size % _BLOCK)


def open_blobs(content: ContentStore, files: Sequence[ArchiveFile]) -> dict[str, BinaryIO]:
    """Every blob of the archive, opened before the first byte goes out: an image
    removed meanwhile fails the request cleanly, and an open blob outlives an `rmi`."""
    opened: dict[str, BinaryIO] = {}
    try:
        for entry in files:
            if entry.digest is not None and entry.digest not in opened:
                opened[entry.digest] = content.open(entry.digest)
    except BaseException:
        for handle in opened.values():
            handle.close()
        raise
    return opened


async def stream_archive(
    images: ImageService, files: Sequence[ArchiveFile], opened: dict[str, BinaryIO]
) -> AsyncIterator[bytes]:
    """The tar of `files`, header by header and chunk by chunk, blobs read in the
    executor; the blobs' files are closed at the end, however it ends."""
    try:
        for entry in files:
            yield tar_header(entry)
            if entry.data is not None:
                yield entry.data + padding(entry.size)
                continue
            if entry.digest is None:
                continue
            handle = opened[entry.digest]
            await images.run_blocking(handle.seek, 0)
            left = entry.size
            while left > 0:
                chunk = await images.run_blocking(handle.read, min(CHUNK, left))
                if not chunk:
                    raise OSError(f"blob {entry.digest} is shorter than its size")
                left -= len(chunk)
                yield chunk
            yield padding(entry.size)
        yield b"\0" * (2 * _BLOCK)  # the end-of-archive marker, as Go writes it
    finally:
        for handle in opened.values():
            await images.run_blocking(handle.close)
