"""Volume subpaths (`volume-subpath=`): lexically inside the volume at create, then at each
start resolved as moby's safepath.Join does and bind-mounted from the descriptor opened.

Everything but `is_local` blocks (lstat, openat2, mount): callers run it off the loop.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import posixpath
import stat
from pathlib import Path

from essaim.engine.in_root import open_beneath, open_root
from essaim.errors import EssaimError, InvalidParameter, NotFound, SystemError_

_MS_BIND = 0x1000
_MNT_DETACH = 2
_UMOUNT_NOFOLLOW = 8
# Go's EvalSymlinks gives up after as many links.
_MAX_LINKS = 255

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def is_local(subpath: str) -> bool:
    """Go's filepath.IsLocal on Linux, dockerd's check at create: not empty, not
    absolute, and no `..` that leads out once the path is cleaned."""
    if not subpath or subpath.startswith("/"):
        return False
    if any(part in (".", "..") for part in subpath.split("/")):
        subpath = posixpath.normpath(subpath)
    return subpath != ".." and not subpath.startswith("../")


def _go_text(code: int) -> str:
    """An errno as Go words it (its table is glibc's, lower-cased)."""
    text = os.strerror(code)
    return text[:1].lower() + text[1:]


def _clean(path: str) -> str:
    """Go's path.Clean of an absolute path (normpath keeps a leading `//`)."""
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


class _Unresolved(Exception):
    """Go's EvalSymlinks failed; `missing` when a component does not exist."""

    def __init__(self, message: str, *, missing: bool) -> None:
        super().__init__(message)
        self.message = message
        self.missing = missing


def eval_symlinks(path: str) -> str:
    """Go's filepath.EvalSymlinks of the absolute `path` on the host (walkSymlinks:
    component by component, an absolute link restarting from `/`), with its errors."""
    vol_len, vol, dest = 1, "/", "/"
    links = 0
    start = end = vol_len
    while start < len(path):
        while start < len(path) and path[start] == "/":
            start += 1
        end = start
        while end < len(path) and path[end] != "/":
            end += 1
        part = path[start:end]
        start = end
        if not part:
            break
        if part == ".":
            continue
        if part == "..":
            r = dest.rfind("/", vol_len)
            if r < 0 or dest[r + 1 :] == "..":
                dest += ("/" if len(dest) > vol_len else "") + ".."
            else:
                dest = dest[:r]
            continue
        if dest and not dest.endswith("/"):
            dest += "/"
        dest += part
        try:
            mode = os.lstat(dest).st_mode
        except OSError as exc:
            code = exc.errno or errno.EIO
            raise _Unresolved(
                f"lstat {dest}: {_go_text(code)}", missing=code == errno.ENOENT
            ) from None
        if not stat.S_ISLNK(mode):
            if not stat.S_ISDIR(mode) and end < len(path):
                raise _Unresolved(_go_text(errno.ENOTDIR), missing=False)
            continue
        links += 1
        if links > _MAX_LINKS:
            raise _Unresolved("EvalSymlinks: too many links", missing=False)
        link = os.readlink(dest)
        path = link + path[end:]
        if link.startswith("/"):
            dest, vol, vol_len = "/", "/", 1
            start = end = 1
        else:
            r = dest.rfind("/", vol_len)
            dest = vol if r < 0 else dest[:r]
            start = end = 0
    return _clean(dest)


def _not_accessible(path: str, cause: str) -> NotFound:
    # moby's safepath.ErrNotAccessible (a NotFound error).
    return NotFound(f"cannot access path {path}: {cause}")


def _escapes(base: str, subpath: str) -> InvalidParameter:
    # moby's safepath.ErrEscapesBase (an InvalidParameter error).
    return InvalidParameter(
        f"path concatenation escapes the base directory, base: {base}, subpath: {subpath}"
    )


def resolve(base: str, subpath: str) -> tuple[str, str]:
    """moby's evaluatePath: (the volume directory with its symlinks resolved, the
    subpath relative to it with its own resolved); refused when they lead outside."""
    try:
        base_resolved = eval_symlinks(base)
    except _Unresolved as exc:
        if exc.missing:
            raise _not_accessible(base, exc.message) from None
        raise SystemError_(
            f'error while resolving symlinks in base directory "{base}": {exc.message}'
        ) from None
    combined = _clean(posixpath.join(base_resolved, subpath))
    try:
        combined_resolved = eval_symlinks(combined)
    except _Unresolved as exc:
        if exc.missing:
            raise _not_accessible(combined, exc.message) from None
        raise SystemError_(
            f'error while resolving symlinks in combined path "{combined}": {exc.message}'
        ) from None
    relative = posixpath.relpath(combined_resolved, base_resolved)
    if not is_local(relative):
        raise _escapes(base_resolved, subpath)
    return base_resolved, relative


def open_subpath(base: str, relative: str) -> int:
    """moby's safeOpenFd: an O_PATH descriptor of `relative` beneath the directory
    `base`, with no symlink on the way: one swapped in since `resolve` fails."""
    try:
        base_fd = open_root(base)
    except OSError as exc:
        raise _not_accessible(base, _go_text(exc.errno or errno.EIO)) from None
    try:
        return open_beneath(base_fd, relative, os.O_PATH, symlinks=False)
    except OSError as exc:
        code = exc.errno or errno.EIO
        if code == errno.EXDEV:
            raise _escapes(base, relative) from None
        if code in (errno.ENOENT, errno.ELOOP):
            raise _not_accessible(_clean(posixpath.join(base, relative)), _go_text(code)) from None
        raise SystemError_(f"openat2 {relative}: {_go_text(code)}") from None
    finally:
        os.close(base_fd)


def mount_subpath(base: str, subpath: str, target: Path) -> None:
    """Bind-mount `subpath` of the volume directory `base` on `target` (made here, a
    directory or an empty file as the subpath is). What is mounted is what was opened
    and checked (through /proc/self/fd), so nothing swapped in meanwhile gets mounted."""
    base_resolved, relative = resolve(base, subpath)
    fd = open_subpath(base_resolved, relative)
    try:
        is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
        try:
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if is_dir:
                target.mkdir(mode=0o700)
            else:
                flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC
                os.close(os.open(target, flags, 0o600))
        except OSError as exc:
            raise SystemError_(f"failed to create temporary file for safe mount: {exc}") from None
        source = f"/proc/self/fd/{fd}".encode()
        if _libc.mount(source, os.fsencode(target), None, _MS_BIND, None) != 0:
            code = ctypes.get_errno()
            _remove_mount_point(target)
            raise SystemError_(f"failed to mount resolved path: {_go_text(code)}")
    finally:
        os.close(fd)


def _remove_mount_point(target: Path) -> None:
    # rmdir and unlink never reach into a mount left there: they fail (EBUSY) instead.
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISDIR(os.lstat(target).st_mode):
            os.rmdir(target)
        else:
            os.unlink(target)


def unmount_subpath(target: Path) -> None:
    """Undo `mount_subpath`: detached lazily (a process may still look into it), then
    the empty mount point removed."""
    while _libc.umount2(os.fsencode(target), _MNT_DETACH | _UMOUNT_NOFOLLOW) == 0:
        pass  # a mount stacked on another by a run cut short: each goes
    code = ctypes.get_errno()
    if code not in (errno.EINVAL, errno.ENOENT):  # EINVAL: no mount (left) there
        raise OSError(code, os.strerror(code), str(target))
    _remove_mount_point(target)


def unmount_all(directory: Path) -> None:
    """Every subpath mount in `directory` undone, then the directory removed."""
    try:
        entries = [Path(entry.path) for entry in os.scandir(directory)]
    except FileNotFoundError:
        return
    for entry in entries:
        unmount_subpath(entry)
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(directory)


def populate_error(exc: EssaimError) -> EssaimError:
    """A seeding failure as dockerd words it, of the same kind."""
    return type(exc)(f"failed to populate volume: {exc.message}")
