"""Opening paths inside a container's root with openat2(RESOLVE_IN_ROOT): the kernel
keeps every `..` and symlink (absolute or not) inside the root, even while it changes.
`open_beneath` asks for RESOLVE_BENEATH instead: what would leave the base is refused.

Everything here blocks; callers run it in an executor thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from collections.abc import Sequence

_SYS_OPENAT2 = 437  # the same number on every architecture
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
_RESOLVE_IN_ROOT = 0x10
# openat2 gives EAGAIN when a rename elsewhere raced the lookup: it asks to be tried again.
_RETRIES = 64

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _OpenHow(ctypes.Structure):
    _fields_ = [
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    ]


def open_root(path: str) -> int:
    """An O_PATH descriptor of the directory `path` (itself not a symlink)."""
    return os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)


def _openat2(dir_fd: int, relative: str, how: _OpenHow, shown: str) -> int:
    path = os.fsencode(relative)
    for _ in range(_RETRIES):
        fd = _libc.syscall(_SYS_OPENAT2, dir_fd, path, ctypes.byref(how), ctypes.sizeof(how))
        if fd >= 0:
            return int(fd)
        code = ctypes.get_errno()
        if code not in (errno.EAGAIN, errno.EINTR):
            raise OSError(code, os.strerror(code), shown)
    raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN), shown)


def open_in_root(root_fd: int, parts: Sequence[str], flags: int, mode: int = 0) -> int:
    """openat2 of `parts` (components from the root) with the root as `/`."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
    return _openat2(root_fd, "/".join(parts) or ".", how, "/" + "/".join(parts))


def open_beneath(base_fd: int, relative: str, flags: int, *, symlinks: bool = True) -> int:
    """openat2 of `relative` under the directory `base_fd` with RESOLVE_BENEATH: a `..`
    or an absolute symlink that would leave the base fails with EXDEV; with `symlinks`
    False any symlink on the way fails with ELOOP."""
    resolve = _RESOLVE_BENEATH | _RESOLVE_NO_MAGICLINKS
    if not symlinks:
        resolve |= _RESOLVE_NO_SYMLINKS
    return _openat2(base_fd, relative or ".", _OpenHow(flags | os.O_CLOEXEC, 0, resolve), relative)


def open_dir(root_fd: int, parts: Sequence[str]) -> int:
    """An O_PATH descriptor of the directory `parts`, symlinks followed in the root: the
    `dir_fd` for *at calls on its entries."""
    return open_in_root(root_fd, parts, os.O_PATH | os.O_DIRECTORY)


def make_dirs(root_fd: int, parts: Sequence[str], mode: int = 0o755) -> int:
    """`open_dir` of `parts`, creating the missing directories (owned by root, `mode`)."""
    try:
        return open_dir(root_fd, parts)
    except FileNotFoundError:
        if not parts:
            raise
    parent = make_dirs(root_fd, parts[:-1], mode)
    try:
        os.mkdir(parts[-1], mode, dir_fd=parent)
    except FileExistsError:
        pass  # made meanwhile, or a dangling symlink: the open below tells
    finally:
        os.close(parent)
    return open_dir(root_fd, parts)


def readlink_in_root(root_fd: int, parts: Sequence[str]) -> str | None:
    """The target of the symlink `parts` (its directory resolved in the root); None when
    it is something else or does not exist."""
    if not parts:
        return None
    try:
        parent = open_dir(root_fd, parts[:-1])
    except OSError:
        return None
    try:
        return os.readlink(parts[-1], dir_fd=parent)
    except OSError:
        return None
    finally:
        os.close(parent)


def fd_path(fd: int) -> str:
    """What the kernel says `fd` names (for turning a resolved path back into a name)."""
    return os.readlink(f"/proc/self/fd/{fd}")


def open_process_root(pid: int) -> int:
    """An O_PATH descriptor of the root a process sees (`/proc/<pid>/root`): its mount
    namespace's tree, with every volume, bind and tmpfs mounted where the process has
    them. The magic link must be followed to get there, so no O_NOFOLLOW."""
    proc = os.open(f"/proc/{pid}", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return os.open("root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=proc)
    finally:
        os.close(proc)


class _StatFs(ctypes.Structure):
    # f_type leads struct statfs on every Linux ABI; the rest is room for the kernel.
    _fields_ = [("f_type", ctypes.c_long), ("_rest", ctypes.c_byte * 256)]


_libc.fstatfs.argtypes = [ctypes.c_int, ctypes.c_void_p]


def filesystem_type(fd: int) -> int:
    """The magic number of the filesystem `fd` is on (fstatfs's f_type)."""
    buf = _StatFs()
    if _libc.fstatfs(fd, ctypes.byref(buf)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return int(buf.f_type) & 0xFFFFFFFF
