"""The registry's HTTP application: routes `/v2/...` (a repository name may hold
slashes, so routes match from the right), asks the authenticator for the access each
request needs, and turns errors into the spec's JSON.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from essaim.api.request import ClientGone
from essaim.api.responses import AnyResponse, Response
from essaim.api.server import Application, parse_target
from essaim.image.registry import blob_handlers as blobs
from essaim.image.registry import listing
from essaim.image.registry import manifest_handlers as manifests
from essaim.image.registry.access import CATALOG, Access, repository
from essaim.image.registry.auth import Authenticator
from essaim.image.registry.context import Registry, RegistryRequest
from essaim.image.registry.errors import RegistryError
from essaim.image.registry.names import check_name
from essaim.image.registry.token_server import TokenServer

log = logging.getLogger(__name__)

Handler = Callable[[Registry, RegistryRequest], Awaitable[AnyResponse]]
TOKEN_PATH = "/auth/token"


@dataclass(frozen=True)
class _Route:
    pattern: re.Pattern[str]
    handlers: dict[str, Handler]


_ROUTES = [
    _Route(re.compile(r"/v2/(?P<name>.+)/tags/list"), {"GET": listing.tags_list}),
    _Route(
        re.compile(r"/v2/(?P<name>.+)/manifests/(?P<reference>[^/]+)"),
        {
            "GET": manifests.get_manifest,
            "HEAD": manifests.get_manifest,
            "PUT": manifests.put_manifest,
            "DELETE": manifests.delete_manifest,
        },
    ),
    _Route(
        re.compile(r"/v2/(?P<name>.+)/blobs/uploads(?:/(?P<upload>[^/]*))?"),
        {
            "POST": blobs.start_upload,
            "PATCH": blobs.patch_upload,
            "PUT": blobs.put_upload,
            "GET": blobs.upload_status,
            "DELETE": blobs.cancel_upload,
        },
    ),
    _Route(
        re.compile(r"/v2/(?P<name>.+)/blobs/(?P<digest>[^/]+)"),
        {"GET": blobs.get_blob, "HEAD": blobs.get_blob, "DELETE": blobs.delete_blob},
    ),
    _Route(re.compile(r"/v2/(?P<name>.+)/referrers/(?P<digest>[^/]+)"), {"GET": listing.referrers}),
]


def needed_access(req: RegistryRequest) -> list[Access]:
    """The reference registry's rule: reads pull, writes pull and push, DELETE delete;
    a mount also pulls from its source."""
    if req.method in ("GET", "HEAD"):
        return repository(req.name, "pull")
    if req.method == "DELETE":
        return repository(req.name, "delete")
    needed = repository(req.name, "pull", "push")
    source = req.query.get("from")
    if req.method == "POST" and req.query.get("mount") and source:
        needed += repository(check_name(source), "pull")
    return needed


def _error(exc: RegistryError) -> Response:
    return Response(exc.status, exc.body(), "application/json", list(exc.headers))


class RegistryApplication(Application):
    def __init__(
        self,
        registry: Registry,
        authenticator: Authenticator,
        token_server: TokenServer | None = None,
    ) -> None:
        self.registry = registry
        self.authenticator = authenticator
        self.token_server = token_server

    def common_headers(self) -> list[tuple[str, str]]:
        return [("Docker-Distribution-API-Version", "registry/2.0")]

    async def dispatch(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: Callable[[], AsyncIterator[bytes]],
    ) -> AnyResponse:
        log.debug("%s %s", method, target)
        try:
            path, query = parse_target(target)
            req = RegistryRequest(method, path, query, headers, body)
            return await self._route(req)
        except ClientGone:
            raise
        except RegistryError as exc:
            return _error(exc)
        except Exception:
            log.exception("%s %s failed", method, target)
            return _error(RegistryError("UNKNOWN"))

    async def _route(self, req: RegistryRequest) -> AnyResponse:
        path = req.path
        if path == TOKEN_PATH and self.token_server is not None:
            if req.method == "GET":
                return await self.token_server.get(req.query, req.headers)
            if req.method == "POST":
                return await self.token_server.post(await req.body(64 * 1024))
            raise RegistryError("UNSUPPORTED")
        if path in ("/v2", "/v2/"):
            if req.method not in ("GET", "HEAD"):
                raise RegistryError("UNSUPPORTED")
            await self.authenticator.check(req.headers, [])
            return Response(200, b"{}", "application/json", [])
        if path == "/v2/_catalog":
            if req.method != "GET":
                raise RegistryError("UNSUPPORTED")
            await self.authenticator.check(req.headers, [CATALOG])
            return await listing.catalog(self.registry, req)
        for route in _ROUTES:
            m = route.pattern.fullmatch(path)
            if m is None:
                continue
            handler = route.handlers.get(req.method)
            if handler is None:
                raise RegistryError("UNSUPPORTED")
            req.params = {k: v for k, v in m.groupdict().items() if v is not None}
            req.name = check_name(req.params.pop("name"))
            await self.authenticator.check(req.headers, needed_access(req))
            return await handler(self.registry, req)
        return Response(404, b"404 page not found\n", "text/plain; charset=utf-8", [])
