"""Blobs between a registry and the content store: a download streamed to the ingest
directory and committed only once its size and digest check out, with one download
per digest at a time (two pulls sharing a layer fetch it once).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO

from essaim.errors import SystemError_
from essaim.image.content import ContentStore, DigestMismatch
from essaim.image.distribution import errors
from essaim.image.distribution.client import RegistryClient
from essaim.image.oci import Descriptor

WRITE_BATCH = 1 << 20
MAX_MANIFEST = 4 << 20  # distribution's limit on a manifest body


class VerificationFailed(SystemError_):
    pass


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


async def download(
    client: RegistryClient,
    content: ContentStore,
    path: str,
    descriptor: Descriptor,
    scopes: list[str],
    *,
    on_bytes: Callable[[int], None] = lambda n: None,
    on_verify: Callable[[], None] = lambda: None,
    what: str = "filesystem layer",
) -> None:
    """GET the blob into `content`: size and digest verified before it is committed;
    nothing is left behind on failure."""
    loop = asyncio.get_running_loop()
    temp = await loop.run_in_executor(None, content.temp_file, ".pull")
    try:
        out: BinaryIO = await loop.run_in_executor(None, open, temp, "wb")
        try:
            size = 0
            async with client.stream(
                "GET", f"/v2/{path}/blobs/{descriptor.digest}", scopes=scopes
            ) as response:
                await client.check(response, 200)
                batch = bytearray()
                try:
                    async for chunk in response.aiter_raw():
                        size += len(chunk)
                        if size > descriptor.size:
                            break
                        batch += chunk
                        on_bytes(len(chunk))
                        if len(batch) >= WRITE_BATCH:
                            data = bytes(batch)
                            batch.clear()
                            await loop.run_in_executor(None, out.write, data)
                except Exception as exc:  # the connection broke mid-body
                    url = client.url(f"/v2/{path}/blobs/{descriptor.digest}")
                    raise errors.TransportError("GET", url, errors.describe_failure(exc)) from None
                if batch:
                    await loop.run_in_executor(None, out.write, bytes(batch))
        finally:
            await loop.run_in_executor(None, out.close)
        if size != descriptor.size:
            raise VerificationFailed(f"{what} verification failed for digest {descriptor.digest}")
        on_verify()
        try:
            await loop.run_in_executor(None, content.adopt, temp, descriptor.digest)
        except DigestMismatch:
            raise VerificationFailed(
                f"{what} verification failed for digest {descriptor.digest}"
            ) from None
    finally:
        await loop.run_in_executor(None, _unlink, temp)


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
