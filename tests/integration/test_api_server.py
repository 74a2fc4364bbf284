"""The Engine API's HTTP layer as real clients use it: keep-alive, pipelining, concurrent
connections, chunked bodies both ways, hijack with half-close, versions, ping, errors.

A tiny byte-level client (`RawClient`) drives the unix socket so that what is tested is
what the daemon does, not what a pooling client library papers over.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.daemon import EssaimDaemon

TIMEOUT = 15.0


# ---- a tiny HTTP/1.1 client --------------------------------------------------------


@dataclass
class Reply:
    status: int
    reason: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request_bytes(
    method: str,
    path: str,
    body: bytes | dict[str, Any] | list[Any] | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    hdrs = {"Host": "api.moby.localhost", "User-Agent": "essaim-tests"}
    if isinstance(body, dict | list):
        body = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    if body is not None:
        hdrs["Content-Length"] = str(len(body))
    hdrs.update(headers or {})
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
    return head.encode() + b"\r\n" + (body or b"")


class RawClient:
    """One unix-socket connection, byte for byte: no pooling, no retries, no reconnects."""

    def __init__(self, path: Path, timeout: float = TIMEOUT) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.buffer = b""

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(
        self,
        method: str,
        path: str,
        body: bytes | dict[str, Any] | list[Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.sock.sendall(request_bytes(method, path, body, headers))

    def call(
        self,
        method: str,
        path: str,
        body: bytes | dict[str, Any] | list[Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        self.send(method, path, body, headers)
        return self.response(method)

    def _recv(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("the daemon closed the connection")
        self.buffer += data

    def read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            self._recv()
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def read_exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._recv()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def read_to_eof(self) -> bytes:
        while True:
            try:
                self._recv()
            except EOFError:
                data, self.buffer = self.buffer, b""
                return data

    def pending(self, wait: float = 0.0) -> bool:
        """Whether bytes (or EOF) are ready to read within `wait` seconds."""
        if self.buffer:
            return True
        return bool(select.select([self.sock], [], [], wait)[0])

    def read_head(self) -> tuple[int, str, dict[str, str]]:
        raw = self.read_until(b"\r\n\r\n").decode("latin-1")
        status_line, *lines = raw.split("\r\n")
        version, status, reason = status_line.split(" ", 2)
        assert version == "HTTP/1.1", status_line
        headers: dict[str, str] = {}
        for line in lines:
            name, _, value = line.partition(":")
            assert name.lower() not in headers, f"duplicate header {name}"
            headers[name.strip().lower()] = value.strip()
        return int(status), reason, headers

    def read_chunk(self) -> bytes | None:
        """One chunk of a chunked body; None for the last (zero-size) chunk."""
        size = int(self.read_until(b"\r\n").split(b";")[0], 16)
        if size == 0:
            assert self.read_until(b"\r\n") == b"", "no trailers expected"
            return None
        data = self.read_exact(size + 2)
        assert data.endswith(b"\r\n")
        return data[:-2]

    def response(self, method: str = "GET") -> Reply:
        status, reason, headers = self.read_head()
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif headers.get("transfer-encoding") == "chunked":
            assert "content-length" not in headers
            parts = []
            while (chunk := self.read_chunk()) is not None:
                parts.append(chunk)
            body = b"".join(parts)
        else:
            body = self.read_exact(int(headers["content-length"]))
        return Reply(status, reason, headers, body)


def call(
    daemon: EssaimDaemon,
    method: str,
    path: str,
    body: bytes | dict[str, Any] | list[Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    with RawClient(daemon.socket) as client:
        return client.call(method, path, body, headers)


def create(daemon: EssaimDaemon, name: str | None = None, **config: Any) -> str:
    body = {"Image": "busybox", **config}
    path = "/v1.45/containers/create" + (f"?name={name}" if name else "")
    reply = call(daemon, "POST", path, body)
    assert reply.status == 201, reply.body
    cid: str = reply.json()["Id"]
    return cid


def start(daemon: EssaimDaemon, cid: str) -> None:
    reply = call(daemon, "POST", f"/v1.45/containers/{cid}/start")
    assert reply.status == 204, reply.body


def remove(daemon: EssaimDaemon, cid: str) -> None:
    call(daemon, "DELETE", f"/v1.45/containers/{cid}?force=1")


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def demux(data: bytes) -> dict[int, bytes]:
    """Docker's multiplexed framing, checked strictly: every byte belongs to a frame."""
    out: dict[int, bytes] = {1: b"", 2: b""}
    while data:
        assert len(data) >= 8, f"truncated frame header {data!r}"
        stream, size = struct.unpack(">BxxxI", data[:8])
        assert stream in (1, 2), f"unexpected stream {stream} in {data[:16]!r}"
        payload, data = data[8 : 8 + size], data[8 + size :]
        assert len(payload) == size
        out[stream] += payload
    return out


def eventually(check: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def sleeper(daemon: EssaimDaemon) -> Iterator[str]:
    """A running container that stays up until the test removes it."""
    cid = create(daemon, Cmd=["sleep", "1000"])
    start(daemon, cid)
    yield cid
    remove(daemon, cid)


# ---- keep-alive, pipelining, concurrency -------------------------------------------


def test_keep_alive_serves_many_requests_on_one_connection(daemon: EssaimDaemon) -> None:
    with RawClient(daemon.socket) as client:
        replies = [
            client.call("HEAD", "/_ping"),
            client.call("GET", "/_ping"),
            client.call("GET", "/version"),
            client.call("GET", "/v1.45/containers/json?all=1"),
            client.call("GET", "/v1.45/nosuch/route"),  # errors keep the connection too
            client.call("POST", "/v1.45/containers/create", b'{"Image": '),
            client.call("GET", "/v1.45/containers/nosuch/json"),
            client.call("GET", "/v1.45/info"),
        ]
        statuses = [r.status for r in replies]
        assert statuses == [200, 200, 200, 200, 404, 400, 404, 200]
        assert all("close" not in r.headers.get("connection", "") for r in replies)
        assert client.call("GET", "/_ping").body == b"OK"


def test_head_of_a_streamed_endpoint_keeps_the_connection(daemon: EssaimDaemon) -> None:
    remove(daemon, create(daemon, Cmd=["true"]))  # some events to replay
    until = f"{time.time():.9f}"
    with RawClient(daemon.socket) as client:
        reply = client.call("HEAD", f"/v1.45/events?since=0&until={until}")
        assert reply.status == 200 and reply.body == b""
        assert reply.headers["content-type"] == "application/json"
        assert client.call("GET", "/_ping").body == b"OK"


def test_connection_close_is_honoured(daemon: EssaimDaemon) -> None:
    with RawClient(daemon.socket) as client:
        reply = client.call("GET", "/_ping", headers={"Connection": "close"})
        assert reply.body == b"OK" and reply.headers["connection"] == "close"
        assert client.read_to_eof() == b""


def test_pipelined_requests_are_answered_in_order(daemon: EssaimDaemon) -> None:
    stopped = create(daemon, Cmd=["true"])
    requests = [
        ("GET", "/_ping", None),
        ("POST", f"/v1.45/containers/{stopped}/wait?condition=not-running", None),  # streamed
        ("GET", "/v1.24/version", None),
        ("POST", "/v1.45/containers/create", b"{not json"),
        ("HEAD", "/_ping", None),
        ("GET", f"/v1.45/containers/{stopped}/json", None),
    ]
    try:
        with RawClient(daemon.socket) as client:
            client.sock.sendall(b"".join(request_bytes(m, p, b) for m, p, b in requests))
            replies = [client.response(m) for m, _, _ in requests]
            assert [r.status for r in replies] == [200, 200, 200, 400, 200, 200]
            assert replies[0].body == b"OK"
            assert replies[1].json()["StatusCode"] == 0
            assert replies[2].json()["ApiVersion"] == "1.45"
            assert replies[4].body == b""
            assert replies[5].json()["Id"] == stopped
            assert not client.pending(0.1), "nothing more was asked for"
    finally:
        remove(daemon, stopped)


def test_concurrent_connections_are_served_while_a_wait_is_pending(
    daemon: EssaimDaemon, sleeper: str
) -> None:
    with RawClient(daemon.socket) as waiter:
        waiter.send("POST", f"/v1.45/containers/{sleeper}/wait?condition=next-exit")
        status, _, headers = waiter.read_head()
        assert status == 200 and headers["transfer-encoding"] == "chunked"

        # Twenty connections open at once, each asked in reverse order of opening: a
        # server that served one connection at a time would stall on the first one.
        clients = [RawClient(daemon.socket) for _ in range(20)]
        try:
            for client in reversed(clients):
                client.send("GET", "/_ping")
            assert all(c.response().body == b"OK" for c in clients)
        finally:
            for client in clients:
                client.close()

        barrier = threading.Barrier(20, timeout=TIMEOUT)

        def burst(_: int) -> list[int]:
            with RawClient(daemon.socket) as client:
                barrier.wait()
                return [
                    client.call("GET", "/_ping").status,
                    client.call("GET", "/v1.45/containers/json").status,
                    client.call("GET", f"/v1.45/containers/{sleeper}/json").status,
                ]

        with ThreadPoolExecutor(max_workers=20) as pool:
            results = list(pool.map(burst, range(20), timeout=TIMEOUT))
        assert results == [[200, 200, 200]] * 20
        assert not waiter.pending(0), "the wait answered although the container still runs"

        assert call(daemon, "POST", f"/v1.45/containers/{sleeper}/kill").status == 204
        body = waiter.read_chunk()
        assert body is not None and json.loads(body)["StatusCode"] == 137
        assert waiter.read_chunk() is None


def test_malformed_request_gets_400_not_a_silent_close(daemon: EssaimDaemon) -> None:
    with RawClient(daemon.socket) as client:
        client.sock.sendall(b"GET /_ping with spaces HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, headers = client.read_head()
        assert status == 400
        assert headers["connection"] == "close"
        client.read_to_eof()


def test_expect_100_continue_is_answered_before_the_body(daemon: EssaimDaemon) -> None:
    body = json.dumps({"Image": "busybox", "Cmd": ["true"]}).encode()
    with RawClient(daemon.socket) as client:
        client.sock.sendall(
            b"POST /v1.45/containers/create HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        assert client.read_head()[0] == 100
        client.sock.sendall(body)
        reply = client.response("POST")
        assert reply.status == 201, reply.body
        remove(daemon, reply.json()["Id"])


# ---- chunked bodies -----------------------------------------------------------------


def test_chunked_request_body_is_decoded(daemon: EssaimDaemon) -> None:
    name = unique("chunked")
    body = json.dumps(
        {"Image": "busybox", "Cmd": ["echo", "from-chunks"], "Labels": {"origin": "chunked"}}
    ).encode()
    pieces = [body[:7], body[7:30], body[30:]]
    with RawClient(daemon.socket) as client:
        client.sock.sendall(
            f"POST /v1.45/containers/create?name={name} HTTP/1.1\r\n"
            "Host: api.moby.localhost\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        for piece in pieces:
            client.sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            time.sleep(0.01)  # separate reads on the daemon's side, not one buffer
        client.sock.sendall(b"0\r\n\r\n")
        reply = client.response("POST")
        assert reply.status == 201, reply.body
        cid = reply.json()["Id"]
        try:
            # Same connection, next request: the chunked body was consumed exactly.
            inspect = client.call("GET", f"/v1.45/containers/{name}/json").json()
            assert inspect["Id"] == cid
            assert inspect["Config"]["Cmd"] == ["echo", "from-chunks"]
            assert inspect["Config"]["Labels"]["origin"] == "chunked"
        finally:
            remove(daemon, cid)


def test_malformed_chunked_body_is_a_400_json_error(daemon: EssaimDaemon) -> None:
    with RawClient(daemon.socket) as client:
        client.sock.sendall(
            b"POST /v1.45/containers/create HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'5\r\n{"Ima\r\nzz\r\n'
        )
        reply = client.response("POST")
        assert (reply.status, reply.reason) == (400, "Bad Request")
        assert reply.json()["message"].startswith("malformed request body")
        assert client.read_to_eof() == b""  # the framing is lost: the connection ends


def test_events_stream_sends_headers_then_one_flushed_chunk_per_event(daemon: EssaimDaemon) -> None:
    label = unique("flush")
    filters = quote(json.dumps({"label": [f"test.flush={label}"]}))
    with RawClient(daemon.socket) as stream:
        stream.send("GET", f"/v1.45/events?filters={filters}")
        status, _, headers = stream.read_head()  # before any event exists
        assert status == 200
        assert headers["transfer-encoding"] == "chunked"
        assert headers["content-type"] == "application/json"
        assert "content-length" not in headers

        cid = create(daemon, Cmd=["true"], Labels={"test.flush": label})
        try:
            first = stream.read_chunk()
            assert first is not None and first.endswith(b"\n")
            event = json.loads(first)
            assert (event["Type"], event["Action"]) == ("container", "create")
            assert event["Actor"]["ID"] == cid
            assert not stream.pending(0.1), "the stream must stay open after an event"
            start(daemon, cid)
            actions = [json.loads(stream.read_chunk() or b"null")["Action"] for _ in range(2)]
            assert actions == ["start", "die"]
        finally:
            remove(daemon, cid)
        assert json.loads(stream.read_chunk() or b"null")["Action"] == "destroy"


def test_wait_sends_its_headers_before_the_container_exits(daemon: EssaimDaemon) -> None:
    cid = create(daemon, Cmd=["sh", "-c", "exit 3"])
    try:
        with RawClient(daemon.socket) as waiter:
            waiter.send("POST", f"/v1.45/containers/{cid}/wait?condition=next-exit")
            # The container is not even started: docker run blocks on these headers first.
            status, _, headers = waiter.read_head()
            assert status == 200
            assert headers["transfer-encoding"] == "chunked"
            assert headers["content-type"] == "application/json"
            assert not waiter.pending(0.2)
            start(daemon, cid)
            body = waiter.read_chunk()
            assert body is not None
            assert json.loads(body) == {"StatusCode": 3, "Error": None}
            assert waiter.read_chunk() is None
            # The connection is still good for the next request.
            assert waiter.call("GET", "/_ping").body == b"OK"
    finally:
        remove(daemon, cid)


# ---- hijack ---------------------------------------------------------------------------


def attach(client: RawClient, cid: str, query: str, upgrade: bool = True) -> dict[str, str]:
    headers = {"Content-Type": "text/plain"}
    if upgrade:
        headers.update({"Connection": "Upgrade", "Upgrade": "tcp"})
    client.send("POST", f"/v1.45/containers/{cid}/attach?{query}", headers=headers)
    status, reason, head = client.read_head()
    assert (status, reason) == ((101, "UPGRADED") if upgrade else (200, "OK"))
    return head


def test_attach_upgrade_answers_101_alone_then_raw_stream(daemon: EssaimDaemon) -> None:
    cid = create(
        daemon, Cmd=["sh", "-c", "echo out; echo err >&2"], AttachStdout=True, AttachStderr=True
    )
    try:
        with RawClient(daemon.socket) as client:
            headers = attach(client, cid, "stream=1&stdout=1&stderr=1")
            assert headers["content-type"] == "application/vnd.docker.multiplexed-stream"
            assert headers["connection"].lower() == "upgrade"
            assert headers["upgrade"] == "tcp"
            assert "content-length" not in headers
            assert "transfer-encoding" not in headers
            # The 101 is the whole of what was written: nothing follows until start.
            assert client.buffer == b""
            assert not client.pending(0.2)
            start(daemon, cid)
            assert demux(client.read_to_eof()) == {1: b"out\n", 2: b"err\n"}
    finally:
        remove(daemon, cid)


def test_attach_without_upgrade_answers_200_and_hijacks(daemon: EssaimDaemon) -> None:
    cid = create(daemon, Cmd=["echo", "plain"], AttachStdout=True)
    try:
        with RawClient(daemon.socket) as client:
            attach(client, cid, "stream=1&stdout=1", upgrade=False)
            start(daemon, cid)
            assert demux(client.read_to_eof())[1] == b"plain\n"
    finally:
        remove(daemon, cid)


@pytest.mark.parametrize("upgrade", [True, False], ids=["101", "200"])
def test_stdin_sent_with_the_attach_request_is_not_lost(
    daemon: EssaimDaemon, upgrade: bool
) -> None:
    cid = create(
        daemon, Cmd=["cat"], OpenStdin=True, StdinOnce=True, AttachStdin=True, AttachStdout=True
    )
    try:
        with RawClient(daemon.socket) as client:
            headers = {"Connection": "Upgrade", "Upgrade": "tcp"} if upgrade else {}
            path = f"/v1.45/containers/{cid}/attach?stream=1&stdin=1&stdout=1"
            # The request and the first stdin bytes in one segment: the daemon reads
            # them together and must hand the extra bytes to the container.
            client.sock.sendall(request_bytes("POST", path, headers=headers) + b"early\n")
            status = client.read_head()[0]
            assert status == (101 if upgrade else 200)
            start(daemon, cid)
            client.sock.sendall(b"late\n")
            client.sock.shutdown(socket.SHUT_WR)
            assert demux(client.read_to_eof())[1] == b"early\nlate\n"
    finally:
        remove(daemon, cid)


def test_attach_to_unknown_container_is_a_plain_404(daemon: EssaimDaemon) -> None:
    with RawClient(daemon.socket) as client:
        client.send(
            "POST",
            "/v1.45/containers/nosuch/attach?stream=1&stdout=1",
            headers={"Connection": "Upgrade", "Upgrade": "tcp"},
        )
        reply = client.response("POST")
        assert reply.status == 404
        assert reply.json() == {"message": "No such container: nosuch"}


def test_half_close_before_start_is_not_a_disconnect(daemon: EssaimDaemon) -> None:
    # What `docker run` does without -i: attach, half-close at once, then start.
    cid = create(daemon, Cmd=["sh", "-c", "echo late; echo later >&2"])
    try:
        with RawClient(daemon.socket) as client:
            attach(client, cid, "stream=1&stdout=1&stderr=1")
            client.sock.shutdown(socket.SHUT_WR)
            start(daemon, cid)
            assert demux(client.read_to_eof()) == {1: b"late\n", 2: b"later\n"}
    finally:
        remove(daemon, cid)


def test_half_close_after_stdin_lets_cat_echo_then_exit(daemon: EssaimDaemon) -> None:
    stdio = {"AttachStdin": True, "AttachStdout": True, "AttachStderr": True}
    cid = create(daemon, Cmd=["cat"], OpenStdin=True, StdinOnce=True, **stdio)
    try:
        with RawClient(daemon.socket) as waiter, RawClient(daemon.socket) as client:
            waiter.send("POST", f"/v1.45/containers/{cid}/wait?condition=next-exit")
            assert waiter.read_head()[0] == 200
            attach(client, cid, "stream=1&stdin=1&stdout=1&stderr=1")
            start(daemon, cid)
            client.sock.sendall(b"hello\n")
            client.sock.sendall(b"world\n")
            client.sock.shutdown(socket.SHUT_WR)  # stdin ends; output must still come
            assert demux(client.read_to_eof()) == {1: b"hello\nworld\n", 2: b""}
            body = waiter.read_chunk()
            assert body is not None and json.loads(body)["StatusCode"] == 0
    finally:
        remove(daemon, cid)


# ---- versions, ping, version, info ---------------------------------------------------


def test_versioned_and_unversioned_paths(daemon: EssaimDaemon) -> None:
    for path in ("/version", "/v1.24/version", "/v1.40/version", "/v1.45/version"):
        reply = call(daemon, "GET", path)
        assert reply.status == 200, path
        assert reply.json()["ApiVersion"] == "1.45"
    for path in ("/containers/json", "/v1.24/containers/json", "/v1.45/containers/json"):
        assert call(daemon, "GET", path).status == 200, path
    assert call(daemon, "GET", "/v1.45/_ping").body == b"OK"


def test_too_new_and_too_old_versions_get_mobys_400(daemon: EssaimDaemon) -> None:
    reply = call(daemon, "GET", "/v1.99/version")
    assert reply.status == 400
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {
        "message": "client version 1.99 is too new. Maximum supported API version is 1.45"
    }
    reply = call(daemon, "GET", "/v1.12/containers/json")
    assert reply.status == 400
    assert reply.json() == {
        "message": "client version 1.12 is too old. Minimum supported API version is 1.24, "
        "please upgrade your client to a newer version"
    }
    # Checked before routing: an unknown route under a bad version is still a 400.
    assert call(daemon, "GET", "/v1.99/nosuch").status == 400


def test_ping_head_and_get_headers(daemon: EssaimDaemon) -> None:
    expected = {
        "api-version": "1.45",
        "ostype": "linux",
        "docker-experimental": "false",
        "builder-version": "1",
        "swarm": "inactive",
        "cache-control": "no-cache, no-store, must-revalidate",
        "pragma": "no-cache",
        "content-type": "text/plain; charset=utf-8",
    }
    head = call(daemon, "HEAD", "/_ping")
    get = call(daemon, "GET", "/_ping")
    for reply in (head, get):
        assert reply.status == 200
        assert {k: reply.headers.get(k) for k in expected} == expected
    assert (head.body, head.headers["content-length"]) == (b"", "0")
    assert (get.body, get.headers["content-length"]) == (b"OK", "2")
    # Every response carries the version headers, errors included.
    error = call(daemon, "GET", "/nosuch")
    assert error.headers["api-version"] == "1.45" and error.headers["ostype"] == "linux"


def test_version_fields(daemon: EssaimDaemon) -> None:
    version = call(daemon, "GET", "/version").json()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    assert version["ApiVersion"] == "1.45" and version["MinAPIVersion"] == "1.24"
    assert (version["Os"], version["Arch"]) == ("linux", arch)
    assert version["KernelVersion"] == os.uname().release
    assert version["Version"] and version["Platform"]["Name"]
    engine = version["Components"][0]
    assert engine["Name"] == "Engine" and engine["Version"] == version["Version"]
    assert engine["Details"]["ApiVersion"] == "1.45"
    assert engine["Details"]["MinAPIVersion"] == "1.24"
    cli = daemon.docker("version", "--format", "{{.Server.APIVersion}} {{.Server.Os}}")
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.strip() == "1.45 linux"
    assert daemon.client().version()["ApiVersion"] == "1.45"


def _meminfo_total() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal in /proc/meminfo")


def _pretty_name() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.partition("=")[2].strip().strip('"')
    return "Linux"


def test_info_reports_this_hosts_figures(daemon: EssaimDaemon) -> None:
    info = call(daemon, "GET", "/v1.45/info").json()
    assert info["NCPU"] == os.cpu_count()
    assert info["MemTotal"] == _meminfo_total()
    assert info["KernelVersion"] == os.uname().release
    assert info["OperatingSystem"] == _pretty_name()
    assert info["OSType"] == "linux" and info["Architecture"] == platform.machine()
    assert info["Driver"] == "overlay2"
    assert info["CgroupDriver"] == "cgroupfs"
    v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
    assert info["CgroupVersion"] == ("2" if v2 else "1")
    assert info["DockerRootDir"] == str(daemon.data_root)
    assert "runc" in info["Runtimes"] and info["DefaultRuntime"] == "runc"
    assert info["Name"] == platform.node()
    assert info["ServerVersion"] == call(daemon, "GET", "/version").json()["Version"]
    assert info["Swarm"]["LocalNodeState"] == "inactive"
    cli = daemon.docker("info", "--format", "{{.NCPU}} {{.Driver}} {{.DockerRootDir}}")
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.split() == [str(os.cpu_count()), "overlay2", str(daemon.data_root)]


def test_info_counts_event_listeners(daemon: EssaimDaemon) -> None:
    def listeners() -> int:
        count: int = call(daemon, "GET", "/info").json()["NEventsListener"]
        return count

    before = listeners()
    stream = daemon.client().events(decode=True)
    try:
        deadline = time.monotonic() + 5
        while listeners() == before and time.monotonic() < deadline:
            time.sleep(0.02)
        assert listeners() == before + 1
    finally:
        stream.close()
    deadline = time.monotonic() + 5
    while listeners() != before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert listeners() == before


def test_info_counts_follow_containers_and_images(daemon: EssaimDaemon) -> None:
    def counts() -> tuple[int, int, int, int, int]:
        info = call(daemon, "GET", "/info").json()
        return (
            info["Containers"],
            info["ContainersRunning"],
            info["ContainersPaused"],
            info["ContainersStopped"],
            info["Images"],
        )

    total, running, paused, stopped, images = counts()
    assert total == running + paused + stopped
    assert images == len(call(daemon, "GET", "/images/json").json()) >= 1
    cid = create(daemon, Cmd=["sleep", "1000"])
    try:
        assert counts() == (total + 1, running, paused, stopped + 1, images)
        start(daemon, cid)
        assert counts() == (total + 1, running + 1, paused, stopped, images)
        assert call(daemon, "POST", f"/containers/{cid}/stop?t=0").status == 204
        assert counts() == (total + 1, running, paused, stopped + 1, images)
    finally:
        remove(daemon, cid)
    assert counts() == (total, running, paused, stopped, images)


# ---- errors ------------------------------------------------------------------------------


def test_errors_are_json_messages_with_dockers_status_codes(daemon: EssaimDaemon) -> None:
    def error(method: str, path: str, body: bytes | dict[str, Any] | None = None) -> Reply:
        reply = call(daemon, method, path, body)
        assert reply.headers["content-type"] == "application/json", reply.headers
        assert list(reply.json()) == ["message"]
        return reply

    for method, path in [
        ("GET", "/nosuch"),
        ("GET", "/v1.45/nosuch/route"),
        ("PUT", "/v1.45/containers/json"),
        ("POST", "/_ping"),
    ]:
        reply = error(method, path)
        assert (reply.status, reply.json()["message"]) == (404, "page not found"), path
        assert reply.reason == "Not Found"

    reply = error("POST", "/v1.45/containers/create", b'{"Image": "busybox", "Cmd": [')
    assert reply.status == 400

    for method, path in [
        ("GET", "/v1.45/containers/x/json"),
        ("POST", "/v1.45/containers/x/start"),
        ("POST", "/v1.45/containers/x/wait"),
        ("DELETE", "/v1.45/containers/x"),
    ]:
        reply = error(method, path)
        assert (reply.status, reply.json()["message"]) == (404, "No such container: x"), path

    name = unique("taken")
    cid = create(daemon, name, Cmd=["true"])
    try:
        reply = error("POST", f"/v1.45/containers/create?name={name}", {"Image": "busybox"})
        assert reply.status == 409
        assert reply.json()["message"] == (
            f'Conflict. The container name "/{name}" is already in use by container '
            f'"{cid}". You have to remove (or rename) that container to be able to reuse '
            "that name."
        )
    finally:
        remove(daemon, cid)
    cli = daemon.docker("start", "x")
    assert cli.returncode != 0
    assert "Error response from daemon: No such container: x" in cli.stderr


# ---- wait conditions -------------------------------------------------------------------


def test_wait_not_running_answers_at_once_for_a_stopped_container(daemon: EssaimDaemon) -> None:
    cid = create(daemon, Cmd=["sh", "-c", "exit 4"])
    try:
        # Never started: not running, exit code 0.
        assert call(daemon, "POST", f"/containers/{cid}/wait").json()["StatusCode"] == 0
        start(daemon, cid)
        eventually(
            lambda: not call(daemon, "GET", f"/containers/{cid}/json").json()["State"]["Running"],
            "the container to exit",
        )
        for query in ("", "?condition=not-running"):
            reply = call(daemon, "POST", f"/v1.45/containers/{cid}/wait{query}")
            assert (reply.status, reply.json()) == (200, {"StatusCode": 4, "Error": None})
    finally:
        remove(daemon, cid)


def test_wait_next_exit_waits_for_the_next_run(daemon: EssaimDaemon) -> None:
    cid = create(daemon, Cmd=["sh", "-c", "exit 6"])
    try:
        for _ in range(5):  # the race it pins sits right after an exit: try it a few times
            start(daemon, cid)
            assert call(daemon, "POST", f"/containers/{cid}/wait").json()["StatusCode"] == 6
            with RawClient(daemon.socket) as waiter:
                # Stopped now, maybe with its exit still being recorded: next-exit must
                # wait for the run that has not happened yet.
                waiter.send("POST", f"/v1.45/containers/{cid}/wait?condition=next-exit")
                assert waiter.read_head()[0] == 200
                assert not waiter.pending(0.2), "answered by the exit it came after"
                start(daemon, cid)
                assert json.loads(waiter.read_chunk() or b"null")["StatusCode"] == 6
            call(daemon, "POST", f"/containers/{cid}/wait")
    finally:
        remove(daemon, cid)


def test_wait_removed_returns_after_autoremove(daemon: EssaimDaemon) -> None:
    cid = create(daemon, Cmd=["sh", "-c", "exit 5"], HostConfig={"AutoRemove": True})
    with RawClient(daemon.socket) as waiter:
        waiter.send("POST", f"/v1.45/containers/{cid}/wait?condition=removed")
        assert waiter.read_head()[0] == 200
        start(daemon, cid)
        assert json.loads(waiter.read_chunk() or b"null") == {"StatusCode": 5, "Error": None}
    # Answered only once the container is gone.
    assert call(daemon, "GET", f"/v1.45/containers/{cid}/json").status == 404


def test_wait_removed_without_autoremove_returns_at_rm(daemon: EssaimDaemon) -> None:
    cid = create(daemon, Cmd=["sh", "-c", "exit 2"])
    start(daemon, cid)
    with RawClient(daemon.socket) as waiter:
        waiter.send("POST", f"/v1.45/containers/{cid}/wait?condition=removed")
        assert waiter.read_head()[0] == 200
        call(daemon, "POST", f"/containers/{cid}/wait")  # it exited ...
        assert not waiter.pending(0.2)  # ... but is not removed yet
        assert call(daemon, "DELETE", f"/v1.45/containers/{cid}").status == 204
        assert json.loads(waiter.read_chunk() or b"null")["StatusCode"] == 2


def test_run_rm_exit_code_comes_from_the_removed_wait(daemon: EssaimDaemon) -> None:
    name = unique("rm")
    result = daemon.docker("run", "--rm", "--name", name, "busybox", "sh", "-c", "exit 7")
    assert result.returncode == 7, result.stderr
    assert call(daemon, "GET", f"/containers/{name}/json").status == 404


def test_wait_invalid_condition_is_400(daemon: EssaimDaemon) -> None:
    cid = create(daemon, Cmd=["true"])
    try:
        reply = call(daemon, "POST", f"/v1.45/containers/{cid}/wait?condition=bogus")
        assert reply.status == 400
        assert reply.json() == {"message": 'invalid condition: "bogus"'}
    finally:
        remove(daemon, cid)
