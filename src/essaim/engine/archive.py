"""Reading a container's files for the archive API: the stat of a path (the CLI's
`X-Docker-Container-Path-Stat`), a tar of a path (`docker cp` out) and of the whole root
(`docker export`), every lookup resolved inside the root.

Everything here blocks; the container filesystem service runs it in its executor.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from essaim.engine.in_root import filesystem_type, open_dir, open_in_root, readlink_in_root
from essaim.engine.tar_paths import (
    archive_prefix,
    clean_parts,
    entry_name,
    follow_in_scope,
    go_file_mode,
    split_last,
)  # fmt: skip
from essaim.model.rfc3339 import format_rfc3339_nano

CHUNK = 1 << 16
# The only xattr Docker's tar writer carries (file capabilities, for setcap'd binaries).
_CAPABILITY_XATTR = "security.capability"
_MISSING = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)
# Kernel interfaces a running container has mounted (proc, sysfs, cgroup, securityfs,
# debugfs, tracefs, bpf, pstore, configfs, efivarfs, selinuxfs, fusectl, binfmt_misc,
# mqueue): listed as the empty directories Docker's view of the rootfs has there, never
# walked (a tar of /proc would never end).
KERNEL_FILESYSTEMS = frozenset(
    {
        0x9FA0, 0x62656572, 0x27E0EB, 0x63677270, 0x73636673, 0x64626720, 0x74726163,
        0xCAFE4A11, 0x6165676C, 0x62656570, 0xDE5E81E4, 0xF97CFF8C, 0x65735543,
        0x42494E4D, 0x19800202,
    }
)  # fmt: skip

Namer = Callable[[list[str], bool], str]


class PathNotFound(Exception):
    """The path does not exist in the container (or goes through a non-directory)."""


@dataclass(frozen=True)
class PathStat:
    """moby's ContainerPathStat; `mode` in Go's os.FileMode bits."""

    name: str
    size: int
    mode: int
    mtime: str
    link_target: str


@contextlib.contextmanager
def _located(root_fd: int, abs_path: str) -> Iterator[tuple[int, str]]:
    """The directory descriptor and name of `abs_path`: its directory resolved in the
    root, its last name not followed unless it names a directory itself (`/`, `x/`,
    `x/.`), where the name is `.` of that directory."""
    dir_parts, base = split_last(abs_path)
    try:
        if base is None:
            dir_fd = open_in_root(root_fd, dir_parts, os.O_PATH | os.O_DIRECTORY)
        else:
            dir_fd = open_dir(root_fd, dir_parts)
    except OSError as exc:
        if exc.errno in _MISSING:
            raise PathNotFound(abs_path) from None
        raise
    try:
        yield dir_fd, "." if base is None else base
    finally:
        os.close(dir_fd)


def _lstat(dir_fd: int, name: str) -> os.stat_result:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in _MISSING:
            raise PathNotFound(name) from None
        raise


def stat_path(root_fd: int, abs_path: str, shown: str | None = None) -> PathStat:
    """moby's StatPath: the path itself (a symlink is not followed), and for a symlink
    the path it finally leads to inside the container. `shown` is the container path
    the client asked for when `abs_path` is that path inside a mount's own root."""
    with _located(root_fd, abs_path) as (dir_fd, name):
        st = _lstat(dir_fd, name)
    link_target = ""
    if stat.S_ISLNK(st.st_mode):
        resolved = follow_in_scope(
            clean_parts(abs_path), lambda parts: readlink_in_root(root_fd, parts)
        )
        link_target = "/" + "/".join(resolved)
        if shown is not None:
            # Inside a mount's root: its `/` is the mount's destination in the container.
            inner = clean_parts(abs_path)
            outer = clean_parts(shown)
            mount_at = outer[: len(outer) - len(inner)]
            link_target = "/" + "/".join([*mount_at, *resolved])
    return PathStat(
        name=_stat_name(shown or abs_path),
        size=st.st_size,
        mode=go_file_mode(st.st_mode),
        mtime=format_rfc3339_nano(st.st_mtime_ns),
        link_target=link_target,
    )


def _stat_name(abs_path: str) -> str:
    base = abs_path.rstrip("/").rpartition("/")[2]
    return base or "/"


def write_path(root_fd: int, abs_path: str, out: BinaryIO, shown: str | None = None) -> None:
    """A tar of `abs_path` into `out`, its entries named from the path the client asked
    for (moby's TarResourceRebase): `shown` when `abs_path` is inside a mount's root."""
    prefix = archive_prefix(shown or abs_path)

    def name(rel: list[str], is_dir: bool) -> str:
        return entry_name(prefix, rel, is_dir)

    with _located(root_fd, abs_path) as (dir_fd, base):
        st = _lstat(dir_fd, base)
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            writer = _TarWriter(tar, name)
            writer.add(dir_fd, base, st, [])
            if stat.S_ISDIR(st.st_mode):
                writer.walk_child(dir_fd, base, [])


def write_export(root_fd: int, out: BinaryIO) -> None:
    """A tar of the whole root, entries named from it without `./` (`docker export`)."""

    def name(rel: list[str], is_dir: bool) -> str:
        return "/".join(rel) + ("/" if is_dir else "")

    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _TarWriter(tar, name).walk_child(root_fd, ".", [])


class _Exactly:
    """A file's bytes cut or zero-padded to the size its header announced: a running
    container may change the file while it is read."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self._left = size

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        if n <= 0:
            return b""
        data = os.read(self._fd, n) or b"\0" * n
        self._left -= len(data)
        return data


class _TarWriter:
    def __init__(self, tar: tarfile.TarFile, name: Namer) -> None:
        self.tar = tar
        self.name = name
        # (device, inode) of files with several links -> the entry name written first.
        self.links: dict[tuple[int, int], str] = {}

    def walk_child(self, parent_fd: int, name: str, rel: list[str]) -> None:
        """Every entry under the directory `name` of `parent_fd`, in name order."""
        try:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent_fd)
        except OSError as exc:
            if exc.errno in _MISSING:
                return  # gone (or replaced) while we walked a running container
            raise
        try:
            if filesystem_type(fd) in KERNEL_FILESYSTEMS:
                return
            with os.scandir(fd) as entries:
                names = sorted(entry.name for entry in entries)
            for child in names:
                try:
                    st = os.stat(child, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                self.add(fd, child, st, [*rel, child])
                if stat.S_ISDIR(st.st_mode):
                    self.walk_child(fd, child, [*rel, child])
        finally:
            os.close(fd)

    def add(self, dir_fd: int, name: str, st: os.stat_result, rel: list[str]) -> None:
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFSOCK:
            return  # tar has no sockets (Go's writer skips them too)
        info = tarfile.TarInfo(self.name(rel, kind == stat.S_IFDIR))
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.mtime = int(st.st_mtime)
        if kind == stat.S_IFREG:
            self._add_file(dir_fd, name, st, info)
            return
        if kind == stat.S_IFDIR:
            info.type = tarfile.DIRTYPE
        elif kind == stat.S_IFLNK:
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(name, dir_fd=dir_fd)
        elif kind in (stat.S_IFCHR, stat.S_IFBLK):
            info.type = tarfile.CHRTYPE if kind == stat.S_IFCHR else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif kind == stat.S_IFIFO:
            info.type = tarfile.FIFOTYPE
        else:
            return
        self.tar.addfile(info)

    def _add_file(self, dir_fd: int, name: str, st: os.stat_result, info: tarfile.TarInfo) -> None:
        if st.st_nlink > 1:
            first = self.links.setdefault((st.st_dev, st.st_ino), info.name)
            if first != info.name:
                info.type = tarfile.LNKTYPE
                info.linkname = first
                self.tar.addfile(info)
                return
        # O_NONBLOCK: a file swapped for a fifo meanwhile must not hang us (fstat tells).
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
        try:
            fd = os.open(name, flags, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in _MISSING:
                return
            raise
        try:
            current = os.fstat(fd)
            if not stat.S_ISREG(current.st_mode):
                return
            info.size = current.st_size
            with contextlib.suppress(OSError):
                capability = os.getxattr(fd, _CAPABILITY_XATTR)
                key = "SCHILY.xattr." + _CAPABILITY_XATTR
                info.pax_headers = {key: capability.decode("utf-8", "surrogateescape")}
            self.tar.addfile(info, _Exactly(fd, info.size))
        finally:
            os.close(fd)


# The entry writer under a public name, for other tars of container files (a commit's
# layer), so that every such tar writes files, links and devices the same way.
TarWriter = _TarWriter
