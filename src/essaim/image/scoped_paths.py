"""Paths resolved inside a root as if it were `/` (a chroot's lookup): `..` stops at the
root and absolute symlinks point back into it. Pure; shared by every untrusted tar.

Layer unpacking, `docker load` and `docker cp` all resolve names this way, each giving
its own `readlink` (a path walk in a private directory, or openat2 in a container).
"""

from __future__ import annotations

from collections.abc import Callable

from essaim.errors import InvalidParameter

# The kernel's limit on symbolic links followed in one lookup.
MAX_SYMLINKS = 40


def clean_parts(path: str) -> list[str]:
    """The components of `path` taken from `/`, `.` dropped and `..` applied (never above
    the root, as a chroot's lookup)."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return parts


def follow_in_scope(parts: list[str], readlink: Callable[[list[str]], str | None]) -> list[str]:
    """`parts` with every symlink resolved as if the root were `/` (moby's
    FollowSymlinkInScope): `readlink(resolved_parts)` gives the target of a link, None for
    anything else, including names that do not exist (kept as they are)."""
    resolved: list[str] = []
    pending = list(parts)
    hops = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        target = readlink([*resolved, part])
        if target is None:
            resolved.append(part)
            continue
        hops += 1
        if hops > MAX_SYMLINKS:
            raise InvalidParameter(f"too many links in /{'/'.join(parts)}")
        if target.startswith("/"):
            resolved = []
        pending[:0] = target.split("/")
    return resolved
