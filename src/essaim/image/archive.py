"""Untrusted tar archives: sniff their compression and unpack them so that no entry
writes outside the target, whatever its name, links or earlier entries say.

Paths are resolved inside the target as if it were `/` (like a chroot): `..` stops at
the root, absolute symlinks point back into it. Layer whiteouts become overlayfs marks.
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import gzip
import io
import lzma
import os
import shutil
import stat
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import zstandard

from essaim.errors import InvalidParameter
from essaim.image.scoped_paths import follow_in_scope

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

CHUNK = 1 << 20
WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
# overlayfs reads its own marks (opaque, redirect, metacopy ...) from these xattrs: only
# the unpacker may set them, from whiteout entries, never an archive's PAX headers.
_OVERLAY_XATTR_PREFIX = "trusted.overlay."
# What an entry can make the kernel answer when it is malformed or names something that
# cannot be placed (an empty link target, a name too long ...): the archive's fault, a
# 400. Anything else (ENOSPC, EIO, EROFS ...) is the host's and stays an OSError.
_ENTRY_ERRNOS = frozenset(
    {
        errno.ENOENT,
        errno.EEXIST,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.ELOOP,
        errno.ENAMETOOLONG,
        errno.EINVAL,
        errno.EMLINK,
        errno.ENOTEMPTY,
        errno.ERANGE,
        errno.E2BIG,
    }
)

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


class UnsafeArchive(InvalidParameter):
    """An entry tried to leave the target, or cannot be placed where it claims."""


def sniff_compression(head: bytes) -> str:
    """The compression ("gzip", "bzip2", "xz", "zstd", "none") from the first bytes; content
    types are not to be trusted (the CLI sends tars as text/plain)."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return "none"


class _Decompressed(io.RawIOBase):
    """A decompressor whose complaints about its input (bad header, corrupt or truncated
    data) are the client's fault: InvalidParameter, not a 500."""

    def __init__(self, inner: io.BufferedIOBase, kind: str) -> None:
        self._inner = inner
        self._kind = kind

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = self._inner.read(len(view))
        except (EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError) as exc:
            raise InvalidParameter(f"invalid {self._kind} data: {exc}") from None
        except OSError as exc:
            if exc.errno is not None:
                raise  # the disk under the source, not its bytes
            raise InvalidParameter(f"invalid {self._kind} data: {exc}") from None
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            super().close()


def open_decompressed(source: BinaryIO) -> BinaryIO:
    """`source` (seekable) as a stream of uncompressed bytes; corrupt compressed data
    raises InvalidParameter when it is read."""
    head = source.read(8)
    source.seek(0)
    kind = sniff_compression(head)
    if kind == "none":
        return source
    return io.BufferedReader(_Decompressed(_decompressor(kind, source), kind), CHUNK)


def _decompressor(kind: str, source: BinaryIO) -> io.BufferedIOBase:
    if kind == "gzip":
        return gzip.GzipFile(fileobj=source, mode="rb")
    if kind == "bzip2":
        return bz2.BZ2File(source, "rb")
    if kind == "zstd":
        return io.BufferedReader(_ZstdFrames(source), CHUNK)
    return lzma.LZMAFile(source, "rb")


class _ZstdFrames(io.RawIOBase):
    """zstd data of one or more frames (as chunked writers make them), decompressed.
    Unlike zstandard's stream reader, input that ends inside a frame is an error, not
    a quiet end of data: a truncated layer must not pass for a shorter one."""

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._frame = zstandard.ZstdDecompressor().decompressobj()
        self._pending = memoryview(b"")
        self._in_frame = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending:
            data = self._source.read(CHUNK)
            if not data:
                if self._in_frame:
                    raise EOFError("unexpected end of zstd data")
                return 0
            self._feed(data)
        size = min(len(view), len(self._pending))
        view[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def _feed(self, data: bytes) -> None:
        out = []
        while data:
            self._in_frame = True
            out.append(self._frame.decompress(data))
            if not self._frame.eof:
                break
            # The frame ended: what follows it is the next frame.
            data = self._frame.unused_data
            self._frame = zstandard.ZstdDecompressor().decompressobj()
            self._in_frame = False
        self._pending = memoryview(bytes(self._pending) + b"".join(out))


def readlink_in(root: str, parts: list[str]) -> str | None:
    """The target of `parts` under `root` if it is a symlink; None for anything else."""
    try:
        return os.readlink(os.path.join(root, *parts))
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EINVAL):
            return None  # absent, under a non-directory, or not a link
        raise


def _clean_parts(name: str) -> list[str]:
    """The components of an entry name relative to the target, `..` applied. Absolute
    names are taken as relative to the target, as Docker does; a relative name that
    climbs above it is refused."""
    rooted = name.startswith("/")
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            elif not rooted:
                raise UnsafeArchive(f"invalid tar entry {name!r}: path is outside of the target")
            continue
        parts.append(part)
    return parts


@dataclass
class _Unpacker:
    root: str
    same_owner: bool
    whiteouts: bool
    size: int = 0
    # Parent directory parts -> real path; dropped whenever a symlink appears or a
    # directory disappears, the only events that change how a path resolves.
    _dirs: dict[tuple[str, ...], str] = field(default_factory=dict)
    # Directory -> the mtime of its last entry, applied once its children are written.
    _dir_times: dict[str, float] = field(default_factory=dict)

    def resolve_dir(self, parts: list[str], *, create: bool, name: str) -> str:
        """The real path of the directory `parts`, following symlinks inside the root;
        missing directories are made when `create`, refused otherwise."""
        key = tuple(parts)
        cached = self._dirs.get(key)
        if cached is not None:
            return cached
        try:
            resolved = follow_in_scope(parts, lambda p: readlink_in(self.root, p))
        except InvalidParameter:
            raise UnsafeArchive(f"invalid tar entry {name!r}: too many symbolic links") from None
        for depth in range(1, len(resolved) + 1):
            candidate = os.path.join(self.root, *resolved[:depth])
            try:
                st = os.lstat(candidate)
            except FileNotFoundError:
                if not create:
                    raise UnsafeArchive(
                        f"invalid tar entry {name!r}: {'/'.join(parts)} does not exist"
                    ) from None
                os.mkdir(candidate, 0o755)
                continue
            if not stat.S_ISDIR(st.st_mode):
                part = resolved[depth - 1]
                raise UnsafeArchive(f"invalid tar entry {name!r}: {part} is not a directory")
        real = os.path.join(self.root, *resolved)
        self._dirs[key] = real
        return real

    def remove_existing(self, path: str, keep_dir: bool) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return
            shutil.rmtree(path)
            self._dirs.clear()
            # Their times belong to directories that are gone; whatever takes the name
            # next (a file, a symlink to anywhere) must not receive them.
            inside = path + os.sep
            for doomed in [d for d in self._dir_times if d == path or d.startswith(inside)]:
                del self._dir_times[doomed]
        else:
            os.unlink(path)
            if stat.S_ISLNK(st.st_mode):
                self._dirs.clear()

    def entry(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = _clean_parts(member.name)
        if not parts:
            # The archive's own root ("./"): only its metadata applies.
            if member.isdir():
                self.apply_metadata(self.root, member)
            return
        parent = self.resolve_dir(parts[:-1], create=True, name=member.name)
        base = parts[-1]
        path = os.path.join(parent, base)
        if self.whiteouts and base.startswith(WHITEOUT_PREFIX):
            self.whiteout(parent, base, member.name)
            return
        self.remove_existing(path, keep_dir=member.isdir())
        if member.isdir():
            if not os.path.isdir(path):
                os.mkdir(path, 0o700)
        elif member.isreg():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as out:
                data = tar.extractfile(member)
                if data is not None:
                    shutil.copyfileobj(data, out, CHUNK)
            self.size += member.size
        elif member.issym():
            os.symlink(member.linkname, path)
            self._dirs.clear()
            self.size += len(os.fsencode(member.linkname))
        elif member.islnk():
            link_parts = _clean_parts(member.linkname)
            if not link_parts:
                raise UnsafeArchive(f"invalid hardlink {member.name!r} -> {member.linkname!r}")
            link_parent = self.resolve_dir(link_parts[:-1], create=False, name=member.name)
            source = os.path.join(link_parent, link_parts[-1])
            try:
                is_dir = stat.S_ISDIR(os.lstat(source).st_mode)
            except FileNotFoundError:
                is_dir = True
            if is_dir:
                raise UnsafeArchive(f"invalid hardlink {member.name!r} -> {member.linkname!r}")
            os.link(source, path, follow_symlinks=False)
            self._dirs.clear()  # a link to a symlink is a new symlink
            return  # a hard link shares the metadata of its target
        elif member.ischr() or member.isblk():
            if not self.same_owner:
                return  # only root can make device nodes; rootless engines skip them too
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            os.mknod(path, kind | 0o600, os.makedev(member.devmajor, member.devminor))
        elif member.isfifo():
            os.mkfifo(path, 0o600)
        else:
            return  # unknown types (GNU volume headers ...) carry no file
        self.apply_metadata(path, member)

    def whiteout(self, parent: str, base: str, name: str) -> None:
        if base == WHITEOUT_OPAQUE:
            os.setxattr(parent, OVERLAY_OPAQUE_XATTR, b"y")
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return  # aufs bookkeeping (.wh..wh.plnk ...), meaningless here
        victim = base[len(WHITEOUT_PREFIX) :]
        if victim in ("", ".", ".."):
            raise UnsafeArchive(f"invalid tar entry {name!r}: bad whiteout")
        path = os.path.join(parent, victim)
        self.remove_existing(path, keep_dir=False)
        # overlayfs' whiteout: a 0/0 character device hides the name in lower layers.
        os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))

    def apply_metadata(self, path: str, member: tarfile.TarInfo) -> None:
        is_link = member.issym()
        if self.same_owner:
            os.chown(path, member.uid, member.gid, follow_symlinks=False)
        # chown clears setuid bits and file capabilities, so mode and xattrs come after.
        if not is_link:
            os.chmod(path, member.mode & 0o7777)
        for key, value in member.pax_headers.items():
            if key.startswith("SCHILY.xattr."):
                self.set_xattr(path, key[len("SCHILY.xattr.") :], value)
        if member.isdir():
            self._dir_times[path] = member.mtime  # the last entry for a directory wins
        else:
            with contextlib.suppress(OSError, OverflowError):
                os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)

    def set_xattr(self, path: str, key: str, value: str) -> None:
        if key.startswith(_OVERLAY_XATTR_PREFIX):
            return
        if key.startswith("trusted.") and not self.same_owner:
            return
        try:
            os.setxattr(path, key, value.encode("utf-8", "surrogateescape"), follow_symlinks=False)
        except OSError as exc:
            # Not every filesystem takes every namespace; a lost xattr is not fatal.
            if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                raise

    def is_real_dir(self, path: str) -> bool:
        """`path` is a directory reached from the root through directories only: no
        component was turned into a symlink since it was recorded."""
        current = self.root
        for part in os.path.relpath(path, self.root).split(os.sep):
            if part in ("", "."):
                continue
            current = os.path.join(current, part)
            try:
                if not stat.S_ISDIR(os.lstat(current).st_mode):
                    return False
            except OSError:
                return False
        return True

    def finish(self) -> None:
        # Children changed their directories' mtimes while unpacking; restore them last.
        for path, mtime in self._dir_times.items():
            if not self.is_real_dir(path):
                continue
            with contextlib.suppress(OSError, OverflowError):
                os.utime(path, (mtime, mtime), follow_symlinks=False)


def unpack(
    source: BinaryIO,
    target: Path,
    *,
    whiteouts: bool = False,
    same_owner: bool | None = None,
) -> int:
    """Unpack the uncompressed tar `source` into the existing directory `target`; return
    the bytes of file content written (Docker's layer size). With `whiteouts`, `.wh.`
    entries become overlayfs whiteouts and opaque marks (needs root)."""
    unpacker = _Unpacker(
        root=os.fspath(target),
        same_owner=os.geteuid() == 0 if same_owner is None else same_owner,
        whiteouts=whiteouts,
    )
    try:
        with tarfile.open(fileobj=source, mode="r|") as tar:
            for member in tar:
                try:
                    unpacker.entry(tar, member)
                except (ValueError, OverflowError) as exc:
                    # NUL bytes in a PAX name, ids or device numbers out of range ...
                    raise UnsafeArchive(f"invalid tar entry {member.name!r}: {exc}") from None
                except OSError as exc:
                    if exc.errno not in _ENTRY_ERRNOS:
                        raise
                    reason = os.strerror(exc.errno)
                    raise UnsafeArchive(f"invalid tar entry {member.name!r}: {reason}") from None
    except tarfile.ReadError as exc:
        if str(exc) == "empty file":
            return 0
        raise InvalidParameter(f"archive/tar: invalid tar header: {exc}") from None
    except tarfile.TarError as exc:
        raise InvalidParameter(f"archive/tar: {exc}") from None
    unpacker.finish()
    return unpacker.size
