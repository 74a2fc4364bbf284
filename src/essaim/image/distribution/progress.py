"""Docker's JSON progress messages for pull and push: status lines, per-layer progress
with `progressDetail` and the pre-rendered bar the daemon puts in `progress`, and a
rate limit so a big transfer is tens of messages, not thousands.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

Message = dict[str, Any]
# moby's progress reader: an update per 512 KiB at most, and no more than ten a second.
UPDATE_BYTES = 512 * 1024
UPDATE_SECONDS = 0.1
_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def human_size(size: float) -> str:
    """go-units HumanSize: decimal units, four significant digits (`1.081MB`)."""
    i = 0
    while size >= 1000.0 and i < len(_UNITS) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.4g}{_UNITS[i]}"


def progress_bar(current: int, total: int) -> str:
    """JSONProgress.String() as the daemon renders it (no terminal: 200 columns)."""
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        return f"{human_size(current):>8}"
    percentage = min(int(current / total * 100) // 2, 50)
    bar = "[" + "=" * percentage + ">" + " " * max(50 - percentage, 0) + "] "
    if current > total:
        return bar + f"{human_size(current):>8}"
    return bar + f"{human_size(current):>8}/{human_size(total)}"


def status(text: str, ident: str | None = None) -> Message:
    message: Message = {"status": text}
    if ident is not None:
        message["progressDetail"] = {}
        message["id"] = ident
    return message


def plain(text: str, ident: str | None = None) -> Message:
    """A status line without `progressDetail` (`Pulling from`, `Digest:`...)."""
    message: Message = {"status": text}
    if ident is not None:
        message["id"] = ident
    return message


def transfer(text: str, ident: str, current: int, total: int) -> Message:
    return {
        "status": text,
        "progressDetail": {"current": current, "total": total},
        "progress": progress_bar(current, total),
        "id": ident,
    }


def error(text: str) -> Message:
    return {"errorDetail": {"message": text}, "error": text}


Emit = Callable[[Message], None]


class Meter:
    """Progress of one layer's transfer: `advance` emits at most every UPDATE_BYTES and
    UPDATE_SECONDS; `finish` always emits the final figure."""

    def __init__(self, emit: Emit, text: str, ident: str, total: int) -> None:
        self._emit = emit
        self._text = text
        self._ident = ident
        self._total = total
        self.current = 0
        self._last_bytes = 0
        self._last_time = 0.0

    def advance(self, count: int) -> None:
        self.current += count
        now = time.monotonic()
        if (
            self.current - self._last_bytes >= UPDATE_BYTES
            and now - self._last_time >= UPDATE_SECONDS
        ):
            self._send(now)

    def finish(self) -> None:
        if self.current != self._last_bytes:
            self._send(time.monotonic())

    def _send(self, now: float) -> None:
        self._last_bytes = self.current
        self._last_time = now
        self._emit(transfer(self._text, self._ident, self.current, self._total))


class Channel:
    """Messages from a running pull or push to the response that streams them."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Message | None] = asyncio.Queue()
        self.sent = 0

    def emit(self, message: Message) -> None:
        self.sent += 1
        self._queue.put_nowait(message)

    def close(self) -> None:
        self._queue.put_nowait(None)

    async def next(self) -> Message | None:
        return await self._queue.get()
