"""What every registry handler works with: the request as the registry sees it (a
repository name and path parameters) and the registry's storage, uploads and executor.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from essaim.api.request import QueryParams
from essaim.image.registry.errors import RegistryError
from essaim.image.registry.storage import RegistryStorage
from essaim.image.registry.uploads import UploadSessions

T = TypeVar("T")


@dataclass
class RegistryRequest:
    method: str
    path: str
    query: QueryParams
    headers: dict[str, str]  # lower-case names
    body_chunks: Callable[[], AsyncIterator[bytes]]
    name: str = ""  # the repository, when the route has one
    params: dict[str, str] = field(default_factory=dict)

    async def stream(self) -> AsyncIterator[bytes]:
        async for chunk in self.body_chunks():
            yield chunk

    async def body(self, limit: int) -> bytes:
        """The whole body; more than `limit` bytes is SIZE_INVALID (413)."""
        parts: list[bytes] = []
        size = 0
        async for chunk in self.body_chunks():
            size += len(chunk)
            if size > limit:
                raise RegistryError("SIZE_INVALID", "payload too large", status=413)
            parts.append(chunk)
        return b"".join(parts)


@dataclass
class Registry:
    storage: RegistryStorage
    uploads: UploadSessions
    executor: Executor

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
