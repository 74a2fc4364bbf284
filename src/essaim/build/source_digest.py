"""Stable digests of what a COPY or ADD would copy: a file's or a tree's names, types,
modes, owners, link targets, device numbers, capabilities and contents; never mtimes.

One pass over the tree through directory descriptors, file contents streamed through
hashlib (never read whole). Everything here blocks; callers run it in a thread.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterator

# The one extended attribute Docker's tar writer carries (file capabilities).
CAPABILITY_XATTR = "security.capability"
CHUNK = 1 << 20
_OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def capability(fd: int) -> bytes:
    """The file capabilities of the open file `fd` (empty when it has none)."""
    try:
        return os.getxattr(fd, CAPABILITY_XATTR)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            return b""
        raise


def sorted_entries(dir_fd: int) -> list[os.DirEntry[str]]:
    """The entries of a directory in Go's walk order (by the bytes of their names)."""
    with os.scandir(dir_fd) as it:
        return sorted(it, key=lambda e: e.name.encode("utf-8", "surrogateescape"))


def _record(kind: bytes, name: str, st: os.stat_result, *extra: bytes) -> bytes:
    """One entry as NUL-terminated fields: no field holds a NUL (names and link targets
    cannot, digests are hex), and the kind fixes how many there are, so no two records
    or sequences of records read alike."""
    head = b"%s\0%s\0%o\0%d\0%d\0" % (
        kind,
        name.encode("utf-8", "surrogateescape"),
        stat.S_IMODE(st.st_mode),
        st.st_uid,
        st.st_gid,
    )
    return head + b"".join(field + b"\0" for field in extra)


def _content(fd: int) -> bytes:
    """The sha256 (hex) of what `fd` holds from its start, read 1 MiB at a time."""
    hasher = hashlib.sha256()
    while chunk := os.read(fd, CHUNK):
        hasher.update(chunk)
    return hasher.hexdigest().encode()


def _special(st: os.stat_result) -> tuple[bytes, ...] | None:
    """The kind and device numbers of a node that is neither file, directory nor
    symlink; None for a socket, which Docker's tar writer skips."""
    kind = stat.S_IFMT(st.st_mode)
    if kind == stat.S_IFIFO:
        return (b"fifo",)
    if kind in (stat.S_IFCHR, stat.S_IFBLK):
        dev = (b"%d" % os.major(st.st_rdev), b"%d" % os.minor(st.st_rdev))
        return (b"char" if kind == stat.S_IFCHR else b"block", *dev)
    return None


def file_digest(fd: int, name: str, known_content: str = "") -> str:
    """The digest of one source that is not a directory, open as `fd`: its base name
    (the name it gets when copied into a directory), metadata and content."""
    st = os.fstat(fd)
    base = name.rstrip("/").rpartition("/")[2]
    if stat.S_ISREG(st.st_mode):
        content = known_content.encode() if known_content else _content(fd)
        size = b"%d" % st.st_size
        record = _record(b"file", base, st, size, capability(fd).hex().encode(), content)
    else:
        special = _special(st) or (b"socket",)
        record = _record(special[0], base, st, *special[1:])
    return hashlib.sha256(record).hexdigest()


def tree_digest(dir_fd: int) -> str:
    """The digest of a directory's contents (not of the directory itself: a COPY makes
    or keeps the destination directory, it never copies the source's own metadata)."""
    hasher = hashlib.sha256()
    for record in _tree_records(dir_fd, "", {}):
        hasher.update(record)
    return hasher.hexdigest()


def _tree_records(dir_fd: int, prefix: str, seen: dict[tuple[int, int], str]) -> Iterator[bytes]:
    for entry in sorted_entries(dir_fd):
        st = entry.stat(follow_symlinks=False)
        rel = prefix + entry.name
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            # A second name of the same inode is copied as a hard link to the first.
            first = seen.setdefault((st.st_dev, st.st_ino), rel)
            if first != rel:
                yield _record(b"link", rel, st, first.encode("utf-8", "surrogateescape"))
                continue
        if stat.S_ISDIR(st.st_mode):
            yield _record(b"dir", rel, st)
            child = os.open(entry.name, _OPEN_DIR, dir_fd=dir_fd)
            try:
                yield from _tree_records(child, rel + "/", seen)
            finally:
                os.close(child)
        elif stat.S_ISREG(st.st_mode):
            fd = os.open(entry.name, _OPEN_FILE, dir_fd=dir_fd)
            try:
                caps = capability(fd).hex().encode()
                yield _record(b"file", rel, st, b"%d" % st.st_size, caps, _content(fd))
            finally:
                os.close(fd)
        elif stat.S_ISLNK(st.st_mode):
            target = os.readlink(os.fsencode(entry.name), dir_fd=dir_fd)
            yield _record(b"symlink", rel, st, target)
        elif (special := _special(st)) is not None:
            yield _record(special[0], rel, st, *special[1:])
