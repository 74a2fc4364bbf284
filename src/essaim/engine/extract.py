"""Extracting an untrusted tar into a directory of a container (`docker cp` in), by
Docker's rules, with no way out of the container's root whatever the archive says.

Every name is opened with openat2(RESOLVE_IN_ROOT) from the root and every change is
made relative to a directory descriptor with the last name never followed, so neither
`..`, absolute names, symlinks (the archive's own or the container's, even swapped while
we work) nor hard links can reach a file outside. Everything here blocks.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass, field
from typing import BinaryIO

from essaim.engine.in_root import make_dirs, open_dir, open_in_root, readlink_in_root
from essaim.engine.tar_paths import (
    check_symlink,
    clean_parts,
    entry_parts,
    follow_in_scope,
    hardlink_parts,
    quote,
)  # fmt: skip
from essaim.errors import InvalidParameter

CHUNK = 1 << 20
_XATTR_PREFIX = "SCHILY.xattr."
# overlayfs keeps its own marks in these; an archive must never set them.
_OVERLAY_XATTRS = ("trusted.overlay.", "user.overlay.")
# What a malformed or misplaced entry makes the kernel answer: the archive's fault (400).
# Anything else (ENOSPC, EIO, EROFS ...) is the host's and stays an OSError (500).
_ENTRY_ERRNOS = frozenset(
    {
        errno.ENOENT, errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ELOOP, errno.EXDEV,
        errno.ENAMETOOLONG, errno.EINVAL, errno.EMLINK, errno.ENOTEMPTY, errno.EPERM,
        errno.ERANGE, errno.E2BIG,
    }
)  # fmt: skip


class NotADirectory(InvalidParameter):
    def __init__(self) -> None:
        super().__init__("extraction point is not a directory")


class ExtractionPointMissing(Exception):
    """The directory to extract into does not exist in the container."""


@dataclass(frozen=True)
class ExtractOptions:
    # Refuse to replace a directory by a non-directory or the other way round (the CLI
    # always asks this).
    no_overwrite_dir_non_dir: bool = False
    # Every entry owned by these ids (`cp -a` into a container with a user) instead of
    # the ids in the archive.
    owner: tuple[int, int] | None = None


@dataclass
class _Extractor:
    root_fd: int
    dest: str  # the container path the client named, for messages
    dest_parts: list[str]  # the extraction directory, resolved in the root
    options: ExtractOptions
    # Directories whose times are set last (their entries change them while we work).
    dir_times: list[tuple[list[str], int]] = field(default_factory=list)

    def entry(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        rel = entry_parts(member.name, self.dest)
        if not rel:
            if member.isdir():
                return  # the archive's own `./`: the extraction directory stays as it is
            raise InvalidParameter(
                f"cannot overwrite directory {quote(self.dest)} with non-directory"
            )
        if member.issym():
            check_symlink(rel, member.linkname, self.dest)
        full = [*self.dest_parts, *rel]
        parent = make_dirs(self.root_fd, full[:-1])
        try:
            self.place(tar, member, parent, full)
        finally:
            os.close(parent)

    def place(
        self, tar: tarfile.TarFile, member: tarfile.TarInfo, parent: int, full: list[str]
    ) -> None:
        base = full[-1]
        self.clear(parent, base, member, full)
        if member.isdir():
            with contextlib.suppress(FileExistsError):
                os.mkdir(base, 0o700, dir_fd=parent)
            fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
            try:
                self.own(fd, member)
            finally:
                os.close(fd)
            self.dir_times.append((full, int(member.mtime)))
        elif member.isreg():
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(base, flags, 0o600, dir_fd=parent)
            try:
                data = tar.extractfile(member)
                if data is not None:
                    while chunk := data.read(CHUNK):
                        os.write(fd, chunk)
                self.own(fd, member)
                with contextlib.suppress(OSError, OverflowError):
                    os.utime(fd, (member.mtime, member.mtime))
            finally:
                os.close(fd)
        elif member.islnk():
            target = [*self.dest_parts, *hardlink_parts(member.linkname, self.dest)]
            source_dir = open_dir(self.root_fd, target[:-1])
            try:
                # No AT_SYMLINK_FOLLOW: a link to a symlink is a new name of the symlink.
                os.link(
                    target[-1], base, src_dir_fd=source_dir, dst_dir_fd=parent,
                    follow_symlinks=False,
                )  # fmt: skip
            finally:
                os.close(source_dir)
        elif member.issym():
            os.symlink(member.linkname, base, dir_fd=parent)
            self.own_name(parent, base, member, chmod=False)
        elif member.ischr() or member.isblk() or member.isfifo():
            if member.isfifo():
                os.mkfifo(base, 0o600, dir_fd=parent)
            else:
                kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
                device = os.makedev(member.devmajor, member.devminor)
                os.mknod(base, kind | 0o600, device, dir_fd=parent)
            self.own_name(parent, base, member, chmod=True)
        # Other types (GNU volume headers ...) carry no file.

    def clear(self, parent: int, base: str, member: tarfile.TarInfo, full: list[str]) -> None:
        """Make room for the entry: an existing directory stays for a directory and
        anything else is replaced, unless the client forbade mixing the two."""
        try:
            st = os.stat(base, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return
        is_dir = stat.S_ISDIR(st.st_mode)
        if self.options.no_overwrite_dir_non_dir and is_dir != member.isdir():
            path = quote("/" + "/".join(full))
            if is_dir:
                raise InvalidParameter(
                    f"cannot overwrite directory {path} with non-directory {quote(self.dest)}"
                )
            raise InvalidParameter(
                f"cannot overwrite non-directory {path} with directory {quote(self.dest)}"
            )
        if is_dir and member.isdir():
            return
        if is_dir:
            shutil.rmtree(base, dir_fd=parent)  # fd-based: never follows a symlink
        else:
            os.unlink(base, dir_fd=parent)

    def ids(self, member: tarfile.TarInfo) -> tuple[int, int]:
        return self.options.owner or (member.uid, member.gid)

    def own(self, fd: int, member: tarfile.TarInfo) -> None:
        """Owner, then mode (chown clears set-id bits), then xattrs, on an open file."""
        os.fchown(fd, *self.ids(member))
        os.fchmod(fd, member.mode & 0o7777)
        for key, value in member.pax_headers.items():
            if not key.startswith(_XATTR_PREFIX):
                continue
            name = key[len(_XATTR_PREFIX) :]
            if name.startswith(_OVERLAY_XATTRS):
                continue
            try:
                os.setxattr(fd, name, value.encode("utf-8", "surrogateescape"))
            except OSError as exc:
                # Not every filesystem takes every namespace (moby ignores these too).
                if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise

    def own_name(self, parent: int, base: str, member: tarfile.TarInfo, *, chmod: bool) -> None:
        """The same for what cannot be opened (symlinks, devices, fifos): by name, the
        name itself never followed."""
        os.chown(base, *self.ids(member), dir_fd=parent, follow_symlinks=False)
        if chmod:
            os.chmod(base, member.mode & 0o7777, dir_fd=parent, follow_symlinks=False)
        with contextlib.suppress(OSError, OverflowError):
            os.utime(base, (member.mtime, member.mtime), dir_fd=parent, follow_symlinks=False)

    def finish(self) -> None:
        # moby sets directory times last, in archive order.
        for parts, mtime in self.dir_times:
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
            try:
                fd = open_in_root(self.root_fd, parts, flags)
            except OSError:
                continue  # replaced by a later entry
            try:
                with contextlib.suppress(OSError, OverflowError):
                    os.utime(fd, (mtime, mtime))
            finally:
                os.close(fd)


def extraction_dir(root_fd: int, dest: str) -> list[str]:
    """The directory `dest` names, resolved in the root with its last symlink followed
    too (so one can extract to a link to a directory)."""
    parts = follow_in_scope(clean_parts(dest), lambda p: readlink_in_root(root_fd, p))
    try:
        fd = open_in_root(root_fd, parts, os.O_PATH)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            raise ExtractionPointMissing(dest) from None
        raise
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            raise NotADirectory()
    finally:
        os.close(fd)
    return parts


def extract(root_fd: int, dest: str, source: BinaryIO, options: ExtractOptions) -> None:
    """Extract the tar `source` (maybe compressed) into the container directory `dest`."""
    extractor = _Extractor(root_fd, dest, extraction_dir(root_fd, dest), options)
    try:
        with tarfile.open(fileobj=source, mode="r|*") as tar:
            for member in tar:
                try:
                    extractor.entry(tar, member)
                except (ValueError, OverflowError) as exc:
                    raise InvalidParameter(f"invalid tar entry {member.name!r}: {exc}") from None
                except OSError as exc:
                    if exc.errno not in _ENTRY_ERRNOS:
                        raise
                    reason = os.strerror(exc.errno or 0)
                    raise InvalidParameter(f"invalid tar entry {member.name!r}: {reason}") from None
    except tarfile.ReadError as exc:
        if str(exc) == "empty file":
            return  # moby takes an empty body as an empty archive
        raise InvalidParameter(f"archive/tar: invalid tar header: {exc}") from None
    except tarfile.TarError as exc:
        raise InvalidParameter(f"archive/tar: {exc}") from None
    extractor.finish()
