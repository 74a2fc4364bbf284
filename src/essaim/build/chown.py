"""The `--chown` and `--chmod` flags of COPY and ADD: user and group names looked up in
the destination's own /etc/passwd and /etc/group (read inside its root), modes parsed
as BuildKit does. Messages are Docker's; lookups block (run them in a thread).
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

from essaim.build.sources import go_strerror
from essaim.engine.in_root import open_in_root, open_root
from essaim.errors import InvalidParameter

# Go's strconv.Atoi: an optional sign and decimal digits, within int64.
_ATOI = re.compile(r"[+-]?[0-9]+")
_INT64 = 1 << 63
_CHOWN_FAILED = "unable to convert uid/gid chown string to host mapping"


class _LookupError(Exception):
    pass


def parse_chown(spec: str, dest_root: Path) -> tuple[int, int]:
    """`user[:group]` (names or numbers; the user stands for the group too when none
    is given) as the ids the copied files get, names read from the destination root."""
    parts = spec.split(":")
    if len(parts) > 2:
        raise InvalidParameter(f"{_CHOWN_FAILED}: invalid chown string format: {spec}")
    user, group = (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    try:
        uid = _lookup(dest_root, user, "passwd", "user")
    except _LookupError as exc:
        raise InvalidParameter(f"{_CHOWN_FAILED}: can't find uid for user {user}: {exc}") from None
    try:
        gid = _lookup(dest_root, group, "group", "group")
    except _LookupError as exc:
        raise InvalidParameter(
            f"{_CHOWN_FAILED}: can't find gid for group {group}: {exc}"
        ) from None
    return uid, gid


def parse_chmod(spec: str) -> int:
    """An octal mode up to 07777 (Go's ParseUint(spec, 8, 32)), as BuildKit reads
    `--chmod`; anything else is refused in its words."""
    if spec and all(ch in "01234567" for ch in spec):
        value = int(spec, 8)
        if value <= 0o7777:
            return value
    raise InvalidParameter(
        f"invalid chmod parameter: '{spec}'. it should be octal string and between 0 and 07777"
    )


def _atoi(text: str) -> int | None:
    if not _ATOI.fullmatch(text):
        return None
    value = int(text)
    if not -_INT64 <= value < _INT64:
        return None
    # The kernel takes ids as 32 bits: what Go's Lchown hands it.
    return value & 0xFFFFFFFF


def _lookup(dest_root: Path, name: str, database: str, kind: str) -> int:
    """The id of `name` (a number stands for itself) from /etc/<database>: the first
    entry of that name, its third field (0 when that is not a number, as runc reads)."""
    number = _atoi(name)
    if number is not None:
        return number
    for fields in _entries(dest_root, database):
        if fields[0] == name:
            return (_atoi(fields[2]) if len(fields) > 2 else None) or 0
    raise _LookupError(f"no such {kind}: {name}")


def _entries(dest_root: Path, database: str) -> Iterator[list[str]]:
    root_fd = open_root(str(dest_root))
    try:
        fd = open_in_root(root_fd, ["etc", database], os.O_RDONLY)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EISDIR):
            raise _LookupError(f"open /etc/{database}: {go_strerror(exc.errno)}") from None
        raise
    finally:
        os.close(root_fd)
    if stat.S_ISDIR(os.fstat(fd).st_mode):
        os.close(fd)
        raise _LookupError(f"read /etc/{database}: is a directory")
    with open(fd, "rb") as f:
        for raw in f:
            line = raw.strip()
            if line:
                yield line.decode("utf-8", "surrogateescape").split(":")
