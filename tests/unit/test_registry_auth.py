"""Registry authentication pieces: htpasswd files, scopes, token verification (issuer,
audience, expiry, signature, access), the libtrust key ID, and error bodies."""

from __future__ import annotations

import json
import time
from pathlib import Path

import bcrypt
import jwt
import pytest
from cryptography import x509

from essaim.image.registry.access import Access, allows, parse_scopes, scope_string
from essaim.image.registry.errors import RegistryError
from essaim.image.registry.htpasswd import Htpasswd
from essaim.image.registry.tokens import InvalidToken, TokenIssuer, TokenVerifier, key_id
from tests.integration.registries import make_certificate

PULL = Access("repository", "a/b", "pull")
PUSH = Access("repository", "a/b", "push")


def test_htpasswd_reads_bcrypt_entries_only(tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode().replace("$2b$", "$2y$")
    path = tmp_path / "htpasswd"
    path.write_text(f"# comment\nalice:{hashed}\nbob:{{SHA}}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\nbroken\n")
    users = Htpasswd(path)
    assert users.verify("alice", "secret")
    assert users.verify("alice", "secret")  # remembered
    assert not users.verify("alice", "Secret")
    assert not users.verify("bob", "password")
    # A changed file is read again: an old password stops working.
    path.write_text(f"alice:{bcrypt.hashpw(b'new', bcrypt.gensalt(4)).decode()}\n")
    assert users.verify("alice", "new")
    assert not users.verify("alice", "secret")


def test_scopes_round_trip() -> None:
    scopes = parse_scopes(
        ["repository:a/b:pull,push registry:catalog:*", "repository:localhost:5000/x:pull"]
    )
    assert scopes == [
        PULL,
        PUSH,
        Access("registry", "catalog", "*"),
        Access("repository", "localhost:5000/x", "pull"),
    ]
    assert scope_string([PULL, PUSH]) == "repository:a/b:pull,push"
    assert allows([Access("repository", "a/b", "*")], PUSH)
    assert not allows([PULL], PUSH)
    assert not allows([Access("repository", "a", "pull")], PULL)


@pytest.fixture(params=[False, True], ids=["rsa", "ecdsa"])
def issuer_files(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Path]:
    return make_certificate(tmp_path, "issuer", ec_key=request.param)


def _issuer(files: tuple[Path, Path], name: str = "iss") -> TokenIssuer:
    cert = x509.load_pem_x509_certificate(files[0].read_bytes())
    return TokenIssuer(files[1], cert, name)


def _verifier(files: tuple[Path, Path], issuer: str = "iss", service: str = "svc") -> TokenVerifier:
    return TokenVerifier(x509.load_pem_x509_certificates(files[0].read_bytes()), issuer, service)


def test_a_token_grants_what_it_says(issuer_files: tuple[Path, Path]) -> None:
    token = _issuer(issuer_files).issue("alice", "svc", [PULL]).token
    assert _verifier(issuer_files).verify(token) == [PULL]
    assert jwt.get_unverified_header(token)["kid"] == key_id(
        x509.load_pem_x509_certificate(issuer_files[0].read_bytes()).public_key()
    )


def test_wrong_issuer_audience_or_key_is_refused(
    issuer_files: tuple[Path, Path], tmp_path: Path
) -> None:
    token = _issuer(issuer_files).issue("alice", "svc", [PULL]).token
    with pytest.raises(InvalidToken):
        _verifier(issuer_files, issuer="someone-else").verify(token)
    with pytest.raises(InvalidToken):
        _verifier(issuer_files, service="other-service").verify(token)
    stranger = make_certificate(tmp_path, "stranger")
    with pytest.raises(InvalidToken):
        _verifier(stranger).verify(token)


def test_expired_token_is_refused(issuer_files: tuple[Path, Path]) -> None:
    issuer = _issuer(issuer_files)
    issuer.lifetime = -120  # beyond the leeway
    with pytest.raises(InvalidToken, match="expired"):
        _verifier(issuer_files).verify(issuer.issue("alice", "svc", [PULL]).token)


def test_a_refresh_token_grants_nothing(issuer_files: tuple[Path, Path]) -> None:
    issuer = _issuer(issuer_files)
    refresh = issuer.refresh_token("alice", "svc")
    assert issuer.refresh_subject(refresh, "svc") == "alice"
    with pytest.raises(InvalidToken):
        _verifier(issuer_files).verify(refresh)
    with pytest.raises(InvalidToken):
        issuer.refresh_subject(issuer.issue("alice", "svc", []).token, "svc")


def test_key_must_match_certificate(tmp_path: Path) -> None:
    cert, _ = make_certificate(tmp_path, "one")
    _, other_key = make_certificate(tmp_path, "two")
    with pytest.raises(ValueError, match="does not match"):
        TokenIssuer(other_key, x509.load_pem_x509_certificate(cert.read_bytes()), "iss")


def test_libtrust_key_id_shape(issuer_files: tuple[Path, Path]) -> None:
    kid = key_id(x509.load_pem_x509_certificate(issuer_files[0].read_bytes()).public_key())
    groups = kid.split(":")
    assert len(groups) == 12 and all(
        (len(g) == 4 and g.isalnum() and g.isupper()) or g.isdigit() for g in groups
    )


def test_error_body_has_the_spec_shape() -> None:
    err = RegistryError("BLOB_UNKNOWN", detail={"digest": "sha256:x"})
    assert err.status == 404
    assert json.loads(err.body()) == {
        "errors": [
            {
                "code": "BLOB_UNKNOWN",
                "message": "blob unknown to registry",
                "detail": {"digest": "sha256:x"},
            }
        ]
    }
    assert json.loads(RegistryError("DENIED").body())["errors"][0] == {
        "code": "DENIED",
        "message": "requested access to the resource is denied",
    }
    assert RegistryError("UNAUTHORIZED").status == 401


def test_tokens_carry_time_claims(issuer_files: tuple[Path, Path]) -> None:
    token = _issuer(issuer_files).issue("alice", "svc", [PULL, PUSH]).token
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["access"] == [{"type": "repository", "name": "a/b", "actions": ["pull", "push"]}]
    assert claims["nbf"] <= time.time() <= claims["exp"]
