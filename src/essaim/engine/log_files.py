"""A container's log files: the live `<log>` conmon writes and the rotated ones before it
(`<log>.1` newest ... `<log>.N-1` oldest, `.gz` once compressed), numbered for readers.

Each file has a generation number that stays with it through renames and compression:
the live file has the highest, and a reader that has finished generation g goes on with
the files after g wherever they are now. Renames happen only under `lock`, so a set of
files opened under it is consistent; an open file keeps its content through any rename.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, cast

_ROTATED = re.compile(r"(\d+)(\.gz)?")
_PARTIAL_GZIP = ".gz-tmp"


def rotated_path(log: Path, index: int, *, compressed: bool) -> Path:
    """`<log>.<index>`, or `<log>.<index>.gz`: the names Docker's json-file driver uses."""
    return log.with_name(f"{log.name}.{index}{'.gz' if compressed else ''}")


def rotated_index(log: Path, path: Path) -> tuple[int, bool] | None:
    """(index, compressed) of a rotated file of `log`; None for any other name."""
    prefix = log.name + "."
    if not path.name.startswith(prefix):
        return None
    m = _ROTATED.fullmatch(path.name[len(prefix) :])
    if m is None or int(m.group(1)) < 1:
        return None
    return int(m.group(1)), m.group(2) is not None


def rotation_moves(
    rotated: dict[int, Path], current: int, log: Path, max_files: int
) -> tuple[list[tuple[Path, Path]], list[int]]:
    """What rotating generation `current` out of the live file does to the rotated ones:
    the renames (oldest first, so no name is taken twice) and the generations dropped
    because `max_files` (the live file included) would be exceeded."""
    moves: list[tuple[Path, Path]] = []
    dropped: list[int] = []
    for gen in sorted(rotated):
        index = current + 1 - gen
        if index > max_files - 1:
            dropped.append(gen)
            continue
        path = rotated[gen]
        target = rotated_path(log, index, compressed=path.name.endswith(".gz"))
        if target != path:
            moves.append((path, target))
    return moves, dropped


def open_log(path: Path) -> BinaryIO:
    """A log file for reading, decompressed when it is a `.gz`."""
    if path.name.endswith(".gz"):
        return cast(BinaryIO, gzip.open(path, "rb"))
    return path.open("rb")


@dataclass
class OpenedLogs:
    """Files opened together under the lock: rotated generations oldest first, then the
    live file (None when there is none right now) and its generation."""

    rotated: list[tuple[int, BinaryIO]]
    current: BinaryIO | None
    current_gen: int

    def close(self) -> None:
        for _, f in self.rotated:
            f.close()
        if self.current is not None:
            self.current.close()


@dataclass
class LogFileSet:
    """The files of one container's log, as generations."""

    log: Path
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    current: int = 0
    rotated: dict[int, Path] = field(default_factory=dict)  # generation -> path now
    compressing: set[int] = field(default_factory=set)
    _loaded: bool = False

    def load(self) -> None:
        """Number the files on disk (once): a daemon restart finds rotated files there.
        A compression cut short leaves a partial file, removed here, and possibly both
        `.k` and `.k.gz`, of which the complete `.gz` is kept."""
        if self._loaded:
            return
        self._loaded = True
        found: dict[int, Path] = {}
        try:
            names = os.listdir(self.log.parent)
        except FileNotFoundError:
            names = []
        for name in names:
            path = self.log.parent / name
            if name.startswith(self.log.name + ".") and name.endswith(_PARTIAL_GZIP):
                path.unlink(missing_ok=True)
                continue
            parsed = rotated_index(self.log, path)
            if parsed is None:
                continue
            index, compressed = parsed
            if index in found and not compressed:
                path.unlink(missing_ok=True)
                continue
            if index in found:
                found[index].unlink(missing_ok=True)
            found[index] = path
        self.current = max(found, default=0)
        self.rotated = {self.current - index: path for index, path in found.items()}

    async def open_after(self, after: int | None) -> OpenedLogs:
        """Open the rotated generations newer than `after` (all with None) and the live
        file, consistently with any rotation."""
        async with self.lock:
            self.load()
            opened: list[tuple[int, BinaryIO]] = []
            try:
                for gen in sorted(self.rotated):
                    if after is not None and gen <= after:
                        continue
                    with contextlib.suppress(FileNotFoundError):
                        opened.append((gen, open_log(self.rotated[gen])))
                try:
                    current: BinaryIO | None = self.log.open("rb")
                except FileNotFoundError:
                    current = None
            except BaseException:
                for _, f in opened:
                    f.close()
                raise
            return OpenedLogs(opened, current, self.current)

    # The rotator's side: called with `lock` held.

    def move_live_file(self, max_files: int) -> None:
        """Shift the rotated files up one index (dropping what `max_files` does not keep)
        and rename the live file to `<log>.1`. Blocking: run it in the executor."""
        moves, dropped = rotation_moves(self.rotated, self.current, self.log, max_files)
        for gen in dropped:
            self.rotated.pop(gen).unlink(missing_ok=True)
        by_path = {path: gen for gen, path in self.rotated.items()}
        for source, target in moves:
            os.rename(source, target)
            self.rotated[by_path[source]] = target
        first = rotated_path(self.log, 1, compressed=False)
        os.rename(self.log, first)
        self.rotated[self.current] = first

    def undo_move(self) -> None:
        """The monitor did not reopen its log: the live file gets its name back."""
        path = self.rotated.pop(self.current, None)
        if path is not None and not self.log.exists():
            os.rename(path, self.log)

    def next_generation(self) -> None:
        self.current += 1

    def uncompressed(self) -> list[int]:
        return [
            gen
            for gen, path in sorted(self.rotated.items())
            if not path.name.endswith(".gz") and gen not in self.compressing
        ]

    def partial_gzip(self, gen: int) -> Path:
        return self.log.with_name(f"{self.log.name}.{gen}{_PARTIAL_GZIP}")


class LogFiles:
    """The log file sets of all containers, made on first use."""

    def __init__(self, log_path: Callable[[str], Path]) -> None:
        self._log_path = log_path
        self._sets: dict[str, LogFileSet] = {}

    def get(self, cid: str) -> LogFileSet:
        found = self._sets.get(cid)
        if found is None:
            found = self._sets[cid] = LogFileSet(self._log_path(cid))
        return found

    def prune(self, keep: set[str]) -> None:
        """Forget removed containers (their files went with their directory)."""
        for cid in [c for c in self._sets if c not in keep]:
            del self._sets[cid]
