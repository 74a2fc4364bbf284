"""Authentication of `essaim registry`: htpasswd Basic auth, bearer tokens from its own
token server, the same token server as the realm of Debian's docker-registry, and TLS.
"""

from __future__ import annotations

import base64
import shutil
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.registries import (
    DOCKER_REGISTRY,
    DockerRegistry,
    EssaimRegistry,
    auth_file,
    make_certificate,
    make_image,
    sha256,
    skopeo,
    write_htpasswd,
    write_oci_layout,
)

USERS = {"alice": "wonderland"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("es-registry-secrets")
    write_htpasswd(directory / "htpasswd", USERS)
    make_certificate(directory, "token")
    make_certificate(directory, "tls")
    return directory


def serving(
    tmp_path_factory: pytest.TempPathFactory, secrets_dir: Path, *args: str
) -> Iterator[EssaimRegistry]:
    """An essaim registry of the module's, checking passwords against the module's
    htpasswd, with more flags in `args`."""
    root = tmp_path_factory.mktemp("es-registry-auth") / "root"
    with EssaimRegistry(root, ["--htpasswd", str(secrets_dir / "htpasswd"), *args]) as server:
        yield server


@pytest.fixture(scope="module")
def basic_registry(
    tmp_path_factory: pytest.TempPathFactory, secrets_dir: Path
) -> Iterator[EssaimRegistry]:
    yield from serving(tmp_path_factory, secrets_dir, "--realm", "essaim test")


@pytest.fixture(scope="module")
def token_registry(
    tmp_path_factory: pytest.TempPathFactory, secrets_dir: Path
) -> Iterator[EssaimRegistry]:
    yield from serving(
        tmp_path_factory, secrets_dir,
        "--token-cert", str(secrets_dir / "token.crt"),
        "--token-key", str(secrets_dir / "token.key"),
        "--token-service", "essaim-test", "--token-issuer", "essaim-test-issuer",
    )  # fmt: skip


def test_basic_auth_challenges_refuses_and_admits(basic_registry: EssaimRegistry) -> None:
    url = basic_registry.url
    anonymous = httpx.get(f"{url}/v2/")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == 'Basic realm="essaim test"'
    assert anonymous.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert httpx.get(f"{url}/v2/", headers=basic("alice", "wrong")).status_code == 401
    assert httpx.get(f"{url}/v2/", headers=basic("bob", "wonderland")).status_code == 401
    assert httpx.get(f"{url}/v2/", headers=basic("alice", "wonderland")).status_code == 200


def test_skopeo_with_basic_credentials(basic_registry: EssaimRegistry, tmp_path: Path) -> None:
    write_oci_layout(tmp_path / "src", make_image([{"f": b"basic"}]), "v1")
    dest = f"docker://{basic_registry.address}/auth/basic:1"
    refused = skopeo("copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'src'}:v1", dest)
    assert refused.returncode != 0
    assert "authentication required" in refused.stderr or "unauthorized" in refused.stderr.lower()
    ok = skopeo(
        "copy", "--dest-tls-verify=false", "--dest-creds", "alice:wonderland",
        f"oci:{tmp_path / 'src'}:v1", dest,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr


def test_token_flow_scopes_and_refusals(token_registry: EssaimRegistry) -> None:
    url = token_registry.url
    challenge = httpx.get(f"{url}/v2/tok/img/tags/list")
    assert challenge.status_code == 401
    assert challenge.headers["WWW-Authenticate"] == (
        f'Bearer realm="{url}/auth/token",service="essaim-test",scope="repository:tok/img:pull"'
    )
    params = {"service": "essaim-test", "scope": "repository:tok/img:pull,push"}
    assert (
        httpx.get(f"{url}/auth/token", params=params, headers=basic("alice", "nope")).status_code
        == 401
    )
    answer = httpx.get(
        f"{url}/auth/token", params=params, headers=basic("alice", "wonderland")
    ).json()
    assert set(answer) >= {"token", "access_token", "expires_in", "issued_at"}
    bearer = {"Authorization": f"Bearer {answer['token']}"}
    data = b"token pushed"
    r = httpx.post(
        f"{url}/v2/tok/img/blobs/uploads/",
        params={"digest": sha256(data)},
        content=data,
        headers=bearer,
    )
    assert r.status_code == 201, r.text
    # The token names one repository: another one needs another token.
    other = httpx.get(f"{url}/v2/tok/other/blobs/{sha256(data)}", headers=bearer)
    assert other.status_code == 401
    assert 'error="insufficient_scope"' in other.headers["WWW-Authenticate"]
    # Anonymous tokens grant nothing.
    anonymous = httpx.get(f"{url}/auth/token", params=params).json()
    r = httpx.get(
        f"{url}/v2/tok/img/blobs/{sha256(data)}",
        headers={"Authorization": f"Bearer {anonymous['token']}"},
    )
    assert r.status_code == 401
    forged = httpx.get(
        f"{url}/v2/", headers={"Authorization": f"Bearer {answer['token'][:-4]}AAAA"}
    )
    assert forged.status_code == 401
    assert 'error="invalid_token"' in forged.headers["WWW-Authenticate"]


def test_oauth2_password_and_refresh_grants(token_registry: EssaimRegistry) -> None:
    url = token_registry.url
    form = {
        "grant_type": "password", "username": "alice", "password": "wonderland",
        "service": "essaim-test", "scope": "repository:tok/oauth:pull", "access_type": "offline",
        "client_id": "test",
    }  # fmt: skip
    first = httpx.post(f"{url}/auth/token", data=form).json()
    refresh = first["refresh_token"]
    second = httpx.post(
        f"{url}/auth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "service": "essaim-test",
            "scope": "registry:catalog:*",
        },
    )
    assert second.status_code == 200
    catalog = httpx.get(
        f"{url}/v2/_catalog", headers={"Authorization": f"Bearer {second.json()['access_token']}"}
    )
    assert catalog.status_code == 200
    # A refresh token is not an access token.
    assert (
        httpx.get(f"{url}/v2/", headers={"Authorization": f"Bearer {refresh}"}).status_code == 401
    )


def test_skopeo_through_token_auth(token_registry: EssaimRegistry, tmp_path: Path) -> None:
    write_oci_layout(tmp_path / "src", make_image([{"f": b"token"}]), "v1")
    creds = auth_file(tmp_path / "auth.json", token_registry.address, "alice", "wonderland")
    result = skopeo(
        "copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'src'}:v1",
        f"docker://{token_registry.address}/tok/skopeo:1", auth_file=creds,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    back = skopeo(
        "copy", "--src-tls-verify=false", f"docker://{token_registry.address}/tok/skopeo:1",
        f"dir:{tmp_path / 'dir'}", auth_file=creds,
    )  # fmt: skip
    assert back.returncode == 0, back.stderr


@pytest.mark.skipif(not DOCKER_REGISTRY.exists(), reason="needs docker-registry")
def test_essaim_token_server_is_docker_registrys_realm(
    token_registry: EssaimRegistry, secrets_dir: Path, tmp_path: Path
) -> None:
    reference = DockerRegistry(
        tmp_path / "distribution",
        token={
            "realm": f"{token_registry.url}/auth/token",
            "service": "essaim-test",
            "issuer": "essaim-test-issuer",
            "rootcertbundle": str(secrets_dir / "token.crt"),
        },
    )
    write_oci_layout(tmp_path / "src", make_image([{"f": b"interop"}]), "v1")
    with reference:
        dest = f"docker://{reference.address}/interop/token:1"
        refused = skopeo("copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'src'}:v1", dest)
        assert refused.returncode != 0
        creds = auth_file(tmp_path / "auth.json", reference.address, "alice", "wonderland")
        ok = skopeo(
            "copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'src'}:v1", dest, auth_file=creds
        )
        assert ok.returncode == 0, ok.stderr
        tags = skopeo("list-tags", "--tls-verify=false", dest.rsplit(":", 1)[0], auth_file=creds)
        assert '"1"' in tags.stdout, tags.stderr


def test_tls(tmp_path: Path, secrets_dir: Path) -> None:
    server = EssaimRegistry(
        tmp_path / "root", tls=(secrets_dir / "tls.crt", secrets_dir / "tls.key")
    )
    trust = ssl.create_default_context(cafile=str(secrets_dir / "tls.crt"))
    with server:
        with httpx.Client(base_url=server.url, verify=trust) as c:
            assert c.get("/v2/").status_code == 200
            data = b"over tls" * 1000
            r = c.post("/v2/tls/blob/blobs/uploads/", params={"digest": sha256(data)}, content=data)
            assert r.status_code == 201
            assert c.get(f"/v2/tls/blob/blobs/{sha256(data)}").content == data
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/v2/")  # not a certificate the default store trusts
        certs = tmp_path / "certs"
        certs.mkdir()
        shutil.copy(secrets_dir / "tls.crt", certs / "ca.crt")
        write_oci_layout(tmp_path / "src", make_image([{"f": b"tls"}]), "v1")
        result = skopeo(
            "copy", "--dest-cert-dir", str(certs), f"oci:{tmp_path / 'src'}:v1",
            f"docker://{server.address}/tls/img:1",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
