"""ADD's URL sources against a loopback HTTP server started here: the file's name, mode
and mtime as the classic builder gives them, redirects, `--checksum`, and Docker's
messages when the server or the connection fails."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from essaim.build.download import download, download_name, last_modified
from essaim.build.sources import source_hash
from essaim.errors import EssaimError, Forbidden, InvalidParameter, NotFound, SystemError_

pytestmark = pytest.mark.unit

BIG = os.urandom(3 << 20)  # more than one chunk
LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"
LAST_MODIFIED_EPOCH = 1445412480


class Handler(BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, dict[str, str], bytes]] = {
        "/files/hello.txt": (200, {"Last-Modified": LAST_MODIFIED}, b"hello\n"),
        "/dir/": (200, {"Content-Disposition": 'attachment; filename="report.csv"'}, b"a,b\n"),
        "/path/": (200, {"Content-Disposition": 'attachment; filename="../../etc/x"'}, b"x"),
        "/plain/": (200, {}, b"no name"),
        "/big.bin": (200, {}, BIG),
        "/enc%20oded": (200, {}, b"spaced"),
        "/missing": (404, {}, b"  nothing here\n"),
        "/secret": (403, {}, b"go away"),
        "/broken": (500, {}, b""),
        "/moved": (302, {"Location": "/files/hello.txt"}, b""),
    }

    def do_GET(self) -> None:
        status, headers, body = self.routes.get(self.path, (404, {}, b"no route"))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def fetch(url: str, into: Path, checksum: str = "") -> Path:
    source = asyncio.run(download(url, into, checksum=checksum))
    assert source.url == url and not source.is_dir
    assert source.root is not None and source.path.parent == source.root
    assert source.root.parent == into
    return source.path


def test_a_download_is_named_from_its_path_0600_with_the_servers_mtime(
    server: str, tmp_path: Path
) -> None:
    path = fetch(f"{server}/files/hello.txt", tmp_path)
    assert path.name == "hello.txt"
    assert path.read_bytes() == b"hello\n"
    st = path.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_mtime == LAST_MODIFIED_EPOCH


def test_without_last_modified_the_mtime_is_the_epoch(server: str, tmp_path: Path) -> None:
    assert fetch(f"{server}/big.bin", tmp_path).stat().st_mtime == 0


def test_a_large_body_streams_whole(server: str, tmp_path: Path) -> None:
    source = asyncio.run(download(f"{server}/big.bin", tmp_path))
    assert source.path.read_bytes() == BIG
    assert source.content_sha256 == hashlib.sha256(BIG).hexdigest()
    # The key is the downloaded content's, whichever way it is computed.
    again = source.__class__(source.path, source.name, False, url=source.url, root=source.root)
    assert source_hash([source]) == source_hash([again])


def test_the_server_names_a_file_whose_url_ends_with_a_slash(server: str, tmp_path: Path) -> None:
    assert fetch(f"{server}/dir/", tmp_path).name == "report.csv"
    assert fetch(f"{server}/path/", tmp_path).name == "x"  # only its last component


def test_a_download_nobody_named_is_unnamed(server: str, tmp_path: Path) -> None:
    source = asyncio.run(download(f"{server}/plain/", tmp_path))
    assert (source.name, source.path.name) == ("", "__unnamed__")
    assert source.path.read_bytes() == b"no name"


def test_an_escaped_path_gives_the_decoded_name(server: str, tmp_path: Path) -> None:
    assert fetch(f"{server}/enc%20oded", tmp_path).name == "enc oded"


def test_redirects_are_followed_and_the_name_is_the_asked_urls(server: str, tmp_path: Path) -> None:
    path = fetch(f"{server}/moved", tmp_path)
    assert (path.name, path.read_bytes()) == ("moved", b"hello\n")


def test_the_checksum_is_verified(server: str, tmp_path: Path) -> None:
    good = "sha256:" + hashlib.sha256(b"hello\n").hexdigest()
    bad = "sha256:" + "0" * 64
    with pytest.raises(InvalidParameter) as caught:
        asyncio.run(download(f"{server}/files/hello.txt", tmp_path, checksum=bad))
    assert caught.value.message == f"ADD failed: digest mismatch {good}: {bad}"
    assert list(tmp_path.iterdir()) == []  # nothing of the refused download is left
    assert fetch(f"{server}/files/hello.txt", tmp_path, good).read_bytes() == b"hello\n"


@pytest.mark.parametrize(
    ("checksum", "reason"),
    [
        ("abc", "invalid checksum digest format"),
        ("sha256:", "invalid checksum digest format"),
        ("md5:" + "0" * 32, "unsupported digest algorithm"),
        ("sha256:abc", "invalid checksum digest length"),
        ("sha256:" + "G" * 64, "invalid checksum digest format"),
    ],
)
def test_a_malformed_checksum_is_refused_before_any_request(
    checksum: str, reason: str, tmp_path: Path
) -> None:
    # Port 9 (discard) on loopback: nothing answers there, and nothing is asked.
    with pytest.raises(InvalidParameter) as caught:
        asyncio.run(download("http://127.0.0.1:9/x", tmp_path, checksum=checksum))
    assert caught.value.message == f"ADD failed: {reason}"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("route", "kind", "status", "body"),
    [
        ("/missing", NotFound, "404 Not Found", "nothing here"),
        ("/secret", Forbidden, "403 Forbidden", "go away"),
        ("/broken", SystemError_, "500 Internal Server Error", ""),
    ],
)
def test_an_error_status_is_reported_in_dockers_words(
    server: str, tmp_path: Path, route: str, kind: type[EssaimError], status: str, body: str
) -> None:
    url = server + route
    with pytest.raises(kind) as caught:
        asyncio.run(download(url, tmp_path))
    assert caught.value.message == f"ADD failed: failed to GET {url} with status {status}: {body}"
    assert list(tmp_path.iterdir()) == []


def test_a_refused_connection_fails_cleanly(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        url = f"http://127.0.0.1:{port}/x"
        with pytest.raises(SystemError_) as caught:
            asyncio.run(download(url, tmp_path))
    assert caught.value.message.startswith(f'ADD failed: Get "{url}": ')
    assert list(tmp_path.iterdir()) == []


def test_names_from_urls_and_content_disposition() -> None:
    assert download_name("http://h/a/b.tar.gz?x=1#f", "") == "b.tar.gz"
    assert download_name("http://h/a/", "attachment; filename=c.txt") == "c.txt"
    assert download_name("http://h/a/", "attachment; filename*=UTF-8''%C3%A9t%C3%A9.txt") == (
        "\u00e9t\u00e9.txt"
    )
    assert download_name("http://h/a/b", "attachment; filename=ignored") == "b"
    assert download_name("http://h", "") == ""
    assert download_name("http://h/..", "") == ""
    assert download_name("http://h/x/", 'attachment; filename="dir/"') == ""


def test_last_modified_forms() -> None:
    assert last_modified(LAST_MODIFIED) == LAST_MODIFIED_EPOCH
    assert last_modified("Wednesday, 21-Oct-15 07:28:00 GMT") == LAST_MODIFIED_EPOCH
    assert last_modified("Wed Oct 21 07:28:00 2015") == LAST_MODIFIED_EPOCH
    assert last_modified("yesterday") == 0
    assert last_modified(None) == 0
