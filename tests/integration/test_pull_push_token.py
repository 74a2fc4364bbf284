"""Token authentication against docker-registry: a token server of the test's own
(JWTs signed with a self-signed key, PyJWT) grants what a known user asks and nothing
to anonymous clients; login, push and pull go through the Bearer challenge.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.integration.daemon import EssaimDaemon, fails, ok
from tests.integration.registries import DOCKER_REGISTRY, DockerRegistry, make_certificate

pytestmark = pytest.mark.skipif(not DOCKER_REGISTRY.exists(), reason="needs docker-registry")

SERVICE = "essaim-test"
ISSUER = "essaim-test-issuer"
USER, PASSWORD = "alice", "t0ken-pw"


class TokenServer:
    """Grants the scopes a request asks to `USER`, nothing to anonymous requests, and
    401 to a wrong password."""

    def __init__(self, directory: Path) -> None:
        self.cert_path, key_path = make_certificate(directory, "token-signer", ec_key=True)
        self.key = key_path.read_bytes()  # PEM, as PyJWT takes it
        cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        self.x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                query = parse_qs(urlparse(self.path).query)
                auth = self.headers.get("Authorization", "")
                account = ""
                if auth.startswith("Basic "):
                    user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                    if (user, pw) != (USER, PASSWORD):
                        self._reply(401, b'{"details":"invalid username or password"}')
                        return
                    account = user
                access = []
                if account:
                    for scope in query.get("scope", []):
                        kind, name, actions = scope.split(":")
                        access.append({"type": kind, "name": name, "actions": actions.split(",")})
                self._reply(200, server.token(account, access).encode())

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def token(self, account: str, access: list[dict[str, object]]) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER, "sub": account, "aud": SERVICE, "exp": now + 300, "nbf": now - 10,
            "iat": now, "jti": secrets.token_hex(8), "access": access,
        }  # fmt: skip
        signed = jwt.encode(claims, self.key, algorithm="ES256", headers={"x5c": [self.x5c]})
        return json.dumps({"token": signed, "expires_in": 300})

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerRegistry]:
    root = tmp_path_factory.mktemp("es-distribution-token")
    server = TokenServer(root)
    registry = DockerRegistry(
        root / "registry",
        token={
            "realm": f"http://127.0.0.1:{server.port}/token", "service": SERVICE,
            "issuer": ISSUER, "rootcertbundle": str(server.cert_path),
        },
    )  # fmt: skip
    try:
        with registry:
            yield registry
    finally:
        server.close()


def test_bearer_token_flow_login_push_pull(
    daemon: EssaimDaemon, token_registry: DockerRegistry
) -> None:
    address = token_registry.address
    ref = f"{address}/tok:v1"
    ok(daemon.docker("tag", "busybox", ref))
    fails(
        daemon.docker("pull", f"{address}/tok:v1"),
        f"pull access denied for {address}/tok, repository does not exist or may require "
        "'docker login'",
    )
    fails(
        daemon.docker("login", "-u", USER, "--password-stdin", address, input="nope\n"),
        "invalid username or password",
    )
    login = daemon.docker("login", "-u", USER, "--password-stdin", address, input=PASSWORD + "\n")
    assert "Login Succeeded" in login.stdout, login.stderr
    ok(daemon.docker("push", ref))
    ok(daemon.docker("rmi", ref))
    pulled = ok(daemon.docker("pull", ref))
    assert f"Status: Downloaded newer image for {ref}" in pulled
    ok(daemon.docker("logout", address))
