"""Blob endpoints: GET/HEAD (with byte ranges) and DELETE of a blob, and the upload
protocol: monolithic POST, session start, cross-repository mount, chunked PATCH with
Content-Range checks, status for resuming, the final PUT, and cancel.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

from essaim.api.responses import AnyResponse, Response, StreamResponse
from essaim.image.registry.context import Registry, RegistryRequest
from essaim.image.registry.errors import RegistryError
from essaim.image.registry.names import check_digest, check_name
from essaim.image.registry.uploads import Upload

READ = 1 << 20
_BYTES_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_CONTENT_RANGE = re.compile(r"(?:bytes )?(\d+)-(\d+)(?:/(?:\d+|\*))?")


def _empty(status: int, headers: list[tuple[str, str]]) -> Response:
    return Response(status, b"", None, headers)


def _blob_headers(name: str, digest: str) -> list[tuple[str, str]]:
    return [("Location", f"/v2/{name}/blobs/{digest}"), ("Docker-Content-Digest", digest)]


def _upload_headers(upload: Upload) -> list[tuple[str, str]]:
    end = upload.offset - 1 if upload.offset > 0 else 0
    return [
        ("Location", f"/v2/{upload.name}/blobs/uploads/{upload.id}"),
        ("Range", f"0-{end}"),
        ("Docker-Upload-UUID", upload.id),
    ]


async def _file_chunks(
    registry: Registry, path: Path, start: int, length: int
) -> AsyncIterator[bytes]:
    fd = await registry.run(os.open, path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        offset, left = start, length
        while left > 0:
            chunk = await registry.run(os.pread, fd, min(READ, left), offset)
            if not chunk:
                raise OSError(f"{path} ended early")
            offset += len(chunk)
            left -= len(chunk)
            yield chunk
    finally:
        await registry.run(os.close, fd)


def _byte_range(value: str, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a `Range: bytes=` header, None if not satisfiable."""
    m = _BYTES_RANGE.fullmatch(value.strip())
    if m is None or (not m.group(1) and not m.group(2)):
        return None
    if not m.group(1):  # a suffix: the last N bytes
        n = int(m.group(2))
        return (max(size - n, 0), size - 1) if n > 0 and size > 0 else None
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else size - 1
    if start >= size or end < start:
        return None
    return start, min(end, size - 1)


async def get_blob(registry: Registry, req: RegistryRequest) -> AnyResponse:
    digest = check_digest(req.params["digest"])
    storage = registry.storage
    linked = await registry.run(storage.blob_linked, req.name, digest)
    size = await registry.run(storage.blob_size, digest) if linked else None
    if size is None:
        raise RegistryError("BLOB_UNKNOWN", detail={"digest": digest})
    headers = [
        ("Docker-Content-Digest", digest),
        ("Etag", f'"{digest}"'),
        ("Accept-Ranges", "bytes"),
        ("Cache-Control", "max-age=31536000"),
    ]
    start, length, status = 0, size, 200
    requested = req.headers.get("range")
    if requested is not None:
        span = _byte_range(requested, size)
        if span is None:
            raise RegistryError("RANGE_INVALID", headers=[("Content-Range", f"bytes */{size}")])
        start, length, status = span[0], span[1] - span[0] + 1, 206
        headers.append(("Content-Range", f"bytes {span[0]}-{span[1]}/{size}"))
    path = storage.blob_path(digest)
    return StreamResponse(
        _file_chunks(registry, path, start, length),
        "application/octet-stream",
        status,
        headers,
        length,
    )


async def delete_blob(registry: Registry, req: RegistryRequest) -> AnyResponse:
    digest = check_digest(req.params["digest"])
    if not await registry.run(registry.storage.unlink_blob, req.name, digest):
        raise RegistryError("BLOB_UNKNOWN", detail={"digest": digest})
    return _empty(202, [("Docker-Content-Digest", digest)])


async def start_upload(registry: Registry, req: RegistryRequest) -> AnyResponse:
    if req.params.get("upload"):
        raise RegistryError("UNSUPPORTED")
    name = req.name
    mount, source = req.query.get("mount"), req.query.get("from")
    if mount and source:
        mount = check_digest(mount)
        check_name(source)
        storage = registry.storage
        if await registry.run(storage.blob_linked, source, mount):
            await registry.run(storage.link_blob, name, mount)
            return _empty(201, _blob_headers(name, mount))
        # Not there to mount: an ordinary upload session, as the spec asks.
    digest = req.query.get("digest")
    if digest is not None:
        digest = check_digest(digest)
    upload = await registry.uploads.start(name)
    if digest is None:
        return _empty(202, _upload_headers(upload))
    async with upload.lock:
        try:
            await registry.uploads.append(upload, req.stream())
        except BaseException:
            await asyncio.shield(registry.uploads.cancel(upload))
            raise
        await registry.uploads.finish(upload, digest)
    return _empty(201, _blob_headers(name, digest))


def _check_content_range(req: RegistryRequest, upload: Upload) -> None:
    value = req.headers.get("content-range")
    if value is None:
        return
    m = _CONTENT_RANGE.fullmatch(value.strip())
    if m is None:
        raise RegistryError("RANGE_INVALID", detail=f"malformed Content-Range {value!r}")
    start, end = int(m.group(1)), int(m.group(2))
    length = req.headers.get("content-length")
    if start != upload.offset or end < start or (length and int(length) != end - start + 1):
        # Out of order (or not the size announced): the client learns where we are.
        raise RegistryError(
            "RANGE_INVALID",
            detail=f"range {start}-{end} does not follow offset {upload.offset}",
            headers=_upload_headers(upload),
        )


async def patch_upload(registry: Registry, req: RegistryRequest) -> AnyResponse:
    upload = await registry.uploads.get(req.name, req.params.get("upload") or "")
    async with upload.lock:
        _check_content_range(req, upload)
        await registry.uploads.append(upload, req.stream())
        return _empty(202, _upload_headers(upload))


async def put_upload(registry: Registry, req: RegistryRequest) -> AnyResponse:
    upload = await registry.uploads.get(req.name, req.params.get("upload") or "")
    raw = req.query.get("digest")
    if not raw:
        raise RegistryError("DIGEST_INVALID", "digest missing", headers=_upload_headers(upload))
    digest = check_digest(raw)
    async with upload.lock:
        _check_content_range(req, upload)
        await registry.uploads.append(upload, req.stream())
        await registry.uploads.finish(upload, digest)
    return _empty(201, _blob_headers(req.name, digest))


async def upload_status(registry: Registry, req: RegistryRequest) -> AnyResponse:
    upload = await registry.uploads.get(req.name, req.params.get("upload") or "")
    return _empty(204, _upload_headers(upload))


async def cancel_upload(registry: Registry, req: RegistryRequest) -> AnyResponse:
    upload = await registry.uploads.get(req.name, req.params.get("upload") or "")
    async with upload.lock:
        await registry.uploads.cancel(upload)
    return _empty(204, [])
