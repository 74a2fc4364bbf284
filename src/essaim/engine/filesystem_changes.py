"""`docker diff`: what a container changed, read from its overlay upper directory against
its image's layers, reported as moby's overlay driver does (archive.OverlayChanges).

Whiteouts (0/0 character devices) and opaque directories that hide a lower one are
deletions; names also found in a lower layer are modifications, others additions; the
parent of an addition or deletion is a modification. Everything here blocks.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

MODIFIED, ADDED, DELETED = 0, 1, 2
_OPAQUE_XATTR = "trusted.overlay.opaque"
# What the runtime creates in the upper directory to mount over (Docker keeps these in a
# per-container "init" layer below, so they never show in its diff). Only left out while
# they are still the empty placeholders the runtime made.
INIT_PLACEHOLDERS = frozenset(
    {"/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/dev", "/proc", "/sys", "/.dockerenv"}
)


@dataclass(frozen=True)
class Change:
    path: str
    kind: int


def _in_lower(lower: Path, parts: list[str]) -> os.stat_result | None:
    """The lower layer's entry at `parts`, reached through real directories only (a
    symlink in a layer is never followed out of it)."""
    current = os.fspath(lower)
    for index, part in enumerate(parts):
        current = os.path.join(current, part)
        try:
            st = os.lstat(current)
        except OSError:
            return None
        if index < len(parts) - 1 and not stat.S_ISDIR(st.st_mode):
            return None
    return st if parts else None


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, _OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def is_placeholder(path: str, st: os.stat_result, lowers: list[Path], parts: list[str]) -> bool:
    """Whether the upper directory's entry at `path` (`parts` under the root) is one of
    the runtime's empty mount placeholders rather than the container's own change."""
    return _placeholder(path, st, lowers, parts)


def _placeholder(path: str, st: os.stat_result, lowers: list[Path], parts: list[str]) -> bool:
    if path not in INIT_PLACEHOLDERS or any(_in_lower(low, parts) for low in lowers):
        return False
    if stat.S_ISREG(st.st_mode):
        return st.st_size == 0
    return stat.S_ISDIR(st.st_mode)


def overlay_changes(upper: Path, lowers: list[Path]) -> list[Change]:
    """The changes in `upper` over `lowers` (top first), in walk (name) order."""
    changes: list[Change] = []
    changed_dirs: set[str] = set()

    def visit(dir_path: str, parts: list[str]) -> bool:
        """Walk one directory; True when it held a runtime placeholder."""
        try:
            names = sorted(os.listdir(dir_path))
        except OSError:
            return False
        held_placeholder = False
        for name in names:
            full = os.path.join(dir_path, name)
            child = [*parts, name]
            try:
                st = os.lstat(full)
            except OSError:
                continue
            path = "/" + "/".join(child)
            if _placeholder(path, st, lowers, child):
                held_placeholder = True
                continue
            recorded = record(full, path, st, child)
            if not stat.S_ISDIR(st.st_mode):
                continue
            if recorded:
                changed_dirs.add(path)
            before = len(changes)
            held = visit(full, child)
            # Changed only by the placeholders in it (/etc): not a change of the
            # container's, as under Docker, whose init layer holds them.
            if held and len(changes) == before and changes[-1:] == [Change(path, MODIFIED)]:
                changes.pop()
                changed_dirs.discard(path)
        return held_placeholder

    def record(full: str, path: str, st: os.stat_result, parts: list[str]) -> bool:
        """Record the change at `path`; False when a directory turned out unchanged."""
        is_dir = stat.S_ISDIR(st.st_mode)
        below = [found for low in lowers if (found := _in_lower(low, parts)) is not None]
        if _is_whiteout(st) or (is_dir and _is_opaque(full) and below):
            kind = DELETED
        elif not below:
            kind = ADDED
        else:
            kind = MODIFIED
            first = below[0]
            if (
                is_dir
                and stat.S_ISDIR(first.st_mode)
                and first.st_size == st.st_size
                and first.st_mode == st.st_mode
                and first.st_mtime_ns == st.st_mtime_ns
            ):
                return False  # a directory copied up only because of its children
        if kind in (ADDED, DELETED):
            parent = path.rpartition("/")[0]
            if parent and parent not in changed_dirs:
                changes.append(Change(parent, MODIFIED))
                changed_dirs.add(parent)
        changes.append(Change(path, kind))
        return True

    if upper.is_dir():
        visit(os.fspath(upper), [])
    return changes
