"""What conmon says on its pipes (JSON lines: {"data": N, "message": ...}) and what the
runtime says when it refuses (logfmt lines whose `msg` is the part users read).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os


class PipeMessages:
    """conmon's JSON lines on a pipe ({"data": N, "message": ...}), one at a time."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        self._buffer = b""
        self._eof = False

    async def next(self) -> dict[str, object] | None:
        """The next message, or None once conmon closed the pipe."""
        while b"\n" not in self._buffer and not self._eof:
            await self._fill()
        if b"\n" not in self._buffer:
            return None
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            parsed = json.loads(line)
        except ValueError:
            return {"data": -1, "message": line.decode(errors="replace")}
        return parsed if isinstance(parsed, dict) else None

    async def _fill(self) -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(self.fd, readable)
        try:
            await ready
        finally:
            loop.remove_reader(self.fd)
        try:
            chunk = os.read(self.fd, 4096)
        except BlockingIOError:
            return
        if chunk:
            self._buffer += chunk
        else:
            self._eof = True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def message_data(message: dict[str, object] | None) -> int | None:
    data = None if message is None else message.get("data")
    return data if isinstance(data, int) else None


def runtime_message(raw: str) -> str:
    """runc logs `time=... level=error msg="..."`; keep the message, as dockerd does."""
    lines = [line for line in raw.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if 'msg="' in line:
            msg = line.split('msg="', 1)[1].rsplit('"', 1)[0]
            return msg.replace('\\"', '"')
    return lines[-1] if lines else "unknown runtime error"
