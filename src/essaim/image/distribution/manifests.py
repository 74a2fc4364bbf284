"""Manifests from a registry: fetched by tag or digest with Docker's Accept list,
digest-verified, sorted into image manifests and indexes; and tag listing.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from essaim.errors import SystemError_
from essaim.image import oci
from essaim.image.distribution.blobs import MAX_MANIFEST, VerificationFailed
from essaim.image.distribution.client import RegistryClient
from essaim.image.platforms import Platform, from_descriptor

ACCEPT = ", ".join((oci.DOCKER_MANIFEST, oci.DOCKER_MANIFEST_LIST, oci.OCI_INDEX, oci.OCI_MANIFEST))
_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


@dataclass(frozen=True, slots=True)
class Fetched:
    media_type: str
    digest: str
    data: bytes

    @property
    def is_index(self) -> bool:
        return self.media_type in oci.INDEX_TYPES

    def descriptor(self) -> oci.Descriptor:
        return oci.Descriptor(self.media_type, self.digest, len(self.data))


def media_type_of(data: bytes, header: str) -> str:
    """The body's own mediaType wins; an OCI manifest may omit it, then the header or
    the shape (a `manifests` list is an index) tells."""
    try:
        doc = json.loads(data)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        declared = doc.get("mediaType")
        if isinstance(declared, str) and declared:
            return declared
        if isinstance(doc.get("manifests"), list):
            return oci.OCI_INDEX
    header = header.split(";", 1)[0].strip()
    if header in oci.MANIFEST_TYPES or header in oci.INDEX_TYPES:
        return header
    return oci.OCI_MANIFEST


async def fetch(client: RegistryClient, path: str, reference: str, scopes: list[str]) -> Fetched:
    """GET /v2/<path>/manifests/<tag or digest>; a digest reference must match."""
    response = await client.request(
        "GET", f"/v2/{path}/manifests/{reference}", scopes=scopes, headers={"Accept": ACCEPT}
    )
    await client.check(response, 200)
    data = response.content
    if len(data) > MAX_MANIFEST:
        raise SystemError_(f"manifest too big: {len(data)} bytes")
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if reference.startswith("sha256:") and digest != reference:
        raise VerificationFailed(f"manifest verification failed for digest {reference}")
    media_type = media_type_of(data, response.headers.get("content-type", ""))
    if media_type not in oci.MANIFEST_TYPES and media_type not in oci.INDEX_TYPES:
        raise SystemError_(
            f"unsupported manifest media type and no default available: {media_type}"
        )
    return Fetched(media_type, digest, data)


def index_entries(data: bytes) -> list[tuple[Platform | None, oci.Descriptor]]:
    """The manifests an index lists, with their platforms, in its order."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise SystemError_(f"invalid manifest list: {exc}") from None
    raw = doc.get("manifests") if isinstance(doc, dict) else None
    if not isinstance(raw, list):
        raise SystemError_("invalid manifest list: no manifests")
    out: list[tuple[Platform | None, oci.Descriptor]] = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        media_type, digest, size = item.get("mediaType"), item.get("digest"), item.get("size")
        if not isinstance(digest, str) or not isinstance(size, int):
            continue
        out.append(
            (from_descriptor(item.get("platform")),
             oci.Descriptor(str(media_type or oci.OCI_MANIFEST), digest, size))
        )  # fmt: skip
    return out


def config_platform(config: bytes) -> Platform | None:
    try:
        doc: Any = json.loads(config)
    except ValueError:
        return None
    return from_descriptor(doc)


async def list_tags(client: RegistryClient, path: str, scopes: list[str]) -> list[str]:
    """Every tag of the repository, following the `Link` pagination."""
    tags: list[str] = []
    url = f"/v2/{path}/tags/list"
    while url:
        response = await client.request("GET", url, scopes=scopes)
        await client.check(response, 200)
        try:
            doc = json.loads(response.content)
        except ValueError:
            doc = {}
        tags += [t for t in (doc.get("tags") or []) if isinstance(t, str)]
        link = _NEXT_LINK.search(response.headers.get("link", ""))
        url = link.group(1) if link else ""
        if url.startswith("/"):
            url = client.base + url
    return tags
