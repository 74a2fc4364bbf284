"""Manifests as a registry sees them: which kind a body is, which blobs and child
manifests it references (all must exist before it is stored), its subject and the
artifact type the referrers API reports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from essaim.image.oci import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST
from essaim.image.registry.errors import RegistryError
from essaim.image.registry.names import is_digest

MANIFEST_MEDIA_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)
INDEX_MEDIA_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MAX_MANIFEST_SIZE = 4 * 1024 * 1024  # the spec's suggested floor, distribution's limit


@dataclass(frozen=True, slots=True)
class BlobReference:
    digest: str
    foreign: bool  # has `urls`: a foreign layer the registry need not hold


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    media_type: str
    blobs: tuple[BlobReference, ...]  # config and layers
    children: tuple[str, ...]  # an index's manifests
    subject: str | None
    artifact_type: str | None
    annotations: dict[str, str] | None

    @property
    def references(self) -> tuple[str, ...]:
        """Every digest this manifest keeps alive (for garbage collection)."""
        subject = (self.subject,) if self.subject else ()
        return tuple(b.digest for b in self.blobs) + self.children + subject


def _invalid(reason: str) -> RegistryError:
    return RegistryError("MANIFEST_INVALID", detail=reason)


def _descriptor(raw: Any, what: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _invalid(f"{what} is not a descriptor")
    digest, size, media_type = raw.get("digest"), raw.get("size"), raw.get("mediaType")
    if not isinstance(digest, str) or not is_digest(digest):
        raise _invalid(f"{what} has an invalid digest {digest!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _invalid(f"{what} has an invalid size")
    if not isinstance(media_type, str) or not media_type:
        raise _invalid(f"{what} has no mediaType")
    return raw


def _media_type(doc: dict[str, Any], content_type: str | None) -> str:
    declared = doc.get("mediaType")
    header = (content_type or "").split(";")[0].strip() or None
    if declared is not None and not isinstance(declared, str):
        raise _invalid("mediaType is not a string")
    if declared and header and header in MANIFEST_MEDIA_TYPES and declared != header:
        raise _invalid(f"mediaType {declared} does not match Content-Type {header}")
    media_type = declared or header
    if media_type not in MANIFEST_MEDIA_TYPES:
        # OCI lets mediaType be absent: the shape tells an index from a manifest.
        media_type = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    return media_type


def parse(body: bytes, content_type: str | None) -> ParsedManifest:
    """The manifest, or MANIFEST_INVALID naming what is wrong with it."""
    if len(body) > MAX_MANIFEST_SIZE:
        raise RegistryError("MANIFEST_INVALID", "manifest too big", status=413)
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise _invalid(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise _invalid("not a JSON object")
    if doc.get("schemaVersion") != 2:
        raise _invalid("schemaVersion must be 2 (schema 1 is not supported)")
    media_type = _media_type(doc, content_type)
    blobs: list[BlobReference] = []
    children: list[str] = []
    if media_type in INDEX_MEDIA_TYPES:
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise _invalid("manifests must be a list")
        for i, raw in enumerate(entries):
            children.append(_descriptor(raw, f"manifests[{i}]")["digest"])
    else:
        config = _descriptor(doc.get("config"), "config")
        blobs.append(BlobReference(config["digest"], False))
        layers = doc.get("layers", [])
        if not isinstance(layers, list):
            raise _invalid("layers must be a list")
        for i, raw in enumerate(layers):
            layer = _descriptor(raw, f"layers[{i}]")
            blobs.append(BlobReference(layer["digest"], bool(layer.get("urls"))))
    subject = None
    if doc.get("subject") is not None:
        subject = _descriptor(doc["subject"], "subject")["digest"]
    artifact_type = doc.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise _invalid("artifactType is not a string")
    if artifact_type is None and "config" in doc and media_type == OCI_MANIFEST:
        # The referrers API reports an image manifest's config type in its place.
        artifact_type = doc["config"]["mediaType"]
    annotations = doc.get("annotations")
    if annotations is not None and not (
        isinstance(annotations, dict) and all(isinstance(v, str) for v in annotations.values())
    ):
        raise _invalid("annotations must map strings to strings")
    return ParsedManifest(
        media_type, tuple(blobs), tuple(children), subject, artifact_type, annotations
    )


def index_child_for_default_platform(body: bytes) -> str | None:
    """The linux/amd64 entry of an index, served to a client that takes no index (the
    reference registry's fallback for old clients)."""
    doc = json.loads(body)
    for entry in doc.get("manifests", []):
        platform = entry.get("platform") or {}
        if platform.get("os") == "linux" and platform.get("architecture") == "amd64":
            return str(entry["digest"])
    return None
