"""ADD's remote sources: an http(s) URL downloaded as the classic builder does (the file
named from the URL's path or the server's Content-Disposition, mode 0600, mtime from
Last-Modified), `--checksum` verified as BuildKit does, errors in Docker's words.

The body streams to disk; writing and hashing run in the default executor.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.message
import email.utils
import hashlib
import ipaddress
import os
import re
import socket
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from essaim.build.sources import UNNAMED, CopySource
from essaim.errors import (
    EssaimError,
    Forbidden,
    InvalidParameter,
    NotFound,
    SystemError_,
    Unauthorized,
)

CHUNK = 1 << 20
# What of an error response's body goes into the message.
_ERROR_BODY_LIMIT = 64 << 10
# Go's http.Get has no timeout at all; a server silent this long has stopped.
_TIMEOUT = httpx.Timeout(300.0, connect=30.0, pool=30.0)
_DIGEST_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
# go-digest's grammar of a digest, for telling an unknown algorithm from nonsense.
_DIGEST_GRAMMAR = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_STATUS_ERRORS: dict[int, type[EssaimError]] = {
    400: InvalidParameter,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
}


async def download(url: str, into: Path, *, checksum: str = "") -> CopySource:
    """Download `url` into a new directory made inside `into` (which the caller removes
    when the build is done) and return it as a source to copy (never extracted)."""
    if checksum:
        _check_digest(checksum)
    loop = asyncio.get_running_loop()
    host = urlsplit(url).hostname or ""
    # Like Go's ProxyFromEnvironment, a proxy never serves a loopback address.
    async with httpx.AsyncClient(
        follow_redirects=True, timeout=_TIMEOUT, trust_env=not _is_loopback(host)
    ) as client:
        try:
            async with client.stream("GET", url) as response:
                if response.status_code >= 400:
                    raise await _status_error(url, response)
                name = download_name(url, response.headers.get("content-disposition", ""))
                directory = Path(await loop.run_in_executor(None, _make_dir, into))
                path = directory / (name or UNNAMED)
                try:
                    sha256 = await _save(response, path)
                except BaseException:
                    _remove(path)
                    raise
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise _transport_error(url, exc) from None
    if checksum and f"sha256:{sha256}" != checksum:
        _remove(path)
        raise InvalidParameter(f"ADD failed: digest mismatch sha256:{sha256}: {checksum}")
    return CopySource(path, name, False, url=url, root=directory, content_sha256=sha256)


def download_name(url: str, content_disposition: str) -> str:
    """moby's getFilenameForDownload: the last component of the URL's path unless that
    ends with `/`, else the Content-Disposition filename; "" when neither says."""
    path = unquote(urlsplit(url).path)
    if path and not path.endswith("/"):
        return _usable(path.rpartition("/")[2])
    if content_disposition:
        message = email.message.Message()
        message["content-disposition"] = content_disposition
        filename = message.get_filename() or ""
        if filename and not filename.endswith("/"):
            return _usable(filename.rpartition("/")[2])
    return ""


def last_modified(header: str | None) -> int:
    """The Last-Modified time as seconds since the epoch; the epoch itself when there is
    none or it cannot be read (moby's zero time, which Chtimes takes as the epoch)."""
    if not header:
        return 0
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        return 0
    return max(0, int(when.timestamp()))


def _usable(name: str) -> str:
    # `.` and `..` would name the download's directory or its parent: no name at all.
    return "" if name in (".", "..") or "\0" in name else name


def _check_digest(checksum: str) -> None:
    """go-digest's Parse, whose messages BuildKit shows for a bad `--checksum`."""
    algorithm, _, encoded = checksum.partition(":")
    if not algorithm or not encoded:
        raise InvalidParameter("ADD failed: invalid checksum digest format")
    if algorithm not in _DIGEST_LENGTHS:
        if _DIGEST_GRAMMAR.fullmatch(checksum):
            raise InvalidParameter("ADD failed: unsupported digest algorithm")
        raise InvalidParameter("ADD failed: invalid checksum digest format")
    if len(encoded) != _DIGEST_LENGTHS[algorithm]:
        raise InvalidParameter("ADD failed: invalid checksum digest length")
    if not re.fullmatch(r"[a-f0-9]+", encoded):
        raise InvalidParameter("ADD failed: invalid checksum digest format")


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
        path.parent.rmdir()


def _make_dir(into: Path) -> str:
    return tempfile.mkdtemp(prefix="docker-remote", dir=into)


async def _save(response: httpx.Response, path: Path) -> str:
    """The body into a new file `path` (0600), its mtime from Last-Modified; its sha256."""
    loop = asyncio.get_running_loop()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = await loop.run_in_executor(None, os.open, path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask says
        hasher = hashlib.sha256()
        async for chunk in response.aiter_bytes(CHUNK):
            await loop.run_in_executor(None, _write, fd, hasher, chunk)
        mtime = last_modified(response.headers.get("last-modified"))
        await loop.run_in_executor(None, os.utime, fd, (mtime, mtime))
    finally:
        os.close(fd)
    return hasher.hexdigest()


def _write(fd: int, hasher: hashlib._Hash, chunk: bytes) -> None:
    hasher.update(chunk)
    view = memoryview(chunk)
    while view:
        view = view[os.write(fd, view) :]


async def _status_error(url: str, response: httpx.Response) -> EssaimError:
    """moby's GetWithStatusError: the status and the (trimmed) body the server sent."""
    body = b""
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) >= _ERROR_BODY_LIMIT:
            break
    status = f"{response.status_code} {response.reason_phrase}".strip()
    text = body[:_ERROR_BODY_LIMIT].strip().decode("utf-8", "replace")
    kind = _STATUS_ERRORS.get(response.status_code, SystemError_)
    return kind(f"ADD failed: failed to GET {url} with status {status}: {text}")


def _transport_error(url: str, exc: httpx.HTTPError | httpx.InvalidURL) -> EssaimError:
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return InvalidParameter(f'ADD failed: Get "{url}": {exc}')
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, socket.gaierror):
            return NotFound(f'ADD failed: Get "{url}": {exc}')  # no such host
        cause = cause.__cause__ or cause.__context__
    return SystemError_(f'ADD failed: Get "{url}": {exc}')


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
