"""A typed view of one kind in the store: msgspec structs in, msgspec structs out."""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec

from essaim.store.base import Store

T = TypeVar("T", bound=msgspec.Struct)


class Collection(Generic[T]):
    def __init__(self, store: Store, kind: str, type_: type[T]) -> None:
        self._store = store
        self.kind = kind
        self._decoder = msgspec.json.Decoder(type_)
        self._encoder = msgspec.json.Encoder()

    def encode(self, obj: T) -> bytes:
        return self._encoder.encode(obj)

    def decode(self, raw: bytes) -> T:
        return self._decoder.decode(raw)

    async def get(self, key: str) -> T | None:
        raw = await self._store.get(self.kind, key)
        return None if raw is None else self.decode(raw)

    async def list(self) -> list[T]:
        return [self.decode(raw) for _, raw in await self._store.list(self.kind)]

    async def put(self, key: str, obj: T) -> None:
        await self._store.put(self.kind, key, self.encode(obj))

    async def delete(self, key: str) -> bool:
        return await self._store.delete(self.kind, key)
