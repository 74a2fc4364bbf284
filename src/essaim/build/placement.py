"""Placing copied entries into the destination root as the classic builder's tar copy
does: what is in the way is replaced (a directory meeting a directory is merged), owner,
mode, capabilities and whole-second mtimes follow the source or the instruction's flags.

Every change is made relative to a directory descriptor with the last name never
followed, and directories are opened inside the root (openat2 RESOLVE_IN_ROOT): a
symlink in the destination never leads a write outside it. Everything here blocks.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from dataclasses import dataclass, field

from essaim.build.source_digest import CAPABILITY_XATTR, capability, sorted_entries
from essaim.engine.in_root import open_in_root
from essaim.errors import InvalidParameter

CHUNK = 1 << 20
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_SOURCE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# What makes copy_file_range give up on a pair of files (other file systems, kernels).
_NO_RANGE_COPY = frozenset({errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF})


def show(parts: list[str]) -> str:
    return "/" + "/".join(parts)


def make_dirs(root_fd: int, parts: list[str], owner: tuple[int, int] | None) -> int:
    """An open descriptor of the directory `parts`, the missing ones made 0755 and
    given to `owner` (None: left to the daemon, root), as moby's MkdirAllAndChownNew."""
    fd = open_in_root(root_fd, [], os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i, part in enumerate(parts):
            try:
                child = _open_or_make(fd, part, owner)
            except OSError as exc:
                if exc.errno in (errno.ENOTDIR, errno.ELOOP, errno.EEXIST):
                    raise InvalidParameter(
                        f"failed to copy files: mkdir {show(parts[: i + 1])}: not a directory"
                    ) from None
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_or_make(parent: int, name: str, owner: tuple[int, int] | None) -> int:
    try:
        return os.open(name, _OPEN_DIR, dir_fd=parent)
    except FileNotFoundError:
        os.mkdir(name, 0o755, dir_fd=parent)
    fd = os.open(name, _OPEN_DIR, dir_fd=parent)
    try:
        os.fchmod(fd, 0o755)  # whatever the umask took away
        if owner is not None:
            os.fchown(fd, *owner)
    except BaseException:
        os.close(fd)
        raise
    return fd


def is_directory(root_fd: int, parts: list[str]) -> bool:
    """Whether `parts` (symlinks followed inside the root) is an existing directory."""
    try:
        fd = open_in_root(root_fd, parts, os.O_PATH)
    except OSError:
        return False
    try:
        return stat.S_ISDIR(os.fstat(fd).st_mode)
    finally:
        os.close(fd)


def clear(parent: int, name: str, *, keep_dir: bool) -> bool:
    """Make room for `name`: what is there goes (a directory with everything in it),
    except a directory that is to be merged with one; True when that was kept."""
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        if keep_dir:
            return True
        shutil.rmtree(name, dir_fd=parent)  # fd-based: never follows a symlink
    else:
        os.unlink(name, dir_fd=parent)
    return False


@dataclass
class Placement:
    """One source's copy into the destination root."""

    root_fd: int
    owner: tuple[int, int] | None  # every entry's ids; None: the source's own
    chmod: int | None  # every entry's mode (symlinks aside); None: the source's
    # The first copy of each source inode with several names: later names link to it.
    copies: dict[tuple[int, int], list[str]] = field(default_factory=dict)

    def ids(self, st: os.stat_result) -> tuple[int, int]:
        return self.owner if self.owner is not None else (st.st_uid, st.st_gid)

    def mode(self, st: os.stat_result) -> int:
        return self.chmod if self.chmod is not None else stat.S_IMODE(st.st_mode)

    def finish(self, fd: int, st: os.stat_result, caps: bytes = b"") -> None:
        """Owner, then capabilities and mode (a chown clears both), then mtime."""
        now = os.fstat(fd)
        ids = self.ids(st)
        if (now.st_uid, now.st_gid) != ids:
            os.fchown(fd, *ids)
        if caps:
            try:
                os.setxattr(fd, CAPABILITY_XATTR, caps)
            except OSError as exc:
                if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise
        os.fchmod(fd, self.mode(st))
        mtime = _whole_seconds(st)
        os.utime(fd, ns=(mtime, mtime))

    def finish_name(self, parent: int, name: str, st: os.stat_result, *, chmod: bool) -> None:
        """The same by name, for what cannot be opened (symlinks, devices, fifos)."""
        os.chown(name, *self.ids(st), dir_fd=parent, follow_symlinks=False)
        if chmod:
            os.chmod(name, self.mode(st), dir_fd=parent)
        mtime = _whole_seconds(st)
        os.utime(name, ns=(mtime, mtime), dir_fd=parent, follow_symlinks=False)

    def file(self, src: int, st: os.stat_result, parent: int, name: str) -> None:
        """A regular file from the open `src`, in place of whatever `name` is."""
        clear(parent, name, keep_dir=False)
        fd = os.open(name, _CREATE, 0o600, dir_fd=parent)
        try:
            _copy_bytes(src, fd, st.st_size)
            self.finish(fd, st, capability(src))
        finally:
            os.close(fd)

    def node(self, st: os.stat_result, parent: int, name: str) -> None:
        """A fifo or a device node like the source's; sockets are skipped, as Docker's
        tar writer does."""
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFSOCK:
            return
        clear(parent, name, keep_dir=False)
        if kind == stat.S_IFIFO:
            os.mkfifo(name, 0o600, dir_fd=parent)
        else:
            os.mknod(name, kind | 0o600, st.st_rdev, dir_fd=parent)
        self.finish_name(parent, name, st, chmod=True)

    def contents(self, src: int, dst: int, dst_parts: list[str]) -> None:
        """Every entry of the source directory `src` into the directory `dst`."""
        for entry in sorted_entries(src):
            st = entry.stat(follow_symlinks=False)
            self.entry(src, entry.name, st, dst, [*dst_parts, entry.name])

    def entry(
        self, src_dir: int, name: str, st: os.stat_result, dst: int, parts: list[str]
    ) -> None:
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            first = self.copies.setdefault((st.st_dev, st.st_ino), parts)
            if first is not parts:
                self.link(first, dst, name)
                return
        if stat.S_ISDIR(st.st_mode):
            if not clear(dst, name, keep_dir=True):
                os.mkdir(name, 0o700, dir_fd=dst)
            child_src = os.open(name, _OPEN_DIR, dir_fd=src_dir)
            try:
                child_dst = os.open(name, _OPEN_DIR, dir_fd=dst)
                try:
                    self.contents(child_src, child_dst, parts)
                    # Last, so that the entries made inside leave its mtime alone.
                    self.finish(child_dst, st)
                finally:
                    os.close(child_dst)
            finally:
                os.close(child_src)
        elif stat.S_ISREG(st.st_mode):
            fd = os.open(name, _OPEN_SOURCE, dir_fd=src_dir)
            try:
                self.file(fd, st, dst, name)
            finally:
                os.close(fd)
        elif stat.S_ISLNK(st.st_mode):
            clear(dst, name, keep_dir=False)
            os.symlink(os.readlink(name, dir_fd=src_dir), name, dir_fd=dst)
            self.finish_name(dst, name, st, chmod=False)
        else:
            self.node(st, dst, name)

    def link(self, first: list[str], dst: int, name: str) -> None:
        """`name` as a hard link to the first copy of the same source inode."""
        clear(dst, name, keep_dir=False)
        source_dir = open_in_root(self.root_fd, first[:-1], os.O_PATH | os.O_DIRECTORY)
        try:
            os.link(first[-1], name, src_dir_fd=source_dir, dst_dir_fd=dst, follow_symlinks=False)
        finally:
            os.close(source_dir)


def _whole_seconds(st: os.stat_result) -> int:
    # Docker's tar copy truncates times to the second.
    return st.st_mtime_ns - st.st_mtime_ns % 1_000_000_000


def _copy_bytes(src: int, dst: int, size: int) -> None:
    """The content of `src` into `dst`: in the kernel when it can (a reflink on file
    systems that share extents), else through a 1 MiB buffer."""
    copied = 0
    try:
        while True:
            n = os.copy_file_range(src, dst, max(size - copied, CHUNK))
            if n == 0:
                return
            copied += n
    except OSError as exc:
        if exc.errno not in _NO_RANGE_COPY or copied:
            raise
    while chunk := os.read(src, CHUNK):
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst, view) :]
