"""The store interface shared by every backend.

Values are bytes (msgspec-encoded JSON); keys live in a namespace called a kind.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Change:
    """One committed write: `value` is None for a delete."""

    kind: str
    key: str
    value: bytes | None


class Transaction(Protocol):
    """Synchronous view used inside `Store.transact`; all of it commits or none."""

    def get(self, kind: str, key: str) -> bytes | None: ...
    def list(self, kind: str) -> list[tuple[str, bytes]]: ...
    def put(self, kind: str, key: str, value: bytes) -> None: ...
    def delete(self, kind: str, key: str) -> bool: ...


class Store(Protocol):
    async def get(self, kind: str, key: str) -> bytes | None: ...
    async def list(self, kind: str) -> list[tuple[str, bytes]]: ...
    async def put(self, kind: str, key: str, value: bytes) -> None: ...
    async def delete(self, kind: str, key: str) -> bool: ...
    async def transact(self, body: Callable[[Transaction], R]) -> R:
        """Run `body` atomically; its writes are committed before this returns."""
        ...

    def watch(self, kind: str | None = None) -> AsyncIterator[Change]:
        """Changes committed after the call, in commit order."""
        ...

    async def close(self) -> None: ...
