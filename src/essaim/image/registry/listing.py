"""Listing endpoints: a repository's tags and the catalog, paginated with `n`, `last`
and a `Link` header as the reference registry does; the referrers API with its filter.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

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


# The reference registry's catalog: a page of 100 when `n` is absent or not a number,
# and at most 1000 a request (docker-registry 2.8's defaults).
CATALOG_PAGE = 100
CATALOG_MAX = 1000


def _page(
    items: list[str], n: int, last: str | None, path: str
) -> tuple[list[str], list[tuple[str, str]]]:
    """Items after `last`, the first `n` of them, and a Link to the rest if any remain."""
    if last:
        items = [item for item in items if item > last]
    page = items[:n]
    if len(items) <= n or not page:
        return page, []
    # Go's url.Values.Encode, as the reference registry writes it: keys sorted, so
    # `last` comes before `n`.
    query = urlencode([("last", page[-1]), ("n", str(n))])
    return page, [("Link", f'<{path}?{query}>; rel="next"')]


def paginate(
    items: list[str], req: RegistryRequest, path: str
) -> tuple[list[str], list[tuple[str, str]]]:
    """The page `n`/`last` ask for (everything when `n` is absent), and the Link
    header to the next one if any."""
    raw_n = req.query.get("n")
    last = req.query.get("last")
    if raw_n is None or raw_n == "":
        return _page(items, len(items), last, path)
    try:
        n = int(raw_n)
    except ValueError:
        n = -1
    if n < 0:
        raise RegistryError("PAGINATION_NUMBER_INVALID", detail={"n": raw_n})
    return _page(items, n, last, path)


def catalog_page(items: list[str], req: RegistryRequest) -> tuple[list[str], list[tuple[str, str]]]:
    """docker-registry 2.8's catalog: `n` missing, empty, negative or not a number
    means a page of 100; more than 1000 is refused."""
    try:
        n = int(req.query.get("n") or "")
    except ValueError:
        n = CATALOG_PAGE
    if n < 0:
        n = CATALOG_PAGE
    if n > CATALOG_MAX:
        raise RegistryError("PAGINATION_NUMBER_INVALID", detail={"n": n})
    return _page(items, n, req.query.get("last"), "/v2/_catalog")


async def tags_list(registry: Registry, req: RegistryRequest) -> AnyResponse:
    storage = registry.storage
    if not await registry.run(storage.repo_exists, req.name):
        raise RegistryError("NAME_UNKNOWN", detail={"name": req.name})
    tags = sorted(await registry.run(storage.tags, req.name))
    page, headers = paginate(tags, req, f"/v2/{req.name}/tags/list")
    return _json({"name": req.name, "tags": page}, headers)


async def catalog(registry: Registry, req: RegistryRequest) -> AnyResponse:
    names = await registry.run(registry.storage.repository_names)
    page, headers = catalog_page(names, req)
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
