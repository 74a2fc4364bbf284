"""One conversation with one registry: the endpoint found by pinging `/v2/` (falling
back from HTTPS to HTTP only for insecure registries), and every request authorised as
the ping's challenge asks (Bearer tokens cached per scope, or Basic).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import httpx

from essaim import __version__
from essaim.image.distribution import errors
from essaim.image.distribution.challenge import Challenge
from essaim.image.distribution.challenge import parse as parse_challenges
from essaim.image.distribution.credentials import Credentials
from essaim.image.distribution.hosts import Endpoint, RegistryHosts
from essaim.image.distribution.tokens import TokenSource

USER_AGENT = f"essaim/{__version__}"
TIMEOUT = httpx.Timeout(60.0, connect=30.0)


def scope(path: str, actions: str) -> str:
    """A token scope: `repository:bb:pull` or `repository:bb:pull,push`."""
    return f"repository:{path}:{actions}"


class RegistryClient:
    """Requests to repository paths of `domain`; open with `async with`."""

    def __init__(
        self,
        hosts: RegistryHosts,
        domain: str,
        credentials: Credentials,
        *,
        offline: bool = False,
    ) -> None:
        self.hosts = hosts
        self.offline = offline  # ask for a refresh token (login)
        self.domain = domain
        self.credentials = credentials
        self.endpoint: Endpoint | None = None
        self.challenges: list[Challenge] = []
        self._http: httpx.AsyncClient | None = None
        self._tokens: TokenSource | None = None

    async def __aenter__(self) -> RegistryClient:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def base(self) -> str:
        assert self.endpoint is not None
        return self.endpoint.base

    def url(self, path: str) -> str:
        return self.base + path

    async def open(self) -> None:
        """Ping `/v2/` on each endpoint in turn; the first that answers is kept with its
        challenge. All failing: the last one's failure, as dockerd reports it."""
        last: Exception | None = None
        for endpoint in await self.hosts.endpoints(self.domain):
            # Per endpoint: a mirror of the default registry may be on this host.
            proxied = not await self.hosts.is_loopback(endpoint.base.partition("://")[2])
            http = httpx.AsyncClient(
                verify=endpoint.verify, timeout=TIMEOUT, follow_redirects=True,
                headers={"User-Agent": USER_AGENT}, trust_env=proxied,
            )  # fmt: skip
            url = endpoint.base + "/v2/"
            try:
                response = await http.get(url)
            except httpx.HTTPError as exc:
                await http.aclose()
                why = errors.describe_failure(exc, httpx.URL(url).netloc.decode())
                last = errors.TransportError("GET", url, why)
                continue
            self.endpoint = endpoint
            self._http = http
            self.challenges = parse_challenges(response.headers.get_list("www-authenticate"))
            self._tokens = TokenSource(
                http, self.credentials, self.challenges, offline=self.offline
            )
            return
        assert last is not None
        raise last

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    @property
    def refresh_token(self) -> str:
        return self._tokens.refresh_token if self._tokens is not None else ""

    @property
    def http(self) -> httpx.AsyncClient:
        assert self._http is not None, "open the client first"
        return self._http

    async def _authorization(self, method: str, url: str, scopes: Sequence[str]) -> str | None:
        assert self._tokens is not None
        try:
            return await self._tokens.authorization(scopes)
        except errors.TransportError as exc:
            # As Go's client: the auth failure is reported against the request made.
            raise errors.TransportError(
                method, url, exc.why, unauthorized=exc.unauthorized
            ) from None
        except errors.RegistryError as exc:
            raise errors.TransportError(
                method, url, exc.message, unauthorized=exc.http_status == 401
            ) from None

    async def _headers(
        self, method: str, url: str, scopes: Sequence[str], headers: Mapping[str, str] | None
    ) -> dict[str, str]:
        out = dict(headers or {})
        auth = await self._authorization(method, url, scopes)
        if auth is not None:
            out["Authorization"] = auth
        return out

    async def request(
        self,
        method: str,
        path_or_url: str,
        *,
        scopes: Sequence[str],
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        content: bytes | AsyncIterator[bytes] | None = None,
    ) -> httpx.Response:
        """A request whose body is read whole (manifests, upload steps). Transport
        failures raise TransportError; the status is the caller's to judge."""
        url = path_or_url if "://" in path_or_url else self.url(path_or_url)
        sent = await self._headers(method, url, scopes, headers)
        try:
            return await self.http.request(
                method, url, headers=sent, params=params, content=content
            )
        except httpx.HTTPError as exc:
            why = errors.describe_failure(exc, httpx.URL(url).netloc.decode())
            raise errors.TransportError(method, url, why) from None

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        scopes: Sequence[str],
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """A response whose body the caller reads as it comes (blobs)."""
        url = self.url(path)
        sent = await self._headers(method, url, scopes, headers)
        try:
            async with self.http.stream(method, url, headers=sent) as response:
                yield response
        except httpx.HTTPError as exc:
            why = errors.describe_failure(exc, httpx.URL(url).netloc.decode())
            raise errors.TransportError(method, url, why) from None

    async def check(self, response: httpx.Response, *expected: int) -> None:
        """Raise the registry's error unless the status is one of `expected`."""
        if response.status_code in expected:
            return
        body = await response.aread()
        raise errors.from_response(response, body)


def json_body(response: httpx.Response) -> Any:
    import json

    try:
        return json.loads(response.content)
    except ValueError:
        return None
