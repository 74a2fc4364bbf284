"""Reading a container's log: conmon writes the k8s-file format
(`<RFC3339Nano> <stdout|stderr> <F|P> <text>`); this parses, filters and follows it.

On the wire the driver is called `json-file`, Docker's default: clients key on that name
(docker-py's `containers.run` only returns output for json-file or journald), and what
users get from it (`docker logs`, follow, tail, timestamps, since) is the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from essaim.model.rfc3339 import rfc3339_nano

DRIVER_NAME = "json-file"
FOLLOW_POLL = 0.05


@dataclass(frozen=True, slots=True)
class LogEntry:
    stream: str  # "stdout" | "stderr"
    data: bytes  # with its newline unless the line was partial
    time_nano: int


def parse_line(line: bytes) -> LogEntry | None:
    parts = line.split(b" ", 3)
    if len(parts) < 3:
        return None
    stamp, stream, tag = parts[0], parts[1], parts[2]
    text = parts[3] if len(parts) == 4 else b""
    if text.endswith(b"\n"):
        text = text[:-1]
    when = rfc3339_nano(stamp.decode(errors="replace"))
    if when is None:
        return None
    full = tag == b"F"
    return LogEntry(stream.decode(), text + (b"\n" if full else b""), when)


class LogReader:
    """Entries of one log file, optionally following it while `running()` holds."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read_all(self) -> tuple[list[LogEntry], int]:
        """Every complete entry so far and the byte offset after the last one."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return [], 0
        end = raw.rfind(b"\n") + 1
        entries = [e for ln in raw[:end].splitlines() if (e := parse_line(ln)) is not None]
        return entries, end

    async def entries(
        self,
        *,
        tail: int | None,
        since_nano: int,
        until_nano: int | None,
        follow: bool,
        running: Callable[[], bool],
    ) -> AsyncIterator[LogEntry]:
        loop = asyncio.get_running_loop()
        entries, offset = await loop.run_in_executor(None, self.read_all)
        if tail is not None:
            entries = entries[-tail:] if tail > 0 else []
        for entry in entries:
            if entry.time_nano < since_nano:
                continue
            if until_nano is not None and entry.time_nano > until_nano:
                return
            yield entry
        if not follow:
            return
        pending = b""
        while True:
            alive = running()
            chunk = await loop.run_in_executor(None, self._read_from, offset)
            offset += len(chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for ln in lines:
                parsed = parse_line(ln)
                if parsed is None or parsed.time_nano < since_nano:
                    continue
                if until_nano is not None and parsed.time_nano > until_nano:
                    return
                yield parsed
            if not alive and not chunk:
                return
            if not chunk:
                await asyncio.sleep(FOLLOW_POLL)

    def _read_from(self, offset: int) -> bytes:
        try:
            with self.path.open("rb") as f:
                f.seek(offset)
                return f.read()
        except FileNotFoundError:
            return b""
