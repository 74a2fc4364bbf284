"""Seeding an empty volume with the image's content at its mount path, as dockerd does
on first use; the path is resolved inside the rootfs, its symlinks never leaving it.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from essaim.errors import SystemError_

_MAX_LINKS = 40  # as the kernel's ELOOP limit


def resolve_in_root(root: Path, path: str) -> Path | None:
    """`path` inside `root` with every symlink followed as if `root` were `/`; None
    if it does not exist (or loops)."""
    pending = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_LINKS:
                return None
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            pending = [p for p in target.split("/") if p not in ("", ".")] + pending
            continue
        resolved.append(part)
    return root.joinpath(*resolved)


def copy_if_empty(source: Path, volume_data: Path) -> bool:
    """Copy the directory `source` (its content, owners, modes, links) into the empty
    directory `volume_data`; False if there was nothing to do."""
    if not source.is_dir() or source.is_symlink():
        return False
    with os.scandir(volume_data) as entries:
        if next(entries, None) is not None:
            return False
    # cp -a keeps owners, modes, times, hard links and xattrs, and follows no link.
    done = subprocess.run(
        ["cp", "-a", "--", f"{source}/.", f"{volume_data}/"], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemError_(
            f"failed to copy the image's {source.name or '/'} into volume {volume_data}: "
            f"{done.stderr.strip()}"
        )
    return True
