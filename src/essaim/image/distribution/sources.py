"""Where layer blobs came from: for each blob digest, the layer (diff id) it holds,
its media type, and the repositories (normalised, with their registry) known to have
it. Push reads it to skip, mount across repositories, and reuse compressed layers.

Records live in the store (kind "blob-sources") and are mirrored in memory.
"""

from __future__ import annotations

import asyncio

import msgspec

from essaim.store.base import Store

BLOB_SOURCES = "blob-sources"
MAX_REPOSITORIES = 16  # per blob: enough to find a mount source, bounded like moby's


class BlobSource(msgspec.Struct, kw_only=True):
    diff_id: str = ""
    media_type: str = ""
    repositories: list[str] = []  # "127.0.0.1:5000/bb", most recent last


class BlobSources:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._records: dict[str, BlobSource] | None = None
        self._lock = asyncio.Lock()
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(BlobSource)

    async def _loaded(self) -> dict[str, BlobSource]:
        if self._records is None:
            rows = await self._store.list(BLOB_SOURCES)
            self._records = {key: self._decoder.decode(raw) for key, raw in rows}
        return self._records

    async def get(self, digest: str) -> BlobSource | None:
        return (await self._loaded()).get(digest)

    async def blobs_of(self, diff_id: str) -> list[tuple[str, BlobSource]]:
        """Every known blob holding the layer `diff_id`."""
        return [(d, s) for d, s in (await self._loaded()).items() if s.diff_id == diff_id]

    async def record(
        self, digest: str, *, repository: str = "", diff_id: str = "", media_type: str = ""
    ) -> None:
        """Add what is learnt about `digest` (a repository that has it, its layer)."""
        async with self._lock:
            records = await self._loaded()
            old = records.get(digest) or BlobSource()
            repositories = [r for r in old.repositories if r != repository]
            if repository:
                repositories.append(repository)
            new = BlobSource(
                diff_id=diff_id or old.diff_id,
                media_type=media_type or old.media_type,
                repositories=repositories[-MAX_REPOSITORIES:],
            )
            if new == old and digest in records:
                return
            await self._store.put(BLOB_SOURCES, digest, self._encoder.encode(new))
            records[digest] = new
