"""Blobs from the content store to a registry: existence check, cross-repository
mount, and the chunked upload (POST, PATCH with Content-Range, PUT ?digest=).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import BinaryIO
from urllib.parse import urljoin

import httpx

from essaim.errors import SystemError_
from essaim.image.content import ContentStore
from essaim.image.distribution.client import RegistryClient
from essaim.image.oci import Descriptor

PATCH_CHUNK = 32 << 20  # bytes per PATCH request
READ_PIECE = 1 << 20


async def exists(client: RegistryClient, path: str, digest: str, scopes: list[str]) -> bool:
    response = await client.request("HEAD", f"/v2/{path}/blobs/{digest}", scopes=scopes)
    if response.status_code == 200:
        return True
    if response.status_code == 404:
        return False
    await client.check(response, 200)
    return False


def _location(client: RegistryClient, response: httpx.Response) -> str:
    location = str(response.headers.get("location") or "")
    if not location:
        raise SystemError_("registry gave no upload location")
    return urljoin(client.base + "/", location)


async def mount(
    client: RegistryClient, path: str, digest: str, source_path: str, scopes: list[str]
) -> str | None:
    """Ask for the blob to be mounted from `source_path` (same registry): None when
    mounted, else the upload the registry opened instead."""
    response = await client.request(
        "POST", f"/v2/{path}/blobs/uploads/",
        params={"mount": digest, "from": source_path},
        scopes=[*scopes, f"repository:{source_path}:pull"],
    )  # fmt: skip
    if response.status_code == 201:
        return None
    await client.check(response, 202)
    return _location(client, response)


async def start(client: RegistryClient, path: str, scopes: list[str]) -> str:
    response = await client.request("POST", f"/v2/{path}/blobs/uploads/", scopes=scopes)
    await client.check(response, 202)
    return _location(client, response)


async def _pieces(
    source: BinaryIO, count: int, on_bytes: Callable[[int], None]
) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    left = count
    while left > 0:
        data = await loop.run_in_executor(None, source.read, min(READ_PIECE, left))
        if not data:
            raise SystemError_("blob shorter than its size")
        left -= len(data)
        on_bytes(len(data))
        yield data


async def send(
    client: RegistryClient,
    content: ContentStore,
    location: str,
    blob: Descriptor,
    scopes: list[str],
    on_bytes: Callable[[int], None] = lambda n: None,
) -> None:
    """The blob's bytes to an open upload, in PATCH chunks, then the closing PUT."""
    loop = asyncio.get_running_loop()
    source: BinaryIO = await loop.run_in_executor(None, content.open, blob.digest)
    try:
        offset = 0
        while offset < blob.size:
            count = min(PATCH_CHUNK, blob.size - offset)
            response = await client.request(
                "PATCH", location, scopes=scopes,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(count),
                    "Content-Range": f"{offset}-{offset + count - 1}",
                },
                content=_pieces(source, count, on_bytes),
            )  # fmt: skip
            await client.check(response, 202)
            location = _location(client, response)
            offset += count
    finally:
        await loop.run_in_executor(None, source.close)
    url = httpx.URL(location).copy_merge_params({"digest": blob.digest})
    response = await client.request(
        "PUT", str(url), scopes=scopes, headers={"Content-Length": "0"}, content=b""
    )
    await client.check(response, 201)
