"""Docker registry bearer tokens: JWTs signed (RS256 or ES256) by a token issuer whose
certificate the registry trusts, with `iss`, `aud` (the service), `exp` and `access`.

The header names the key the way the reference registry looks it up (libtrust's key
ID of the certificate's public key), so our tokens work there too.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from essaim.image.registry.access import Access

ALGORITHMS = ["RS256", "ES256"]
LEEWAY = 60  # seconds of clock skew tolerated, as the reference registry does
REFRESH_LIFETIME = 90 * 24 * 3600


class InvalidToken(Exception):
    pass


def key_id(public_key: PublicKeyTypes) -> str:
    """libtrust's key ID: the first 240 bits of the SHA-256 of the DER public key, in
    base32, in groups of four."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def load_certificates(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def _access_claim(accesses: list[Access]) -> list[dict[str, Any]]:
    grouped: dict[tuple[str, str], list[str]] = {}
    for a in accesses:
        actions = grouped.setdefault((a.type, a.name), [])
        if a.action not in actions:
            actions.append(a.action)
    return [{"type": t, "name": n, "actions": acts} for (t, n), acts in grouped.items()]


class TokenVerifier:
    """Checks tokens against the issuer certificates of `--token-cert` (a bundle)."""

    def __init__(self, certificates: list[x509.Certificate], issuer: str, service: str) -> None:
        if not certificates:
            raise ValueError("no certificate to verify tokens with")
        self.issuer = issuer
        self.service = service
        self._keys = {key_id(c.public_key()): c.public_key() for c in certificates}

    def verify(self, token: str) -> list[Access]:
        """What the token grants; InvalidToken when it is not one of ours, expired,
        for another service or from another issuer."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from None
        kid = header.get("kid")
        if kid is not None and kid not in self._keys:
            raise InvalidToken(f"token signed by an unknown key {kid}")
        keys = [self._keys[kid]] if kid is not None else list(self._keys.values())
        claims: dict[str, Any] | None = None
        error = "no key verifies the token"
        for key in keys:
            try:
                claims = jwt.decode(
                    token,
                    key=key,  # type: ignore[arg-type]
                    algorithms=ALGORITHMS,
                    audience=self.service,
                    issuer=self.issuer,
                    leeway=LEEWAY,
                    options={"require": ["exp", "iss", "aud"]},
                )
                break
            except (jwt.InvalidSignatureError, jwt.InvalidKeyError, TypeError) as exc:
                error = str(exc)  # another key of the bundle may fit (no kid given)
            except jwt.PyJWTError as exc:
                raise InvalidToken(str(exc)) from None
        if claims is None:
            raise InvalidToken(error)
        if claims.get("essaim_refresh"):
            raise InvalidToken("a refresh token is no access token")
        granted: list[Access] = []
        for entry in claims.get("access") or []:
            if not isinstance(entry, dict):
                continue
            kind, name, actions = entry.get("type"), entry.get("name"), entry.get("actions")
            if isinstance(kind, str) and isinstance(name, str) and isinstance(actions, list):
                granted.extend(Access(kind, name, str(a)) for a in actions)
        return granted


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int
    issued_at: float


class TokenIssuer:
    """Signs tokens with `--token-key`; `--token-cert` is what registries trust."""

    def __init__(
        self, key_path: Path, certificate: x509.Certificate, issuer: str, lifetime: int = 300
    ) -> None:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if isinstance(key, rsa.RSAPrivateKey):
            self.algorithm = "RS256"
        elif isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1":
            self.algorithm = "ES256"
        else:
            raise ValueError("the token key must be RSA or ECDSA P-256")
        if certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ) != key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ):
            raise ValueError("the token key does not match the token certificate")
        self._key = key
        self._kid = key_id(key.public_key())
        self.issuer = issuer
        self.lifetime = lifetime

    def _sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(
            claims, self._key, algorithm=self.algorithm, headers={"kid": self._kid, "typ": "JWT"}
        )

    def issue(self, subject: str, service: str, access: list[Access]) -> IssuedToken:
        now = time.time()
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": service,
            "exp": int(now) + self.lifetime,
            "nbf": int(now) - 1,
            "iat": int(now),
            "jti": secrets.token_hex(16),
            "access": _access_claim(access),
        }
        return IssuedToken(self._sign(claims), self.lifetime, now)

    def refresh_token(self, subject: str, service: str) -> str:
        now = int(time.time())
        return self._sign(
            {
                "iss": self.issuer,
                "sub": subject,
                "aud": service,
                "exp": now + REFRESH_LIFETIME,
                "iat": now,
                "jti": secrets.token_hex(16),
                "essaim_refresh": True,
            }
        )

    def refresh_subject(self, token: str, service: str) -> str:
        """The user a refresh token of ours was issued to; InvalidToken otherwise."""
        try:
            claims = jwt.decode(
                token,
                key=self._key.public_key(),
                algorithms=[self.algorithm],
                audience=service,
                issuer=self.issuer,
                leeway=LEEWAY,
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from None
        if not claims.get("essaim_refresh") or not isinstance(claims.get("sub"), str):
            raise InvalidToken("not a refresh token")
        return str(claims["sub"])
