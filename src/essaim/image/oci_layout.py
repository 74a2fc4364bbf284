"""The OCI image layout as `docker save` writes it and `docker load` reads it: the
`oci-layout` marker, `index.json` with its name annotations, and the host's platform.

Pure: bytes in, bytes out; the archive reader and writer do the I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from essaim.errors import InvalidParameter
from essaim.image import oci, platforms, reference
from essaim.image.platforms import Platform
from essaim.image.reference import Reference

LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
# Byte for byte what moby's save writes (a literal, hence the space).
LAYOUT_BYTES = b'{"imageLayoutVersion": "1.0.0"}'
# containerd's name for the image a manifest is (a full, normalised reference), and the
# OCI one (a tag in Docker's archives, anything in others').
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"


def blob_path(digest: str) -> str:
    """Where the layout keeps a blob: `blobs/<algorithm>/<hex>`."""
    algorithm, _, hex_ = digest.partition(":")
    return f"blobs/{algorithm}/{hex_}"


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One descriptor of an index: a manifest or a nested index, with its annotations
    and the platform it says it is for (None: not said)."""

    descriptor: oci.Descriptor
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None

    @property
    def is_index(self) -> bool:
        return self.descriptor.media_type in oci.INDEX_TYPES


def encode_index(entries: Sequence[tuple[oci.Descriptor, Mapping[str, str]]]) -> bytes:
    """index.json as Docker 25+ writes it: one descriptor per name (or one, unnamed,
    for an image saved by id), annotations with sorted keys as Go writes maps."""
    manifests: list[dict[str, Any]] = []
    for descriptor, names in entries:
        item = descriptor.encode()
        if names:
            item["annotations"] = dict(sorted(names.items()))
        manifests.append(item)
    doc = {"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": manifests}
    return json.dumps(doc, separators=(",", ":")).encode()


def name_annotations(ref: Reference) -> dict[str, str]:
    """The annotations Docker gives a saved manifest for the tag `ref`."""
    return {ANNOTATION_IMAGE_NAME: ref.normalized(), ANNOTATION_REF_NAME: ref.tag or ""}


def _platform(raw: Any) -> Platform | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidParameter("invalid index: platform is not an object")
    return platforms.normalize(
        str(raw.get("os") or ""), str(raw.get("architecture") or ""), str(raw.get("variant") or "")
    )


def parse_index(raw: bytes) -> list[IndexEntry]:
    """The manifests and nested indexes an index (or a layout's index.json) lists;
    other descriptors (attestations' blobs, ...) are not images and are left out."""
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise InvalidParameter(f"invalid index: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schemaVersion") != 2:
        raise InvalidParameter("invalid index: unsupported schema version")
    media_type = doc.get("mediaType") or oci.OCI_INDEX
    if media_type not in oci.INDEX_TYPES:
        raise InvalidParameter(f"invalid index: unsupported media type {media_type}")
    manifests = doc.get("manifests") or []
    if not isinstance(manifests, list):
        raise InvalidParameter("invalid index: manifests must be a list")
    out: list[IndexEntry] = []
    for item in manifests:
        if not isinstance(item, dict):
            raise InvalidParameter("invalid index: a manifest is not a descriptor")
        if item.get("mediaType") not in oci.MANIFEST_TYPES | oci.INDEX_TYPES:
            continue
        descriptor = oci.parse_descriptor(item, oci.MANIFEST_TYPES | oci.INDEX_TYPES, "manifest")
        annotations = item.get("annotations") or {}
        if not isinstance(annotations, dict):
            raise InvalidParameter("invalid index: annotations must be an object")
        out.append(
            IndexEntry(
                descriptor,
                {str(k): str(v) for k, v in annotations.items()},
                _platform(item.get("platform")),
            )
        )
    return out


def platform_matches(wanted: Platform, offered: Platform | None) -> bool:
    """Whether an image for `offered` runs on `wanted` (the host); no platform at all
    is taken as a match, as single-platform layouts often say none."""
    return offered is None or platforms.matches(wanted, offered)


def pick_platform(entries: Sequence[IndexEntry], host: Platform) -> IndexEntry:
    """The entry of a multi-platform index for the host: an exact variant first; Docker's
    error when none fits."""
    fitting = [e for e in entries if not e.is_index and platform_matches(host, e.platform)]
    exact = [e for e in fitting if e.platform is not None and e.platform.variant == host.variant]
    if exact or fitting:
        return (exact or fitting)[0]
    raise InvalidParameter(f"no matching manifest for {host} in the manifest list entries")


def image_name(annotations: Mapping[str, str]) -> Reference | None:
    """The name a loaded manifest gets, as moby's containerd store decides it: the
    containerd annotation, else the OCI ref name, kept when it parses as a reference
    (a bare `latest` reads as `latest:latest`, as in Docker); None for no name."""
    name = annotations.get(ANNOTATION_IMAGE_NAME) or annotations.get(ANNOTATION_REF_NAME)
    if not name:
        return None
    try:
        ref = reference.parse(name)
    except InvalidParameter:
        return None
    if ref.digest is not None:
        return None  # a digest is not a name to give an image
    return ref.with_default_tag()
