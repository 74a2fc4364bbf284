"""Rotated log files: their names, how a rotation shifts them within `max-file`, how a
daemon start numbers what it finds, and reading lines across files (tail, k8s-file)."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

import pytest

from essaim.engine.log_files import (
    LogFileSet,
    rotated_index,
    rotated_path,
    rotation_moves,
)
from essaim.engine.logs import LineParser, format_timestamp, tail_lines

pytestmark = pytest.mark.unit

LOG = Path("/c/container.log")


def test_rotated_names_are_dockers() -> None:
    assert rotated_path(LOG, 1, compressed=False) == Path("/c/container.log.1")
    assert rotated_path(LOG, 3, compressed=True) == Path("/c/container.log.3.gz")
    assert rotated_index(LOG, Path("/c/container.log.2")) == (2, False)
    assert rotated_index(LOG, Path("/c/container.log.12.gz")) == (12, True)
    others = ("container.log", "container.log.tmp", "container.log.0", "container.log.1.gz-tmp")
    for other in others:
        assert rotated_index(LOG, Path("/c") / other) is None


def test_a_rotation_shifts_oldest_first_and_drops_beyond_max_file() -> None:
    # generations 7 (.1), 6 (.2.gz), 5 (.3); the live file is generation 8
    rotated = {
        7: rotated_path(LOG, 1, compressed=False),
        6: rotated_path(LOG, 2, compressed=True),
        5: rotated_path(LOG, 3, compressed=False),
    }
    moves, dropped = rotation_moves(rotated, 8, LOG, max_files=4)
    assert dropped == [5]
    assert moves == [
        (Path("/c/container.log.2.gz"), Path("/c/container.log.3.gz")),
        (Path("/c/container.log.1"), Path("/c/container.log.2")),
    ]
    assert rotation_moves(rotated, 8, LOG, max_files=1) == ([], [5, 6, 7])


def test_move_live_file_keeps_at_most_max_file_files(tmp_path: Path) -> None:
    files = LogFileSet(tmp_path / "container.log")
    files.load()
    for n in range(5):
        files.log.write_text(f"gen {n}\n")
        files.move_live_file(max_files=3)
        files.next_generation()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["container.log.1", "container.log.2"]
    assert (tmp_path / "container.log.1").read_text() == "gen 4\n"
    assert (tmp_path / "container.log.2").read_text() == "gen 3\n"
    assert files.rotated == {4: tmp_path / "container.log.1", 3: tmp_path / "container.log.2"}


def test_a_daemon_start_numbers_the_files_it_finds(tmp_path: Path) -> None:
    log = tmp_path / "container.log"
    log.write_text("live\n")
    (tmp_path / "container.log.1").write_text("newer\n")
    (tmp_path / "container.log.2.gz").write_bytes(gzip.compress(b"older\n"))
    # A compression cut short: the complete .gz wins, the partial one goes.
    (tmp_path / "container.log.3").write_text("oldest\n")
    (tmp_path / "container.log.3.gz").write_bytes(gzip.compress(b"oldest\n"))
    (tmp_path / "container.log.9.gz-tmp").write_bytes(b"partial")
    files = LogFileSet(log)
    files.load()
    assert files.current == 3
    assert files.rotated == {
        2: tmp_path / "container.log.1",
        1: tmp_path / "container.log.2.gz",
        0: tmp_path / "container.log.3.gz",
    }
    assert not (tmp_path / "container.log.9.gz-tmp").exists()
    assert not (tmp_path / "container.log.3").exists()

    async def read_all() -> list[bytes]:
        opened = await files.open_after(None)
        try:
            parts = [f.read() for _, f in opened.rotated]
            assert opened.current is not None
            return [*parts, opened.current.read()]
        finally:
            opened.close()

    assert asyncio.run(read_all()) == [b"oldest\n", b"older\n", b"newer\n", b"live\n"]


def _line(n: int) -> bytes:
    return b"2024-05-01T10:00:00.000000001+00:00 stdout F line %d" % n


def test_tail_counts_back_across_files(tmp_path: Path) -> None:
    log = tmp_path / "container.log"
    (tmp_path / "container.log.1").write_bytes(b"".join(_line(n) + b"\n" for n in range(0, 5)))
    # the live file ends with a line still being written
    log.write_bytes(b"".join(_line(n) + b"\n" for n in range(5, 8)) + b"2024-05-01T10:0")
    files = LogFileSet(log)

    async def tail(count: int) -> tuple[list[bytes], bytes]:
        opened = await files.open_after(None)
        try:
            lines = tail_lines(opened, count)
            assert opened.current is not None
            return lines, opened.current.read()
        finally:
            opened.close()

    lines, rest = asyncio.run(tail(4))
    assert lines == [_line(n) for n in (4, 5, 6, 7)]
    assert rest == b"2024-05-01T10:0"  # following goes on from the partial line
    assert asyncio.run(tail(2))[0] == [_line(6), _line(7)]
    assert asyncio.run(tail(0))[0] == []
    assert asyncio.run(tail(100))[0] == [_line(n) for n in range(8)]


def test_k8s_file_lines_parse_into_entries() -> None:
    parser = LineParser()
    full = parser.parse(b"2024-05-01T12:00:00.5+02:00 stderr F oops\r")
    assert full is not None
    assert (full.stream, full.data) == ("stderr", b"oops\r\n")
    assert full.time_nano == 1714557600_500000000
    partial = parser.parse(b"2024-05-01T12:00:00.5+02:00 stdout P no newline")
    assert partial is not None and partial.data == b"no newline"
    assert parser.parse(b"garbage") is None
    assert format_timestamp(1714557600_500000000) == "2024-05-01T10:00:00.500000000Z"
