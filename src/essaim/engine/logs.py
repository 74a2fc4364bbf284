"""Reading a container's log: conmon writes the k8s-file format
(`<RFC3339Nano> <stdout|stderr> <F|P> <text>`) to the live file, rotation keeps older
ones; this reads them oldest first, filters (tail, since, until) and follows rotations.

On the wire the driver is called `json-file`, Docker's default: clients key on that name
(docker-py's `containers.run` only returns output for json-file or journald), and what
users get from it (`docker logs`, follow, tail, timestamps, since) is the same.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import BinaryIO

from essaim.engine.log_files import LogFileSet, OpenedLogs
from essaim.model.rfc3339 import rfc3339_nano

FOLLOW_POLL = 0.05
READ_CHUNK = 1024 * 1024
TAIL_BLOCK = 64 * 1024
_STREAMS = {b"stdout": "stdout", b"stderr": "stderr"}


@dataclass(frozen=True, slots=True)
class LogEntry:
    stream: str  # "stdout" | "stderr"
    data: bytes  # with its newline unless the line was partial
    time_nano: int


class LineParser:
    """k8s-file lines to entries. conmon stamps all lines of one read alike, so the
    last timestamp read is kept rather than parsed again."""

    def __init__(self) -> None:
        self._stamp = b""
        self._nano = 0

    def parse(self, line: bytes) -> LogEntry | None:
        parts = line.split(b" ", 3)
        if len(parts) < 3:
            return None
        stamp, stream, tag = parts[0], parts[1], parts[2]
        text = parts[3] if len(parts) == 4 else b""
        if stamp != self._stamp:
            when = rfc3339_nano(stamp.decode(errors="replace"))
            if when is None:
                return None
            self._stamp, self._nano = stamp, when
        name = _STREAMS.get(stream) or stream.decode(errors="replace")
        return LogEntry(name, text + b"\n" if tag == b"F" else text, self._nano)


def parse_line(line: bytes) -> LogEntry | None:
    return LineParser().parse(line)


def format_timestamp(nanos: int) -> str:
    """Go's RFC3339NanoFixed in UTC (always nine fraction digits), as `logs -t` shows."""
    seconds, fraction = divmod(nanos, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


class _Lines:
    """Complete lines of one open file, read forward; a line being written stays pending.
    Lines end at "\\n" only (a tty's "\\r" belongs to the text)."""

    def __init__(self, f: BinaryIO) -> None:
        self.file = f
        self.pending = b""

    def read(self) -> tuple[list[bytes], bool]:
        """The next complete lines, and whether anything was read at all."""
        data = self.file.read(READ_CHUNK)
        if not data:
            return [], False
        data = self.pending + data
        end = data.rfind(b"\n") + 1
        self.pending = data[end:]
        return data[: end - 1].split(b"\n") if end else [], True


def tail_lines(opened: OpenedLogs, count: int) -> list[bytes]:
    """The last `count` lines across the files, oldest first; the live file is left
    positioned after its last complete line, where following goes on."""
    lines: list[bytes] = []
    if opened.current is not None:
        lines = _tail_of_live(opened.current, count)
    for _, f in reversed(opened.rotated):
        if len(lines) >= count:
            break
        data = f.read()
        end = data.rfind(b"\n")
        older = data[:end].split(b"\n") if end >= 0 else []
        lines = older[max(0, len(older) - (count - len(lines))) :] + lines
    return lines[max(0, len(lines) - count) :]


def _tail_of_live(f: BinaryIO, count: int) -> list[bytes]:
    pos = end = os.fstat(f.fileno()).st_size
    blocks: list[bytes] = []
    newlines = 0
    # One more newline than lines wanted: the first line of a block may be cut.
    while pos > 0 and newlines <= count:
        start = max(0, pos - TAIL_BLOCK)
        f.seek(start)
        block = f.read(pos - start)
        blocks.insert(0, block)
        newlines += block.count(b"\n")
        pos = start
    data = b"".join(blocks)
    cut = data.rfind(b"\n") + 1
    f.seek(end - len(data) + cut)
    if not cut:
        return []
    lines = data[: cut - 1].split(b"\n")
    if pos > 0:
        lines = lines[1:]
    return lines[max(0, len(lines) - count) :]


class LogReader:
    """Entries of one container's log files, optionally following them while
    `running()` holds; a rotation while following loses and repeats nothing."""

    def __init__(self, files: LogFileSet) -> None:
        self.files = files

    async def entries(
        self,
        *,
        tail: int | None,
        since_nano: int,
        until_nano: int | None,
        follow: bool,
        running: Callable[[], bool],
    ) -> AsyncIterator[list[LogEntry]]:
        """Batches of entries, in order. `tail` counts from the end of what is there
        now (None: everything), before `since`/`until` select, as dockerd does."""
        loop = asyncio.get_running_loop()
        parser = LineParser()
        past_until = False

        def select(lines: list[bytes]) -> list[LogEntry]:
            nonlocal past_until
            out: list[LogEntry] = []
            for line in lines:
                entry = parser.parse(line)
                if entry is None or entry.time_nano < since_nano:
                    continue
                if until_nano is not None and entry.time_nano > until_nano:
                    past_until = True
                    break
                out.append(entry)
            return out

        async def drain(source: _Lines) -> AsyncIterator[list[LogEntry]]:
            while not past_until:
                lines, got = await loop.run_in_executor(None, source.read)
                if not got:
                    return
                if batch := select(lines):
                    yield batch

        opened = await self.files.open_after(None)
        current = _Lines(opened.current) if opened.current is not None else None
        gen = opened.current_gen
        try:
            if tail is None:
                history = [_Lines(f) for _, f in opened.rotated]
                for source in [*history, *([current] if current else [])]:
                    async for batch in drain(source):
                        yield batch
            else:
                lines = await loop.run_in_executor(None, tail_lines, opened, tail)
                if batch := select(lines):
                    yield batch
            if not follow:
                return
            while not past_until:
                alive = running()
                read_any = False
                if current is not None:
                    async for batch in drain(current):
                        read_any = True
                        yield batch
                if read_any:
                    continue
                if current is None or self.files.current != gen:
                    changed = current is not None
                    after = gen - 1
                    if current is not None:
                        # conmon closed this file before the new one appeared: what it
                        # wrote last is read now, then the files after it.
                        async for batch in drain(current):
                            yield batch
                        current.file.close()
                        after = gen
                    newer = await self.files.open_after(after)
                    opened.rotated.extend(newer.rotated)
                    for _, f in newer.rotated:
                        changed = True
                        async for batch in drain(_Lines(f)):
                            yield batch
                        f.close()
                    current = _Lines(newer.current) if newer.current is not None else None
                    changed = changed or current is not None or newer.current_gen != gen
                    gen = newer.current_gen
                    if current is not None:
                        opened.current = current.file
                    if changed:
                        continue
                if not alive:
                    return
                await asyncio.sleep(FOLLOW_POLL)
        finally:
            opened.close()
