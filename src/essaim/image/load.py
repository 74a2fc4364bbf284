"""Reading an untrusted `docker load` archive: the docker-archive of any age (with its
manifest.json) or a bare OCI image layout, unpacked in a private directory, every path
it names confined to it, every blob verified and moved into the content store.

Blocking (tar, hashing, renames): the loader runs it in the image executor. Nothing here
makes an image; `load_archive` in `archive_load` does, from what this returns.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from essaim.errors import InvalidParameter
from essaim.image import archive, oci, oci_layout, reference
from essaim.image.content import ContentStore, DigestMismatch
from essaim.image.oci_layout import IndexEntry
from essaim.image.platforms import Platform, host
from essaim.image.reference import Reference
from essaim.image.scoped_paths import clean_parts, follow_in_scope

MANIFEST_FILE = "manifest.json"
# manifest.json, index.json, manifests and configs are read whole: bound them.
MAX_METADATA = 16 << 20
_MAX_NESTING = 4
# A layer file's compression (by its magic) as the media type it is stored under.
_LAYER_TYPES = {"gzip": oci.OCI_LAYER_GZIP, "zstd": oci.OCI_LAYER_ZSTD, "none": oci.OCI_LAYER}
_BLOB_PATH = re.compile(r"blobs/sha256/([a-f0-9]{64})")


@dataclass(slots=True)
class LoadItem:
    """One image the archive holds: its config and layer blobs (stored), its manifest
    ("" when the archive has none for it) and the names it brings."""

    config_digest: str
    layers: list[oci.Descriptor]
    manifest_digest: str = ""
    refs: list[Reference] = field(default_factory=list)


class StagedArchive:
    """The archive unpacked in `root` (a private directory in the content store's ingest
    area, so blobs move into the store by rename). `new_blobs` lists what this load
    added to the store, for the caller to take back if the load fails."""

    def __init__(self, root: Path, content: ContentStore) -> None:
        self.root = root
        self.content = content
        self.new_blobs: list[str] = []
        self._present: set[str] = set()
        self._adopted: dict[str, str] = {}  # real path -> digest

    # -- the archive's files

    def unpack(self, body: Path) -> None:
        """Unpack the (maybe compressed) archive `body`; no entry lands outside `root`,
        device nodes and ownership are ignored."""
        self._present = set(self.content.digests())
        with body.open("rb") as raw, archive.open_decompressed(raw) as stream:
            archive.unpack(stream, self.root, whiteouts=False, same_owner=False)

    def locate(self, name: str) -> Path:
        """Where a path of the archive's metadata leads, every symlink followed inside
        the archive (`..` and absolute targets stop at its root)."""
        parts = follow_in_scope(
            clean_parts(name), lambda p: archive.readlink_in(os.fspath(self.root), p)
        )
        return self.root.joinpath(*parts)

    def resolve(self, name: str) -> Path | None:
        """The regular file `name` leads to; None if there is none."""
        path = self.locate(name)
        try:
            st = path.lstat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISREG(st.st_mode):
            raise InvalidParameter(f"invalid archive: {name} is not a regular file")
        return path

    def require(self, name: str) -> Path:
        path = self.resolve(name)
        if path is None:
            raise InvalidParameter(f"invalid archive: {name}: no such file in the archive")
        return path

    def read_small(self, name: str, expected: str | None = None) -> bytes:
        """A metadata file, whole; checked against `expected` (a digest) if given."""
        path = self.require(name)
        if path.stat().st_size > MAX_METADATA:
            raise InvalidParameter(f"invalid archive: {name} is too large")
        data = path.read_bytes()
        if expected is not None:
            actual = "sha256:" + hashlib.sha256(data).hexdigest()
            if actual != expected:
                raise DigestMismatch(f"digest mismatch: expected {expected}, got {actual}")
        return data

    def adopt(self, name: str, expected: str | None = None, size: int | None = None) -> str:
        """Move the file `name` into the content store once (hashed, checked against
        `expected` and `size` if given); its digest."""
        # By where it leads: two names of one file (old archives link shared layers)
        # are one blob, moved into the store the first time.
        real = os.fspath(self.locate(name))
        digest = self._adopted.get(real)
        if digest is None:
            path = self.require(name)
            if expected is not None and self.content.has(expected):
                digest = expected  # stored already: the archive's copy is not needed
            else:
                digest, _ = self.content.adopt(path, expected)
                self._note(digest)
            self._adopted[real] = digest
        if expected is not None and digest != expected:
            raise DigestMismatch(f"digest mismatch: expected {expected}, got {digest}")
        if size is not None and self.content.size(digest) != size:
            raise InvalidParameter(
                f"invalid archive: blob {digest} has {self.content.size(digest)} bytes, not {size}"
            )
        return digest

    def store(self, data: bytes) -> str:
        """Small verified bytes (a manifest) into the content store; their digest."""
        digest = self.content.write(data)
        self._note(digest)
        return digest

    def _note(self, digest: str) -> None:
        if digest not in self._present and digest not in self.new_blobs:
            self.new_blobs.append(digest)

    # -- the formats

    def read(self) -> list[LoadItem]:
        """Every image of the unpacked archive, checked; layers stored, not unpacked."""
        if self.resolve(MANIFEST_FILE) is not None:
            return self._docker_archive()
        if self.resolve(oci_layout.INDEX_FILE) is not None:
            return self._oci_layout()
        raise InvalidParameter(
            "invalid archive: no manifest.json or index.json found (not a docker save or "
            "OCI layout archive)"
        )

    def _docker_archive(self) -> list[LoadItem]:
        doc = _json(self.read_small(MANIFEST_FILE), MANIFEST_FILE)
        if not isinstance(doc, list):
            raise InvalidParameter("invalid archive: manifest.json is not a list")
        known = self._index_manifests()
        items: dict[str, LoadItem] = {}
        for entry in doc:
            if not isinstance(entry, dict):
                raise InvalidParameter("invalid archive: manifest.json entry is not an object")
            config_name = entry.get("Config")
            layer_names = entry.get("Layers") or []
            tags = entry.get("RepoTags") or []
            if not isinstance(config_name, str) or not config_name:
                raise InvalidParameter("invalid archive: manifest.json entry without Config")
            if not _strings(layer_names) or not _strings(tags):
                raise InvalidParameter(
                    "invalid archive: Layers and RepoTags must be lists of strings"
                )
            refs = [_repo_tag(tag) for tag in tags]
            config_digest = self.adopt(config_name, _named_digest(config_name))
            diff_ids = self._diff_ids(config_digest)
            if len(layer_names) != len(diff_ids):
                raise InvalidParameter(
                    f"invalid manifest, layers length mismatch: expected {len(diff_ids)}, "
                    f"got {len(layer_names)}"
                )
            layers = [
                self._archive_layer(name, diff_id)
                for name, diff_id in zip(layer_names, diff_ids, strict=True)
            ]
            manifest_digest = known.get((config_digest, tuple(d.digest for d in layers)), "")
            if manifest_digest:
                manifest_digest = self.store(self.read_small(
                    oci_layout.blob_path(manifest_digest), manifest_digest
                ))  # fmt: skip
            _merge(items, LoadItem(config_digest, layers, manifest_digest, refs))
        return list(items.values())

    def _index_manifests(self) -> dict[tuple[str, tuple[str, ...]], str]:
        """The manifests index.json lists next to a Docker 25+ manifest.json, by config
        and layers, so a loaded image keeps its manifest (and digest). Best effort: a
        docker-archive needs no index, and moby's loader reads none."""
        out: dict[tuple[str, tuple[str, ...]], str] = {}
        try:
            if self.resolve(oci_layout.INDEX_FILE) is None:
                return out
            for entry in oci_layout.parse_index(self.read_small(oci_layout.INDEX_FILE)):
                if entry.is_index:
                    continue
                digest = entry.descriptor.digest
                manifest = oci.parse_manifest(self.read_small(oci_layout.blob_path(digest), digest))
                key = (manifest.config.digest, tuple(d.digest for d in manifest.layers))
                out[key] = digest
        except InvalidParameter:
            return {}
        return out

    def _diff_ids(self, config_digest: str) -> list[str]:
        return oci.decode_config(self.content.read(config_digest), config_digest).diff_ids

    def _archive_layer(self, name: str, diff_id: str) -> oci.Descriptor:
        """A layer file of a docker-archive: stored as it is when uncompressed, gzip or
        zstd (its media type from its magic), decompressed into a blob of its own for
        the compressions OCI has no media type for (bzip2, xz)."""
        digest = self.adopt(name, _named_digest(name))
        with self.content.open(digest) as raw:
            kind = archive.sniff_compression(raw.read(8))
        if kind in ("bzip2", "xz"):
            with self.content.open(digest) as raw, archive.open_decompressed(raw) as stream:
                digest, size = self.content.write_stream(stream, diff_id)
            self._note(digest)
            return oci.Descriptor(oci.OCI_LAYER, digest, size)
        if kind == "none" and digest != diff_id:
            # An uncompressed layer is its own diff id: checked here even when its
            # snapshot exists and will not be unpacked again.
            raise DigestMismatch(f"layer content digest mismatch: expected {diff_id}, got {digest}")
        return oci.Descriptor(_LAYER_TYPES[kind], digest, self.content.size(digest))

    def _oci_layout(self) -> list[LoadItem]:
        entries = oci_layout.parse_index(self.read_small(oci_layout.INDEX_FILE))
        wanted = host()
        chosen: list[tuple[IndexEntry, Reference | None]] = []
        for entry in entries:
            name = oci_layout.image_name(entry.annotations)
            if entry.is_index:
                chosen.append((self._for_platform(entry, wanted, 0), name))
            elif oci_layout.platform_matches(wanted, entry.platform):
                chosen.append((entry, name))
        if not chosen:
            raise InvalidParameter(
                f"no matching manifest for {wanted} in the manifest list entries"
            )
        items: dict[str, LoadItem] = {}
        for entry, name in chosen:
            _merge(items, self._oci_image(entry.descriptor, name))
        return list(items.values())

    def _for_platform(self, entry: IndexEntry, wanted: Platform, depth: int) -> IndexEntry:
        if depth > _MAX_NESTING:
            raise InvalidParameter("invalid archive: indexes nested too deep")
        digest = entry.descriptor.digest
        nested = oci_layout.parse_index(self.read_small(oci_layout.blob_path(digest), digest))
        try:
            return oci_layout.pick_platform(nested, wanted)
        except InvalidParameter:
            for inner in nested:
                if inner.is_index:
                    return self._for_platform(inner, wanted, depth + 1)
            raise

    def _oci_image(self, descriptor: oci.Descriptor, name: Reference | None) -> LoadItem:
        digest = descriptor.digest
        raw = self.read_small(oci_layout.blob_path(digest), digest)
        if len(raw) != descriptor.size:
            raise InvalidParameter(f"invalid archive: manifest {digest} size mismatch")
        manifest = oci.parse_manifest(raw)
        config = manifest.config
        config_digest = self.adopt(oci_layout.blob_path(config.digest), config.digest, config.size)
        diff_ids = self._diff_ids(config_digest)
        if len(manifest.layers) != len(diff_ids):
            raise InvalidParameter(
                f"invalid manifest, layers length mismatch: expected {len(diff_ids)}, "
                f"got {len(manifest.layers)}"
            )
        for layer in manifest.layers:
            oci.oci_layer_type(layer.media_type)  # foreign layers have no blob to load
            self.adopt(oci_layout.blob_path(layer.digest), layer.digest, layer.size)
        return LoadItem(
            config_digest, list(manifest.layers), self.store(raw), [name] if name else []
        )


def _merge(items: dict[str, LoadItem], item: LoadItem) -> None:
    """Entries naming one image twice become one image with every name."""
    same = items.get(item.config_digest)
    if same is None:
        items[item.config_digest] = item
        return
    for ref in item.refs:
        if ref not in same.refs:
            same.refs.append(ref)
    same.manifest_digest = same.manifest_digest or item.manifest_digest


def _json(data: bytes, name: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise InvalidParameter(f"invalid archive: {name}: {exc}") from None


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _repo_tag(text: str) -> Reference:
    """A RepoTags entry: a name with a tag (moby refuses anything else)."""
    ref = reference.parse(text)
    if ref.tag is None or ref.digest is not None:
        raise InvalidParameter(f"invalid tag {json.dumps(text)}")
    return ref


def _named_digest(name: str) -> str | None:
    """The digest a `blobs/sha256/<hex>` path promises; None for other names."""
    m = _BLOB_PATH.fullmatch("/".join(clean_parts(name)))
    return f"sha256:{m.group(1)}" if m else None


def make_staging(content: ContentStore) -> Path:
    """A private directory in the ingest area (cleaned at start-up after a crash)."""
    return Path(tempfile.mkdtemp(prefix="load-", dir=content.ingest_dir))


def remove_staging(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
