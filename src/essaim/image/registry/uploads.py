"""Blob upload sessions: bytes appended to `_uploads/<id>/data` as they arrive, hashed
on the way, then fsynced, verified against the client's digest and moved into place.

A session outlives a dropped connection (what arrived is kept: the client asks for the
offset and resumes) and a server restart (the hash is then recomputed from the file).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from essaim.image.registry.errors import RegistryError
from essaim.image.registry.storage import RegistryStorage

# Bytes handed to the executor at once: big enough that the hop costs nothing, small
# enough that hashing overlaps with reading the next batch from the socket.
BATCH = 1 << 20
_READ = 1 << 20


@dataclass
class Upload:
    name: str
    id: str
    offset: int
    # sha256 of bytes [0, offset); None once unknown (a restart), then rehashed at the end.
    hasher: Any | None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _append(fd: int, hasher: Any | None, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    if hasher is not None:
        hasher.update(data)


def _file_digest(path: os.PathLike[str], algorithm: str) -> str:
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_READ):
            hasher.update(chunk)
    return f"{algorithm}:{hasher.hexdigest()}"


class UploadSessions:
    def __init__(self, storage: RegistryStorage, executor: Executor) -> None:
        self.storage = storage
        self.executor = executor
        self._live: dict[tuple[str, str], Upload] = {}

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def start(self, name: str) -> Upload:
        upload_id = str(uuid.uuid4())
        directory = self.storage.upload_dir(name, upload_id)

        def create() -> None:
            directory.mkdir(parents=True)
            (directory / "data").touch()
            (directory / "startedat").write_text(f"{time.time():.0f}\n")

        await self._run(create)
        upload = Upload(name, upload_id, 0, hashlib.sha256())
        self._live[(name, upload_id)] = upload
        return upload

    async def get(self, name: str, upload_id: str) -> Upload:
        upload = self._live.get((name, upload_id))
        if upload is not None:
            return upload
        try:
            uuid.UUID(upload_id)
        except ValueError:
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", detail={"uuid": upload_id}) from None
        data = self.storage.upload_dir(name, upload_id) / "data"
        try:
            size = (await self._run(os.stat, data)).st_size
        except FileNotFoundError:
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", detail={"uuid": upload_id}) from None
        # Begun before a restart: the offset is what reached the disk.
        upload = Upload(name, upload_id, size, None)
        self._live[(name, upload_id)] = upload
        return upload

    async def append(self, upload: Upload, chunks: AsyncIterator[bytes]) -> None:
        """Appends the body, whatever part of it arrives: a dropped connection leaves
        the session at the offset reached, for the client to resume from."""
        path = self.storage.upload_dir(upload.name, upload.id) / "data"
        try:
            fd = await self._run(os.open, path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except FileNotFoundError:
            # Cancelled or purged while this request waited for the session's lock.
            self._live.pop((upload.name, upload.id), None)
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", detail={"uuid": upload.id}) from None
        pending: asyncio.Future[None] | None = None
        loop = asyncio.get_running_loop()
        batch: list[bytes] = []
        size = 0
        try:
            async for chunk in chunks:
                batch.append(chunk)
                size += len(chunk)
                if size >= BATCH:
                    if pending is not None:
                        await pending
                    data = b"".join(batch)
                    pending = loop.run_in_executor(self.executor, _append, fd, upload.hasher, data)
                    upload.offset += len(data)
                    batch, size = [], 0
        finally:
            if pending is not None:
                await pending
            if batch:
                data = b"".join(batch)
                await self._run(_append, fd, upload.hasher, data)
                upload.offset += len(data)
            await self._run(os.close, fd)

    async def finish(self, upload: Upload, digest: str) -> None:
        """Verifies and stores the blob, links it into the repository, ends the session."""
        directory = self.storage.upload_dir(upload.name, upload.id)
        data = directory / "data"
        algorithm = digest.partition(":")[0]

        def verify_and_commit() -> bool:
            if upload.hasher is not None and algorithm == "sha256":
                actual = "sha256:" + upload.hasher.hexdigest()
            else:
                actual = _file_digest(data, algorithm)
            if actual != digest:
                return False
            fd = os.open(data, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self.storage.commit_blob(data, digest)
            self.storage.link_blob(upload.name, digest)
            return True

        try:
            if not await self._run(verify_and_commit):
                raise RegistryError("DIGEST_INVALID", detail={"digest": digest})
        finally:
            # Verified or not, the session is over (the reference registry does the same).
            await self.cancel(upload)

    async def purge(self, older_than: float) -> list[tuple[str, str]]:
        """Removes the sessions begun before `older_than` (Unix seconds), except one
        receiving bytes right now; returns the (repository, id) of those removed."""

        def stale() -> list[tuple[str, str]]:
            out = []
            for name, upload_id in self.storage.upload_sessions():
                started = self.storage.upload_started_at(name, upload_id)
                if started is not None and started < older_than:
                    out.append((name, upload_id))
            return out

        removed: list[tuple[str, str]] = []
        for name, upload_id in await self._run(stale):
            live = self._live.get((name, upload_id))
            if live is None:
                await self._run(self.storage.remove_upload, name, upload_id)
            elif live.lock.locked():
                continue  # a request is appending to it: it is not abandoned
            else:
                async with live.lock:
                    await self.cancel(live)
            removed.append((name, upload_id))
        return removed

    async def cancel(self, upload: Upload) -> None:
        self._live.pop((upload.name, upload.id), None)
        await self._run(self.storage.remove_upload, upload.name, upload.id)
