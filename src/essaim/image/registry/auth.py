"""Who may do what: no auth, htpasswd Basic auth, or bearer tokens; each answers a
request it refuses with 401 UNAUTHORIZED and the challenge clients follow.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from concurrent.futures import Executor
from typing import Protocol

from essaim.image.registry.access import Access, allows, scope_string
from essaim.image.registry.errors import RegistryError
from essaim.image.registry.htpasswd import Htpasswd
from essaim.image.registry.tokens import InvalidToken, TokenVerifier


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def basic_credentials(headers: dict[str, str]) -> tuple[str, str] | None:
    """(user, password) of an `Authorization: Basic` header, None without one."""
    kind, _, value = headers.get("authorization", "").partition(" ")
    if kind.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


class Authenticator(Protocol):
    async def check(self, headers: dict[str, str], needed: list[Access]) -> None:
        """Returns when the request may go on, raises UNAUTHORIZED otherwise."""


class OpenAccess:
    async def check(self, headers: dict[str, str], needed: list[Access]) -> None:
        return None


class BasicAuth:
    """Any user of the htpasswd file may do anything (as with the reference registry)."""

    def __init__(self, htpasswd: Htpasswd, realm: str, executor: Executor) -> None:
        self.htpasswd = htpasswd
        self.realm = realm
        self.executor = executor

    async def check(self, headers: dict[str, str], needed: list[Access]) -> None:
        credentials = basic_credentials(headers)
        if credentials is not None:
            loop = asyncio.get_running_loop()
            if await loop.run_in_executor(self.executor, self.htpasswd.verify, *credentials):
                return
        challenge = f'Basic realm="{_quote(self.realm)}"'
        raise RegistryError("UNAUTHORIZED", headers=[("WWW-Authenticate", challenge)])


class TokenAuth:
    def __init__(self, verifier: TokenVerifier, realm: str) -> None:
        self.verifier = verifier
        self.realm = realm

    def challenge(self, needed: list[Access], error: str | None = None) -> str:
        parts = [f'realm="{_quote(self.realm)}"', f'service="{_quote(self.verifier.service)}"']
        if needed:
            parts.append(f'scope="{_quote(scope_string(needed))}"')
        if error:
            parts.append(f'error="{error}"')
        return "Bearer " + ",".join(parts)

    async def check(self, headers: dict[str, str], needed: list[Access]) -> None:
        kind, _, token = headers.get("authorization", "").partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            raise self._refuse(needed, None, "authentication required")
        try:
            granted = self.verifier.verify(token.strip())
        except InvalidToken as exc:
            raise self._refuse(needed, "invalid_token", f"invalid token: {exc}") from None
        missing = [a for a in needed if not allows(granted, a)]
        if missing:
            raise self._refuse(needed, "insufficient_scope", "authentication required", missing)

    def _refuse(
        self,
        needed: list[Access],
        error: str | None,
        message: str,
        missing: list[Access] | None = None,
    ) -> RegistryError:
        detail = (
            [{"Type": a.type, "Name": a.name, "Action": a.action} for a in missing]
            if missing
            else None
        )
        return RegistryError(
            "UNAUTHORIZED",
            message,
            detail,
            headers=[("WWW-Authenticate", self.challenge(needed, error))],
        )
