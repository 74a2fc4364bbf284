"""The catalog of a registry with more than one page of repositories, asked the same
questions of `essaim registry serve` and of Debian's docker-registry 2.8 (the reference).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.registries import (
    DOCKER_REGISTRY,
    DockerRegistry,
    EssaimRegistry,
    RegistryProcess,
    sha256,
)

REPOSITORIES = [f"team/r{i:03d}" for i in range(120)]


def push_blob(client: httpx.Client, name: str, data: bytes) -> None:
    """POST then PUT: the upload flow both registries take (2.8 has no one-shot POST)."""
    started = client.post(f"/v2/{name}/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    joiner = "&" if "?" in location else "?"
    done = client.put(f"{location}{joiner}digest={sha256(data)}", content=data)
    assert done.status_code == 201, done.text


@pytest.fixture(scope="module", params=["essaim", "docker-registry"])
def client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    root = tmp_path_factory.mktemp("es-catalog") / "root"
    if request.param == "docker-registry":
        if not DOCKER_REGISTRY.exists():
            pytest.skip("docker-registry is not installed")
        server: RegistryProcess = DockerRegistry(root)
    else:
        server = EssaimRegistry(root)
    with server, httpx.Client(base_url=server.url, timeout=30) as c:
        # A repository holding one layer is listed (in both), no manifest needed.
        for name in REPOSITORIES:
            push_blob(c, name, name.encode())
        yield c


def catalog(client: httpx.Client, query: str = "") -> httpx.Response:
    response = client.get(f"/v2/_catalog{query}")
    assert response.status_code == 200, response.text
    return response


def test_catalog_without_n_is_a_page_of_100_with_a_link_to_the_rest(
    client: httpx.Client,
) -> None:
    first = catalog(client)
    assert first.json() == {"repositories": REPOSITORIES[:100]}
    assert first.headers["Link"] == '</v2/_catalog?last=team%2Fr099&n=100>; rel="next"'
    rest = catalog(client, "?last=team%2Fr099&n=100")
    assert rest.json() == {"repositories": REPOSITORIES[100:]}
    assert "Link" not in rest.headers


@pytest.mark.parametrize("n", ["", "abc", "-1"])
def test_catalog_with_an_unusable_n_uses_the_default_page(client: httpx.Client, n: str) -> None:
    response = catalog(client, f"?n={n}")
    assert response.json()["repositories"] == REPOSITORIES[:100]
    assert response.headers["Link"] == '</v2/_catalog?last=team%2Fr099&n=100>; rel="next"'


def test_catalog_pages_of_n_after_last(client: httpx.Client) -> None:
    page = catalog(client, "?n=5&last=team/r050")
    assert page.json()["repositories"] == REPOSITORIES[51:56]
    assert page.headers["Link"] == '</v2/_catalog?last=team%2Fr055&n=5>; rel="next"'
    assert "Link" not in catalog(client, "?n=1000").headers
    assert catalog(client, "?n=1000").json()["repositories"] == REPOSITORIES
    empty = catalog(client, "?n=0")
    assert empty.json() == {"repositories": []}
    assert "Link" not in empty.headers


def test_catalog_refuses_more_than_1000_a_page(client: httpx.Client) -> None:
    response = client.get("/v2/_catalog?n=1001")
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {
            "code": "PAGINATION_NUMBER_INVALID",
            "message": "invalid number of results requested",
            "detail": {"n": 1001},
        }
    ]


def test_catalog_of_an_empty_registry(tmp_path: Path) -> None:
    with EssaimRegistry(tmp_path / "root") as server:
        response = httpx.get(f"{server.url}/v2/_catalog")
    assert response.json() == {"repositories": []}
    assert "Link" not in response.headers
