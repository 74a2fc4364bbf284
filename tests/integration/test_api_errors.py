"""Raw Engine API behaviour: ping headers, versions, malformed bodies, error shapes."""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any

from tests.integration.daemon import EssaimDaemon


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self.path)
        self.sock = sock


def call(
    daemon: EssaimDaemon, method: str, path: str, body: bytes | None = None
) -> tuple[int, dict[str, str], Any]:
    conn = UnixConnection(str(daemon.socket))
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    content_type = resp.getheader("Content-Type") or ""
    payload = json.loads(raw) if raw and "json" in content_type else raw
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload


def test_ping_head_and_get(daemon: EssaimDaemon) -> None:
    status, headers, body = call(daemon, "HEAD", "/_ping")
    assert status == 200 and body == b""
    assert headers["api-version"] == "1.45"
    assert headers["ostype"] == "linux"
    assert headers["content-length"] == "0"
    status, headers, body = call(daemon, "GET", "/_ping")
    assert (status, body) == (200, b"OK")
    assert headers["docker-experimental"] == "false"
    assert headers["swarm"] == "inactive"


def test_version_paths_and_limits(daemon: EssaimDaemon) -> None:
    status, _, body = call(daemon, "GET", "/version")
    assert status == 200 and body["ApiVersion"] == "1.45" and body["MinAPIVersion"] == "1.24"
    assert call(daemon, "GET", "/v1.24/version")[0] == 200
    status, _, body = call(daemon, "GET", "/v1.50/version")
    assert status == 400
    assert (
        body["message"] == "client version 1.50 is too new. Maximum supported API version is 1.45"
    )
    status, _, body = call(daemon, "GET", "/v1.12/version")
    assert status == 400 and "is too old" in body["message"]


def test_info_reports_real_figures(daemon: EssaimDaemon) -> None:
    status, _, info = call(daemon, "GET", "/info")
    assert status == 200
    assert info["NCPU"] >= 1 and info["MemTotal"] > 0
    assert info["DockerRootDir"] == str(daemon.data_root)
    assert info["Driver"] == "overlay2"
    assert info["Images"] >= 1
    assert "runc" in info["Runtimes"]
    assert info["CgroupVersion"] in ("1", "2")


def test_malformed_json_body_is_400_and_creates_nothing(daemon: EssaimDaemon) -> None:
    before = call(daemon, "GET", "/containers/json?all=1")[2]
    status, _, body = call(daemon, "POST", "/containers/create", b'{"Image": "busybox",')
    assert status == 400
    assert "invalid" in body["message"].lower()
    assert call(daemon, "GET", "/containers/json?all=1")[2] == before


def test_unknown_route_and_container(daemon: EssaimDaemon) -> None:
    status, _, body = call(daemon, "GET", "/containers/nope/json")
    assert (status, body) == (404, {"message": "No such container: nope"})
    status, _, body = call(daemon, "GET", "/nosuch/route")
    assert status == 404 and body == {"message": "page not found"}


def test_wait_with_invalid_condition_is_400(daemon: EssaimDaemon) -> None:
    cid = daemon.docker("create", "busybox", "true").stdout.strip()
    status, _, body = call(daemon, "POST", f"/containers/{cid}/wait?condition=bogus")
    assert status == 400 and "invalid condition" in body["message"]
    daemon.docker("rm", cid)
