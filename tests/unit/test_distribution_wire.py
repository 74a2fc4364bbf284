"""The distribution client's wire formats: challenges, credentials, registry errors,
progress bars, platforms and the insecure-registry rules, as Docker reads and writes them.
"""

from __future__ import annotations

import asyncio
import base64
import json

import httpx
import pytest

from essaim.errors import InvalidParameter, NotFound
from essaim.image import platforms
from essaim.image.distribution import challenge, credentials, errors, hosts, progress
from essaim.image.distribution.hosts import RegistryHosts
from essaim.image.distribution.login import registry_domain
from essaim.image.distribution.push import docker_manifest
from essaim.image.oci import DOCKER_LAYER_GZIP, DOCKER_MANIFEST, Descriptor
from essaim.image.reference import DEFAULT_DOMAIN


def test_bearer_challenge_with_quoted_commas_and_a_second_scheme() -> None:
    parsed = challenge.parse(
        ['Bearer realm="https://auth.test/token",service="reg",scope="repository:a/b:pull,push"',
         'Basic realm="basic-realm"']
    )  # fmt: skip
    assert parsed[0] == challenge.Challenge(
        "bearer",
        {"realm": "https://auth.test/token", "service": "reg", "scope": "repository:a/b:pull,push"},
    )
    assert parsed[1] == challenge.Challenge("basic", {"realm": "basic-realm"})


def test_registry_auth_header_is_base64url_json_and_e30_is_none() -> None:
    assert credentials.from_header("e30=").anonymous
    assert credentials.from_header(None).anonymous
    doc = {"username": "al", "password": "p?>", "serveraddress": "127.0.0.1:5000"}
    raw = base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")
    got = credentials.from_header(raw)
    assert (got.username, got.password, got.server_address) == ("al", "p?>", "127.0.0.1:5000")
    auth = base64.b64encode(b"bob:pw").decode()
    from_auth = credentials.from_auth_config({"auth": auth})
    assert (from_auth.username, from_auth.password) == ("bob", "pw")
    assert "pw" not in repr(from_auth)


def _response(status: int, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=body, headers=headers or {})


def test_registry_error_bodies_read_as_dockers_client_does() -> None:
    body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'
    err = errors.from_response(_response(404, body), body)
    assert err.message == "manifest unknown: manifest unknown"
    translated = errors.pull_error(err, "127.0.0.1:5000/bb", "127.0.0.1:5000/bb:v9")
    assert isinstance(translated, NotFound)
    assert translated.message == (
        "manifest for 127.0.0.1:5000/bb:v9 not found: manifest unknown: manifest unknown"
    )
    denied = errors.from_response(
        _response(401, b"", {"www-authenticate": 'Bearer realm="r",error="insufficient_scope"'}),
        b"",
    )
    assert errors.pull_error(denied, "bb", "bb:latest").message == (
        "pull access denied for bb, repository does not exist or may require 'docker login': "
        "denied: requested access to the resource is denied"
    )
    assert errors.from_response(_response(401, b""), b"").message == (
        "unauthorized: authentication required"
    )
    assert errors.from_response(_response(502, b"x"), b"x").message == (
        "received unexpected HTTP status: 502 Bad Gateway"
    )


def test_progress_bar_is_jsonprogress_at_200_columns() -> None:
    assert progress.human_size(1_081_000) == "1.081MB"
    assert progress.human_size(512) == "512B"
    assert progress.progress_bar(1_081_000, 52_550_000) == ("[=>" + " " * 49 + "]  1.081MB/52.55MB")
    assert progress.progress_bar(10, 10) == "[" + "=" * 50 + ">]      10B/10B"
    assert progress.progress_bar(0, 0) == ""


def test_meter_is_rate_limited_and_always_reports_the_end() -> None:
    sent: list[progress.Message] = []
    meter = progress.Meter(sent.append, "Downloading", "abc", 100 << 20)
    for _ in range(1600):
        meter.advance(64 << 10)
    meter.finish()
    assert 1 <= len(sent) <= 20
    assert sent[-1]["progressDetail"] == {"current": 100 << 20, "total": 100 << 20}


def test_platforms_parse_normalise_and_choose() -> None:
    assert str(platforms.parse("linux/arm64")) == "linux/arm64"
    assert str(platforms.parse("linux/aarch64/v8")) == "linux/arm64"
    assert str(platforms.parse("linux/arm")) == "linux/arm/v7"
    assert platforms.parse("arm64").os == "linux"
    with pytest.raises(InvalidParameter):
        platforms.parse("linux/a/b/c")
    entries = [
        (platforms.parse("linux/arm/v6"), "v6"),
        (platforms.parse("linux/amd64"), "amd"),
        (platforms.parse("linux/arm/v7"), "v7"),
    ]
    assert platforms.choose(platforms.parse("linux/arm/v7"), entries) == "v7"
    assert platforms.choose(platforms.parse("linux/amd64"), entries) == "amd"
    assert platforms.choose(platforms.parse("linux/s390x"), entries) is None


def test_insecure_registries_follow_dockerds_rules() -> None:
    hosts = RegistryHosts(["myreg:5000", "10.1.0.0/16", "http://other:1"])
    assert hosts.info_wire()["InsecureRegistryCIDRs"] == ["10.1.0.0/16", "::1/128", "127.0.0.0/8"]
    assert set(hosts.info_wire()["IndexConfigs"]) == {"myreg:5000", "other:1", "docker.io"}

    async def secure(name: str) -> bool:
        return await hosts.is_secure(name)

    assert not asyncio.run(secure("myreg:5000"))
    assert not asyncio.run(secure("127.0.0.1:5000"))
    assert not asyncio.run(secure("[::1]:5000"))
    assert not asyncio.run(secure("10.1.2.3:443"))
    assert asyncio.run(secure("192.0.2.7:5000"))
    assert asyncio.run(secure("docker.io"))
    with pytest.raises(InvalidParameter):
        RegistryHosts(["ftp://x"])


def test_login_server_addresses() -> None:
    assert registry_domain("") == "docker.io"
    assert registry_domain("https://index.docker.io/v1/") == "docker.io"
    assert registry_domain("http://127.0.0.1:5000/v2/") == "127.0.0.1:5000"
    assert registry_domain("[::1]:5000") == "[::1]:5000"


def test_docker_manifest_is_schema2_with_distributions_layout() -> None:
    config = Descriptor("x", "sha256:" + "a" * 64, 10)
    layer = Descriptor(DOCKER_LAYER_GZIP, "sha256:" + "b" * 64, 20)
    text = docker_manifest(config, [layer], DOCKER_MANIFEST).decode()
    assert text.startswith('{\n   "schemaVersion": 2,\n   "mediaType": ')
    doc = json.loads(text)
    assert doc["config"] == {
        "mediaType": "application/vnd.docker.container.image.v1+json",
        "size": 10,
        "digest": "sha256:" + "a" * 64,
    }
    assert list(doc["layers"][0]) == ["mediaType", "size", "digest"]


def test_mirrors_are_urls_without_a_path() -> None:
    assert hosts.parse_mirror("http://127.0.0.1:5000/") == "http://127.0.0.1:5000"
    for bad in ("127.0.0.1:5000", "ftp://mirror.test", "https://mirror.test/v2/"):
        with pytest.raises(InvalidParameter, match="invalid mirror"):
            hosts.parse_mirror(bad)


def test_the_default_registry_is_tried_through_its_mirrors_first() -> None:
    registries = hosts.RegistryHosts(mirrors=["http://127.0.0.1:5000", "https://127.0.0.2:5001"])
    endpoints = asyncio.run(registries.endpoints(DEFAULT_DOMAIN))
    assert [e.base for e in endpoints] == [
        "http://127.0.0.1:5000",
        "https://127.0.0.2:5001",
        f"https://{DEFAULT_DOMAIN}",
    ]
    # Loopback is insecure for mirrors too; the default registry's own is verified.
    assert [e.secure for e in endpoints] == [False, False, True]
    assert registries.info_wire()["Mirrors"] == [
        "http://127.0.0.1:5000/",
        "https://127.0.0.2:5001/",
    ]
