"""What a handler returns: a whole JSON body, nothing, a chunked stream flushed per
message, or a hijacked connection handed to a coroutine.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from essaim.api.hijack import HijackedStream

JSON = "application/json"


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str | None = JSON
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_response(data: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(data, separators=(",", ":")).encode() + b"\n")


def empty(status: int = 204) -> Response:
    return Response(status, b"", None)


def text(body: str, status: int = 200, content_type: str = "text/plain; charset=utf-8") -> Response:
    return Response(status, body.encode(), content_type)


@dataclass
class StreamResponse:
    """Sent with chunked encoding; each yielded item is written and flushed at once.

    With `length`, the body is framed by Content-Length instead (a registry's blobs:
    clients read the size from it, HEAD included) and must be exactly that long.
    """

    chunks: AsyncIterator[bytes]
    content_type: str = JSON
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    length: int | None = None

    def head_headers(self) -> list[tuple[str, str]]:
        hdrs = [*self.headers, ("Content-Type", self.content_type)]
        if self.length is not None:
            hdrs.append(("Content-Length", str(self.length)))
        return hdrs


@dataclass
class HijackResponse:
    """101 (or 200 without an Upgrade request) in its own write, then raw bytes both ways."""

    run: Callable[[HijackedStream], Awaitable[None]]
    content_type: str = "application/vnd.docker.raw-stream"


AnyResponse = Response | StreamResponse | HijackResponse


def json_lines(items: AsyncIterator[Any]) -> AsyncIterator[bytes]:
    """One JSON document per line, the framing every Docker client accepts."""

    async def encode() -> AsyncIterator[bytes]:
        async for item in items:
            yield json.dumps(item, separators=(",", ":")).encode() + b"\r\n"

    return encode()
