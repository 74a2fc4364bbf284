"""Registry credentials as Docker clients send them: the `X-Registry-Auth` header
(base64url JSON AuthConfig; `e30=` is none) and the `POST /auth` body.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from essaim.errors import InvalidParameter


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a user gave for one registry. `identity_token` is an OAuth refresh token;
    `registry_token` is a bearer token sent as is."""

    username: str = ""
    password: str = ""
    server_address: str = ""
    identity_token: str = ""
    registry_token: str = ""

    @property
    def anonymous(self) -> bool:
        return not (self.username or self.password or self.identity_token or self.registry_token)

    def __repr__(self) -> str:  # never print secrets in logs or tracebacks
        return f"Credentials(username={self.username!r}, server_address={self.server_address!r})"


NONE = Credentials()


def from_auth_config(doc: Any) -> Credentials:
    """An AuthConfig object; `auth` (base64 `user:password`) fills what is missing."""
    if doc is None:
        return NONE
    if not isinstance(doc, dict):
        raise InvalidParameter("invalid authconfig: not a JSON object")

    def field(*names: str) -> str:
        for name in names:
            value = doc.get(name)
            if isinstance(value, str) and value:
                return value
        return ""

    username = field("username", "Username")
    password = field("password", "Password")
    encoded = field("auth", "Auth")
    if encoded and not (username and password):
        try:
            user, _, secret = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidParameter("invalid authconfig: auth is not base64") from None
        username = username or user
        password = password or secret
    return Credentials(
        username=username,
        password=password,
        server_address=field("serveraddress", "ServerAddress"),
        identity_token=field("identitytoken", "IdentityToken"),
        registry_token=field("registrytoken", "RegistryToken"),
    )


def from_header(value: str | None) -> Credentials:
    """`X-Registry-Auth`: base64url JSON (padding optional; the CLI strips it, older
    clients send standard base64). A header that does not decode counts as none, as
    moby does for the pull and push endpoints."""
    if not value:
        return NONE
    padded = value + "=" * (-len(value) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
        doc = json.loads(raw)
    except (binascii.Error, ValueError):
        return NONE
    try:
        return from_auth_config(doc)
    except InvalidParameter:
        return NONE
