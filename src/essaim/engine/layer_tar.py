"""A container's read-write layer as an OCI layer tar (`docker commit`): its overlay upper
directory with whiteouts as `.wh.` files and opaque directories marked, as moby's overlay2.

The runtime's mount placeholders stay out (Docker keeps them in an init layer below the
container's). Everything here blocks; the walk goes by descriptors, never following a link.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from pathlib import Path
from typing import BinaryIO

from essaim.engine.archive import TarWriter
from essaim.engine.filesystem_changes import is_placeholder

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_OPAQUE_XATTR = "trusted.overlay.opaque"
_GONE = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)


def _name(rel: list[str], is_dir: bool) -> str:
    return "/".join(rel) + ("/" if is_dir else "")


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(fd: int) -> bool:
    try:
        return os.getxattr(fd, _OPAQUE_XATTR) == b"y"
    except OSError:
        return False


class _LayerWriter:
    def __init__(self, tar: tarfile.TarFile, lowers: list[Path]) -> None:
        self.tar = tar
        self.lowers = lowers
        self.entries = TarWriter(tar, _name)

    def walk(self, dir_fd: int, rel: list[str]) -> None:
        """Every entry under the open directory `dir_fd`, in name order (Go's walk)."""
        for name in sorted(os.listdir(dir_fd)):
            parts = [*rel, name]
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # gone meanwhile: a container committed without a pause
            if is_placeholder("/" + "/".join(parts), st, self.lowers, parts):
                continue
            if _is_whiteout(st):
                self._marker(_name([*rel, WHITEOUT_PREFIX + name], False), st, 0o600)
            elif stat.S_ISDIR(st.st_mode):
                self._directory(dir_fd, name, st, parts)
            else:
                self.entries.add(dir_fd, name, st, parts)

    def _directory(self, parent_fd: int, name: str, st: os.stat_result, parts: list[str]) -> None:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent_fd)
        except OSError as exc:
            if exc.errno in _GONE:
                return
            raise
        try:
            if self._holds_only_placeholders(fd, parts):
                return
            self.entries.add(parent_fd, name, st, parts)
            if _is_opaque(fd):
                self._marker(_name([*parts, OPAQUE_MARKER], False), st, stat.S_IMODE(st.st_mode))
            self.walk(fd, parts)
        finally:
            os.close(fd)

    def _holds_only_placeholders(self, fd: int, parts: list[str]) -> bool:
        """A directory in the upper layer only for the runtime's placeholders in it (/etc
        for /etc/hosts): under Docker it is in the init layer, not the container's."""
        names = os.listdir(fd)
        if not names or _is_opaque(fd):
            return False
        for child in names:
            try:
                child_st = os.stat(child, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            child_parts = [*parts, child]
            if not is_placeholder("/" + "/".join(child_parts), child_st, self.lowers, child_parts):
                return False
        return True

    def _marker(self, name: str, st: os.stat_result, mode: int) -> None:
        """An empty regular file standing for a deletion or an opaque directory."""
        info = tarfile.TarInfo(name)
        info.mode = mode
        info.uid, info.gid = st.st_uid, st.st_gid
        info.mtime = int(st.st_mtime)
        self.tar.addfile(info)


def write_layer(upper: Path, lowers: list[Path], out: BinaryIO) -> int:
    """The layer tar of `upper` over `lowers` (top first) into `out`; returns how many
    entries it holds (0: the container changed nothing, and Docker adds no layer)."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        try:
            root_fd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return 0  # never mounted: nothing changed
        try:
            _LayerWriter(tar, lowers).walk(root_fd, [])
        finally:
            os.close(root_fd)
        return len(tar.getmembers())  # in write mode: those added


def write_layer_file(upper: Path, lowers: list[Path], path: Path) -> int:
    """`write_layer` into the file `path` (made or emptied)."""
    with path.open("wb") as out:
        return write_layer(upper, lowers, out)
