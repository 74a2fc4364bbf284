"""`docker top`: the host's `ps` with the client's arguments, keeping the rows of the
container's processes (found by the PID column's title), as dockerd does.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from essaim.errors import InvalidParameter, SystemError_

DEFAULT_PS_ARGS = "-ef"
# moby refuses renaming another column to PID: it would pass for the pid column.
_RENAMED_PID = re.compile(r"\s+([^\s]*)=\s*(PID[^\s]*)")
# Go's fieldsASCII: only ASCII whitespace separates fields (a command may hold others).
_ASCII_SPACE = re.compile(r"[ \t\n\f\r\v]+")


@dataclass(frozen=True)
class ProcessTable:
    titles: list[str]
    processes: list[list[str]]


def ps_argv(ps_args: str) -> list[str]:
    """The client's arguments as `ps` gets them (dockerd splits them on spaces)."""
    for key, value in _RENAMED_PID.findall(ps_args or DEFAULT_PS_ARGS):
        if key != "pid":
            raise InvalidParameter(f'specifying "{key}={value}" is not allowed')
    return (ps_args or DEFAULT_PS_ARGS).split()


def _fields(line: str) -> list[str]:
    return [f for f in _ASCII_SPACE.split(line) if f]


def parse_ps_output(output: str, pids: set[int]) -> ProcessTable:
    """Keep the rows whose PID is one of `pids`; thread rows (PID `-`, from `m`) follow
    their process. Fields past the titles are the command's words, joined back."""
    lines = output.split("\n")
    titles = _fields(lines[0])
    if "PID" not in titles:
        raise SystemError_("Couldn't find PID field in ps output")
    pid_index = titles.index("PID")
    processes: list[list[str]] = []
    in_container = False
    for line in lines[1:]:
        fields = _fields(line)
        if len(fields) <= pid_index:
            continue
        raw = fields[pid_index]
        if raw == "-":
            if in_container:
                processes.append(_row(fields, len(titles)))
            continue
        try:
            pid = int(raw)
        except ValueError:
            raise SystemError_(f"Unexpected pid '{raw}': invalid syntax") from None
        in_container = pid in pids
        if in_container:
            processes.append(_row(fields, len(titles)))
    return ProcessTable(titles, processes)


def _row(fields: list[str], columns: int) -> list[str]:
    return [*fields[: columns - 1], " ".join(fields[columns - 1 :])]


async def _ps(argv: list[str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        "ps", *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


async def top(ps_args: str, pids: list[int]) -> ProcessTable:
    """Run `ps`, asking it for the container's pids only (`-q`) where the arguments
    allow; some (forest listings) refuse it, and get the whole table to filter."""
    argv = ps_argv(ps_args)
    code, out, err = 1, "", ""
    if pids:
        code, out, err = await _ps([*argv, "-q" + ",".join(str(p) for p in pids)])
    if code != 0:
        code, out, err = await _ps(argv)
        if code != 0:
            first = err.strip().split("\n", 1)[0]
            raise SystemError_(f"ps: {first or f'exit status {code}'}")
    return parse_ps_output(out, set(pids))
