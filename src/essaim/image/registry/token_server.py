"""The token endpoint of Docker's token auth spec (`/auth/token`): GET with Basic
credentials or none, `service` and `scope` parameters; POST for OAuth2 password and
refresh-token grants. Users of the htpasswd file get what they ask; anonymous, nothing.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import Executor
from datetime import UTC, datetime
from urllib.parse import parse_qs

from essaim.api.request import QueryParams
from essaim.api.responses import Response
from essaim.image.registry.access import Access, parse_scopes
from essaim.image.registry.auth import basic_credentials
from essaim.image.registry.errors import RegistryError
from essaim.image.registry.htpasswd import Htpasswd
from essaim.image.registry.tokens import InvalidToken, TokenIssuer

GRANTABLE = frozenset({"pull", "push", "delete", "*"})


class TokenServer:
    def __init__(
        self, issuer: TokenIssuer, service: str, htpasswd: Htpasswd | None, executor: Executor
    ) -> None:
        self.issuer = issuer
        self.service = service
        self.htpasswd = htpasswd
        self.executor = executor

    def _refused(self) -> RegistryError:
        return RegistryError(
            "UNAUTHORIZED",
            "invalid username or password",
            headers=[("WWW-Authenticate", 'Basic realm="essaim token server"')],
        )

    async def _authenticate(self, user: str, password: str) -> str:
        if self.htpasswd is None:
            raise self._refused()
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(self.executor, self.htpasswd.verify, user, password):
            raise self._refused()
        return user

    def _grant(self, user: str | None, wanted: list[Access]) -> list[Access]:
        if user is None:
            return []
        return [
            a
            for a in wanted
            if (a.type == "repository" and a.action in GRANTABLE)
            or (a.type == "registry" and a.name == "catalog")
        ]

    def _check_service(self, service: str | None) -> str:
        if service and service != self.service:
            raise RegistryError("DENIED", f"unknown service {service!r}")
        return self.service

    def _answer(
        self, user: str | None, service: str, scopes: list[str], refresh: str | None
    ) -> Response:
        issued = self.issuer.issue(user or "", service, self._grant(user, parse_scopes(scopes)))
        body: dict[str, object] = {
            "token": issued.token,
            "access_token": issued.token,
            "expires_in": issued.expires_in,
            "issued_at": datetime.fromtimestamp(issued.issued_at, UTC)
            .isoformat(timespec="seconds")
            .replace("+00:00", "Z"),
        }
        if refresh is not None:
            body["refresh_token"] = refresh
        return Response(200, json.dumps(body).encode(), "application/json", [])

    async def get(self, query: QueryParams, headers: dict[str, str]) -> Response:
        service = self._check_service(query.get("service"))
        credentials = basic_credentials(headers)
        user = await self._authenticate(*credentials) if credentials else None
        refresh = None
        if user is not None and query.get_bool("offline_token"):
            refresh = self.issuer.refresh_token(user, service)
        return self._answer(user, service, query.get_all("scope"), refresh)

    async def post(self, body: bytes) -> Response:
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)

        def field(name: str) -> str | None:
            values = form.get(name)
            return values[-1] if values else None

        service = self._check_service(field("service"))
        scopes = form.get("scope", [])
        grant = field("grant_type")
        if grant == "password":
            user = await self._authenticate(field("username") or "", field("password") or "")
            refresh = None
            if field("access_type") == "offline":
                refresh = self.issuer.refresh_token(user, service)
            return self._answer(user, service, scopes, refresh)
        if grant == "refresh_token":
            try:
                user = self.issuer.refresh_subject(field("refresh_token") or "", service)
            except InvalidToken:
                raise self._refused() from None
            return self._answer(user, service, scopes, None)
        raise RegistryError("UNSUPPORTED", f"unsupported grant_type {grant!r}", status=400)
