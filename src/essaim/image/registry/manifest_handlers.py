"""Manifest endpoints: GET/HEAD by tag or digest (what is served follows the client's
Accept list), PUT (every referenced blob and child must be in the repository), DELETE.
"""

from __future__ import annotations

import hashlib

from essaim.api.responses import AnyResponse, Response
from essaim.image.registry import manifests
from essaim.image.registry.context import Registry, RegistryRequest
from essaim.image.registry.errors import RegistryError
from essaim.image.registry.manifests import INDEX_MEDIA_TYPES, MAX_MANIFEST_SIZE
from essaim.image.registry.names import check_digest, check_tag, is_tag

_REFUSED = {
    "application/vnd.oci.image.manifest.v1+json": "OCI manifest found, but accept header "
    "does not support OCI manifests",
    "application/vnd.oci.image.index.v1+json": "OCI index found, but accept header does "
    "not support OCI indexes",
    "application/vnd.docker.distribution.manifest.list.v2+json": "manifest list found, but "
    "accept header does not support manifest lists",
}


def _accepted(req: RegistryRequest) -> set[str] | None:
    """The media types the client takes; None when it takes anything."""
    value = req.headers.get("accept", "")
    types = {part.split(";")[0].strip() for part in value.split(",") if part.strip()}
    if not types or "*/*" in types or "application/*" in types:
        return None
    return types


async def _resolve(registry: Registry, req: RegistryRequest) -> tuple[str, str | None]:
    """(digest, tag or None) of the reference in the path."""
    reference = req.params["reference"]
    if ":" in reference:
        return check_digest(reference), None
    if not is_tag(reference):
        raise RegistryError("MANIFEST_UNKNOWN", detail={"tag": reference})
    digest = await registry.run(registry.storage.resolve_tag, req.name, reference)
    if digest is None:
        if not await registry.run(registry.storage.repo_exists, req.name):
            raise RegistryError("NAME_UNKNOWN", detail={"name": req.name})
        raise RegistryError("MANIFEST_UNKNOWN", detail={"tag": reference})
    return digest, reference


async def get_manifest(registry: Registry, req: RegistryRequest) -> AnyResponse:
    digest, tag = await _resolve(registry, req)
    found = await registry.run(registry.storage.manifest, req.name, digest)
    if found is None:
        if not await registry.run(registry.storage.repo_exists, req.name):
            raise RegistryError("NAME_UNKNOWN", detail={"name": req.name})
        raise RegistryError("MANIFEST_UNKNOWN", detail={"digest": digest})
    body, media_type = found
    accepted = _accepted(req)
    if accepted is not None and media_type not in accepted:
        served = None
        if media_type in INDEX_MEDIA_TYPES and tag is not None:
            # A client that takes no index gets the default platform's manifest.
            child = manifests.index_child_for_default_platform(body)
            if child is not None:
                served = await registry.run(registry.storage.manifest, req.name, child)
        if served is None or served[1] not in accepted:
            message = _REFUSED.get(media_type, f"{media_type} not in the accept header")
            raise RegistryError("MANIFEST_UNKNOWN", message, {"mediaType": media_type})
        body, media_type = served
        digest = f"sha256:{hashlib.sha256(body).hexdigest()}"
    headers = [("Docker-Content-Digest", digest), ("Etag", f'"{digest}"')]
    return Response(200, body, media_type, headers)


async def put_manifest(registry: Registry, req: RegistryRequest) -> AnyResponse:
    reference = req.params["reference"]
    body = await req.body(MAX_MANIFEST_SIZE)
    parsed = manifests.parse(body, req.headers.get("content-type"))
    tag: str | None = None
    if ":" in reference:
        digest = check_digest(reference)
        algorithm = digest.partition(":")[0]
        if f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}" != digest:
            raise RegistryError("DIGEST_INVALID", detail={"digest": digest})
    else:
        tag = check_tag(reference)
        digest = f"sha256:{hashlib.sha256(body).hexdigest()}"
    storage, name = registry.storage, req.name

    def missing() -> str | None:
        for blob in parsed.blobs:
            if not blob.foreign and not storage.blob_linked(name, blob.digest):
                return blob.digest
        for child in parsed.children:
            if not storage.has_manifest(name, child):
                return child
        return None

    absent = await registry.run(missing)
    if absent is not None:
        raise RegistryError("MANIFEST_BLOB_UNKNOWN", detail={"digest": absent})
    await registry.run(
        storage.put_manifest, name, digest, body, parsed.media_type, tag, parsed.subject
    )
    headers = [("Location", f"/v2/{name}/manifests/{digest}"), ("Docker-Content-Digest", digest)]
    if parsed.subject is not None:
        headers.append(("OCI-Subject", parsed.subject))
    return Response(201, b"", None, headers)


async def delete_manifest(registry: Registry, req: RegistryRequest) -> AnyResponse:
    reference = req.params["reference"]
    storage = registry.storage
    if ":" in reference:
        digest = check_digest(reference)
        deleted = await registry.run(storage.delete_manifest, req.name, digest)
        detail = {"digest": digest}
    else:
        deleted = is_tag(reference) and await registry.run(storage.delete_tag, req.name, reference)
        detail = {"tag": reference}
    if not deleted:
        raise RegistryError("MANIFEST_UNKNOWN", detail=detail)
    return Response(202, b"", None, [])
