"""Listing endpoints: a repository's tags and the catalog, paginated with `n`, `last`
and a `Link` header; and the referrers API with its `artifactType` filter.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from essaim.api.responses import AnyResponse, Response
from essaim.image.oci import OCI_INDEX
from essaim.image.registry import manifests
from essaim.image.registry.context import Registry, RegistryRequest
from essaim.image.registry.errors import RegistryError
from essaim.image.registry.names import check_digest


def _json(
    data: Any, headers: list[tuple[str, str]], content_type: str = "application/json"
) -> Response:
    return Response(200, json.dumps(data, separators=(",", ":")).encode(), content_type, headers)


def paginate(
    items: list[str], req: RegistryRequest, path: str
) -> tuple[list[str], list[tuple[str, str]]]:
    """The page `n`/`last` ask for, and the Link header to the next one if any."""
    raw_n = req.query.get("n")
    last = req.query.get("last")
    if last:
        items = [item for item in items if item > last]
    if raw_n is None or raw_n == "":
        return items, []
    try:
        n = int(raw_n)
    except ValueError:
        n = -1
    if n < 0:
        raise RegistryError("PAGINATION_NUMBER_INVALID", detail={"n": raw_n})
    if len(items) <= n:
        return items, []
    page = items[:n]
    if not page:
        return page, []
    link = f'<{path}?n={n}&last={quote(page[-1], safe="")}>; rel="next"'
    return page, [("Link", link)]


async def tags_list(registry: Registry, req: RegistryRequest) -> AnyResponse:
    storage = registry.storage
    if not await registry.run(storage.repo_exists, req.name):
        raise RegistryError("NAME_UNKNOWN", detail={"name": req.name})
    tags = sorted(await registry.run(storage.tags, req.name))
    page, headers = paginate(tags, req, f"/v2/{req.name}/tags/list")
    return _json({"name": req.name, "tags": page}, headers)


async def catalog(registry: Registry, req: RegistryRequest) -> AnyResponse:
    names = await registry.run(registry.storage.repository_names)
    page, headers = paginate(names, req, "/v2/_catalog")
    return _json({"repositories": page}, headers)


async def referrers(registry: Registry, req: RegistryRequest) -> AnyResponse:
    subject = check_digest(req.params["digest"])
    storage, name = registry.storage, req.name
    wanted = req.query.get("artifactType")

    def descriptors() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for digest in storage.referrers(name, subject):
            found = storage.manifest(name, digest)
            if found is None:
                continue
            body, media_type = found
            parsed = manifests.parse(body, media_type)
            if wanted and parsed.artifact_type != wanted:
                continue
            descriptor: dict[str, Any] = {
                "mediaType": media_type,
                "digest": digest,
                "size": len(body),
            }
            if parsed.artifact_type:
                descriptor["artifactType"] = parsed.artifact_type
            if parsed.annotations:
                descriptor["annotations"] = parsed.annotations
            out.append(descriptor)
        return out

    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": await registry.run(descriptors),
    }
    headers = [("OCI-Filters-Applied", "artifactType")] if wanted else []
    return _json(index, headers, OCI_INDEX)
