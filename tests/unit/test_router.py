"""Routing and API versioning: prefixes, path parameters, Docker's version errors."""

from __future__ import annotations

import pytest

from essaim.api.request import QueryParams
from essaim.api.router import Router, split_version
from essaim.errors import InvalidParameter, NotFound


async def _handler(req: object) -> object:  # pragma: no cover - never awaited here
    return None


def test_versioned_and_unversioned_paths() -> None:
    assert split_version("/v1.45/containers/json") == ((1, 45), "/containers/json")
    assert split_version("/v1.24/_ping") == ((1, 24), "/_ping")
    assert split_version("/containers/json") == ((1, 45), "/containers/json")


def test_version_out_of_range_uses_mobys_wording() -> None:
    with pytest.raises(InvalidParameter, match=r"client version 1\.50 is too new"):
        split_version("/v1.50/info")
    with pytest.raises(InvalidParameter, match=r"Minimum supported API version is 1\.24"):
        split_version("/v1.12/info")


def test_path_parameter_spans_slashes_only_when_asked() -> None:
    router = Router()
    router.get("/images/{name:path}/json", _handler)
    router.post("/containers/{id}/start", _handler)
    _, params = router.resolve("GET", "/images/localhost:5000/bb/json")
    assert params == {"name": "localhost:5000/bb"}
    _, params = router.resolve("POST", "/containers/abc/start")
    assert params == {"id": "abc"}
    with pytest.raises(NotFound):
        router.resolve("POST", "/containers/a/b/start")
    with pytest.raises(NotFound):
        router.resolve("GET", "/containers/abc/start")


def test_get_routes_answer_head_too() -> None:
    router = Router()
    router.get("/_ping", _handler)
    assert router.resolve("HEAD", "/_ping")[0] is _handler


def test_query_booleans_follow_mobys_rules() -> None:
    q = QueryParams("a=1&b=0&c=false&d=&e=yes&t=x&t=y")
    assert q.get_bool("a") and q.get_bool("e")
    assert not q.get_bool("b") and not q.get_bool("c") and not q.get_bool("d")
    assert not q.get_bool("missing")
    assert q.get_all("t") == ["x", "y"]
    with pytest.raises(InvalidParameter):
        QueryParams("n=abc").get_int("n")
