"""The Authorization header for a request, as the registry's challenge asks: a Bearer
token from its realm (anonymous, with Basic credentials, or an OAuth refresh token),
cached per scope set until it expires; or Basic credentials; or a given registry token.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from essaim.image.distribution import errors
from essaim.image.distribution.challenge import Challenge
from essaim.image.distribution.credentials import Credentials

CLIENT_ID = "docker"
MIN_LIFETIME = 60  # seconds; distribution's floor for `expires_in`
NO_BASIC = "no basic auth credentials"


@dataclass(slots=True)
class _Token:
    value: str
    expires: float


def basic_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


class TokenSource:
    """Authorization for one registry endpoint. `offline` asks for a refresh token too
    (a login does), kept in `refresh_token`."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        credentials: Credentials,
        challenges: Sequence[Challenge],
        *,
        offline: bool = False,
    ) -> None:
        self._http = http
        self._credentials = credentials
        self._bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        self._basic = next((c for c in challenges if c.scheme == "basic"), None)
        self._offline = offline
        self._cache: dict[str, _Token] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.refresh_token = ""

    @property
    def needs_auth(self) -> bool:
        return self._bearer is not None or self._basic is not None

    async def authorization(self, scopes: Sequence[str]) -> str | None:
        creds = self._credentials
        if creds.registry_token:
            return f"Bearer {creds.registry_token}"
        if self._bearer is not None:
            return f"Bearer {await self._token(scopes)}"
        if self._basic is not None:
            if creds.username and creds.password:
                return basic_header(creds.username, creds.password)
            raise errors.TransportError("GET", "", NO_BASIC, unauthorized=True)
        return None

    async def _token(self, scopes: Sequence[str]) -> str:
        key = " ".join(sorted(set(scopes)))
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._cache.get(key)
            if cached is not None and cached.expires > time.monotonic():
                return cached.value
            token = await self._fetch(sorted(set(scopes)))
            self._cache[key] = token
            return token.value

    async def _fetch(self, scopes: list[str]) -> _Token:
        assert self._bearer is not None
        realm = self._bearer.params.get("realm", "")
        if not realm:
            raise errors.TransportError("GET", "", "no realm specified for token auth challenge")
        service = self._bearer.params.get("service", "")
        creds = self._credentials
        if creds.identity_token:
            response = await self._post_oauth(realm, service, scopes, creds.identity_token)
            if response.status_code not in (404, 405):
                return await self._read(response)
        return await self._read(await self._get(realm, service, scopes))

    async def _post_oauth(
        self, realm: str, service: str, scopes: list[str], refresh: str
    ) -> httpx.Response:
        form = {
            "grant_type": "refresh_token", "refresh_token": refresh, "service": service,
            "client_id": CLIENT_ID, "access_type": "offline" if self._offline else "online",
        }  # fmt: skip
        if scopes:
            form["scope"] = " ".join(scopes)
        try:
            return await self._http.post(realm, data=form)
        except httpx.HTTPError as exc:
            raise errors.TransportError("POST", realm, errors.describe_failure(exc)) from None

    async def _get(self, realm: str, service: str, scopes: list[str]) -> httpx.Response:
        params: list[tuple[str, str | int | float | bool | None]] = []
        if service:
            params.append(("service", service))
        params += [("scope", s) for s in scopes]
        headers: dict[str, str] = {}
        creds = self._credentials
        if self._offline:
            params += [("offline_token", "true"), ("client_id", CLIENT_ID)]
        if creds.username and creds.password:
            headers["Authorization"] = basic_header(creds.username, creds.password)
            params.append(("account", creds.username))
        try:
            return await self._http.get(realm, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise errors.TransportError("GET", realm, errors.describe_failure(exc)) from None

    async def _read(self, response: httpx.Response) -> _Token:
        body = await response.aread()
        if not 200 <= response.status_code < 300:
            raise errors.from_response(response, body)
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise errors.TransportError("GET", str(response.url), "unable to decode token response")
        value = doc.get("token") or doc.get("access_token")
        if not isinstance(value, str) or not value:
            raise errors.TransportError(
                "GET",
                str(response.url),
                "authorization server did not include a token in the response",
            )
        refresh = doc.get("refresh_token")
        if isinstance(refresh, str) and refresh:
            self.refresh_token = refresh
        lifetime = doc.get("expires_in")
        seconds = (
            lifetime if isinstance(lifetime, int) and lifetime > MIN_LIFETIME else MIN_LIFETIME
        )
        # A little early: a token must not expire between the check and its use.
        return _Token(value, time.monotonic() + seconds - 5)
