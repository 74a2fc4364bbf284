"""An API request as handlers see it: method, unversioned path, API version, query,
headers, path parameters, and a body that can be read whole or streamed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from essaim.errors import InvalidParameter


class ClientGone(Exception):
    """The client hung up (or broke the framing) while we read from or wrote to it."""


_FALSE_WORDS = frozenset({"", "0", "no", "false", "none"})


class QueryParams:
    """Query string values; Docker's clients repeat some keys (`t`, `names`, `changes`)."""

    def __init__(self, raw: str) -> None:
        self._values: dict[str, list[str]] = parse_qs(raw, keep_blank_values=True)

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self._values.get(name)
        return values[-1] if values else default

    def get_all(self, name: str) -> list[str]:
        return list(self._values.get(name, []))

    def get_bool(self, name: str, default: bool = False) -> bool:
        """moby's BoolValue: anything but an empty/0/no/false/none value is true."""
        value = self.get(name)
        if value is None:
            return default
        return value.strip().lower() not in _FALSE_WORDS

    def get_int(self, name: str, default: int | None = None) -> int | None:
        value = self.get(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise InvalidParameter(f"invalid value for {name}: {value!r}") from None

    def get_unix_nano(self, name: str) -> int | None:
        """A `since`/`until` value in ns: Unix seconds with an optional fraction, the
        form the CLI and the SDK send (they turn durations and dates into it)."""
        value = self.get(name)
        if not value:
            return None
        seconds, _, fraction = value.partition(".")
        if not seconds.lstrip("-").isdigit() or (fraction and not fraction.isdigit()):
            raise InvalidParameter(f"invalid value for {name}: {json.dumps(value)}")
        return int(seconds) * 1_000_000_000 + int(fraction[:9].ljust(9, "0"))

    def get_json(self, name: str) -> Any:
        value = self.get(name)
        if not value:
            return None
        try:
            return json.loads(value)
        except ValueError as exc:
            raise InvalidParameter(f"invalid {name} value: {exc}") from None


@dataclass
class Request:
    method: str
    path: str  # without the /v1.xx prefix
    version: tuple[int, int]
    query: QueryParams
    headers: dict[str, str]  # lower-case names
    body_chunks: Callable[[], AsyncIterator[bytes]]
    params: dict[str, str] = field(default_factory=dict)
    _body: bytes | None = None

    @property
    def wants_upgrade(self) -> bool:
        return "upgrade" in self.headers.get("connection", "").lower()

    def version_at_least(self, major: int, minor: int) -> bool:
        return self.version >= (major, minor)

    async def stream(self) -> AsyncIterator[bytes]:
        if self._body is not None:
            if self._body:
                yield self._body
            return
        async for chunk in self.body_chunks():
            yield chunk

    async def body(self) -> bytes:
        if self._body is None:
            self._body = b"".join([chunk async for chunk in self.body_chunks()])
        return self._body

    async def json(self, *, allow_empty: bool = True) -> Any:
        """The body as JSON; an empty body is None. Malformed JSON is Docker's 400."""
        raw = await self.body()
        if not raw.strip():
            if allow_empty:
                return None
            raise InvalidParameter("invalid JSON: request body is empty")
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise InvalidParameter(f"invalid character in JSON body: {exc}") from None
