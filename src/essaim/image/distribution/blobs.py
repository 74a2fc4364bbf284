"""Blobs between a registry and the content store: a download streamed to the ingest
directory and committed only once its size and digest check out, with one download
per digest at a time (two pulls sharing a layer fetch it once).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO

from essaim.errors import SystemError_
from essaim.image.content import ContentStore, DigestMismatch
from essaim.image.distribution import errors
from essaim.image.distribution.client import RegistryClient
from essaim.image.distribution.retry import RetryPolicy, with_retries
from essaim.image.oci import Descriptor

WRITE_BATCH = 1 << 20
NO_RETRY = RetryPolicy(attempts=1)
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
MAX_MANIFEST = 4 << 20  # distribution's limit on a manifest body


class VerificationFailed(SystemError_):
    def __init__(self, message: str, *, resumed: bool = False) -> None:
        super().__init__(message)
        self.resumed = resumed  # after a resumed transfer: worth a fresh attempt


class BlobFetches:
    """A lock per digest being fetched, so one download serves concurrent pulls."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @contextlib.asynccontextmanager
    async def exclusive(self, digest: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(digest, asyncio.Lock())
        self._users[digest] = self._users.get(digest, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[digest] -= 1
            if not self._users[digest]:
                del self._users[digest]
                del self._locks[digest]


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _held(path: Path) -> int:
    """Bytes a previous attempt left in the ingest file."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _content_range_start(value: str | None) -> int | None:
    """The first byte of `Content-Range: bytes <first>-<last>/<size>`."""
    m = _CONTENT_RANGE.match(value or "")
    return int(m.group(1)) if m else None


def retryable(exc: Exception) -> bool:
    """What moby retries: the connection failed or broke mid-body, the registry had a
    server error, or a resumed download did not verify (it starts over)."""
    if isinstance(exc, errors.TransportError):
        return True
    if isinstance(exc, errors.RegistryError):
        return exc.http_status >= 500
    return isinstance(exc, VerificationFailed) and exc.resumed


async def download(
    client: RegistryClient,
    content: ContentStore,
    path: str,
    descriptor: Descriptor,
    scopes: list[str],
    *,
    policy: RetryPolicy = NO_RETRY,
    on_attempt: Callable[[int], None] = lambda offset: None,
    on_bytes: Callable[[int], None] = lambda n: None,
    on_verify: Callable[[], None] = lambda: None,
    on_wait: Callable[[int], None] = lambda seconds: None,
    what: str = "filesystem layer",
) -> None:
    """GET the blob into `content`: size and digest verified before it is committed;
    nothing is left behind on failure. A failed attempt is retried as `policy` says,
    resuming with a Range request from the bytes already received; `on_attempt(offset)`
    opens each attempt, `on_wait(seconds)` counts down between them."""
    loop = asyncio.get_running_loop()
    temp = await loop.run_in_executor(None, content.temp_file, ".pull")

    async def attempt() -> None:
        offset = await _fetch(client, path, descriptor, scopes, temp, on_attempt, on_bytes)
        resumed = offset > 0
        failed = VerificationFailed(
            f"{what} verification failed for digest {descriptor.digest}", resumed=resumed
        )
        if await loop.run_in_executor(None, _held, temp) != descriptor.size:
            # More than the descriptor says (less is a broken transfer, raised above).
            await loop.run_in_executor(None, _unlink, temp)
            raise failed
        on_verify()
        try:
            await loop.run_in_executor(None, content.adopt, temp, descriptor.digest)
        except DigestMismatch:
            raise failed from None  # adopt removed the file: a retry starts over

    try:
        await with_retries(attempt, policy, retryable=retryable, on_wait=on_wait)
    finally:
        await loop.run_in_executor(None, _unlink, temp)


async def _fetch(
    client: RegistryClient,
    path: str,
    descriptor: Descriptor,
    scopes: list[str],
    temp: Path,
    on_attempt: Callable[[int], None],
    on_bytes: Callable[[int], None],
) -> int:
    """One GET appending to `temp` from what it holds; the offset it started from.
    A body that ends early raises TransportError; what arrived stays for the next try."""
    loop = asyncio.get_running_loop()
    offset = await loop.run_in_executor(None, _held, temp)
    if offset >= descriptor.size:
        on_attempt(offset)
        return offset
    blob = f"/v2/{path}/blobs/{descriptor.digest}"
    headers = {"Range": f"bytes={offset}-"} if offset else None
    async with client.stream("GET", blob, scopes=scopes, headers=headers) as response:
        await client.check(response, 200, 206)
        if response.status_code == 200:
            offset = 0  # no range asked for, or the server ignored it: the whole blob
        elif not offset or _content_range_start(response.headers.get("content-range")) != offset:
            await loop.run_in_executor(None, _unlink, temp)  # the next attempt starts over
            raise errors.TransportError(
                "GET", client.url(blob), f"unexpected partial content for bytes={offset}-"
            )
        on_attempt(offset)
        out: BinaryIO = await loop.run_in_executor(None, open, temp, "ab" if offset else "wb")
        received = offset
        batch = bytearray()
        try:
            try:
                async for chunk in response.aiter_raw():
                    received += len(chunk)
                    batch += chunk
                    on_bytes(len(chunk))
                    if received > descriptor.size:
                        break
                    if len(batch) >= WRITE_BATCH:
                        data = bytes(batch)
                        batch.clear()
                        await loop.run_in_executor(None, out.write, data)
            except Exception as exc:  # the connection broke mid-body
                raise errors.TransportError(
                    "GET", client.url(blob), errors.describe_failure(exc)
                ) from None
            finally:
                # What arrived is kept: the next attempt resumes after it.
                if batch:
                    await loop.run_in_executor(None, out.write, bytes(batch))
        finally:
            await loop.run_in_executor(None, out.close)
    if received < descriptor.size:
        raise errors.TransportError("GET", client.url(blob), "unexpected EOF")
    return offset


async def fetch_small(
    client: RegistryClient, content: ContentStore, path: str, descriptor: Descriptor,
    scopes: list[str], what: str,
) -> bytes:  # fmt: skip
    """A config blob: read whole, verified, stored; its bytes returned."""
    loop = asyncio.get_running_loop()
    if await loop.run_in_executor(None, content.has, descriptor.digest):
        return await loop.run_in_executor(None, content.read, descriptor.digest)
    response = await client.request("GET", f"/v2/{path}/blobs/{descriptor.digest}", scopes=scopes)
    await client.check(response, 200)
    data = response.content
    if len(data) != descriptor.size:
        raise VerificationFailed(f"{what} verification failed for digest {descriptor.digest}")
    try:
        await loop.run_in_executor(None, content.write, data, descriptor.digest)
    except DigestMismatch:
        raise VerificationFailed(
            f"{what} verification failed for digest {descriptor.digest}"
        ) from None
    return data
