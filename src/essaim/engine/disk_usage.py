"""How much disk a container takes: its writable layer (`SizeRw`, what it changed) and
that plus its image (`SizeRootFs`), counted like dockerd (file sizes, hard links once).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def directory_size(path: Path) -> int:
    """Bytes of the files under `path`, not following symlinks, each inode counted once."""
    total = 0
    seen: set[tuple[int, int]] = set()
    pending = [str(path)]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(info.st_mode):
                pending.append(entry.path)
                continue
            if info.st_nlink > 1:
                key = (info.st_dev, info.st_ino)
                if key in seen:
                    continue
                seen.add(key)
            total += info.st_size
    return total


def writable_layer_size(container_dir: Path) -> int:
    """`SizeRw`: what the container wrote (its overlay upper directory)."""
    return directory_size(container_dir / "upper")
