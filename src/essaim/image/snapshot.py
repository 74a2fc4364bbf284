"""Layer snapshots: each layer unpacked once into `snapshots/<chain id hex>/fs`, and
overlayfs mounts that stack them under a container's own upper directory.

Everything here blocks (tar, fsync, mount(2)): the image service runs it in its executor.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import io
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

from essaim.errors import SystemError_
from essaim.image import archive
from essaim.image.content import HashingReader, fsync_dir

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

MNT_DETACH = 2
# Device nodes that layers bring (unpacked as Docker does, as root) stay inert in a
# container's rootfs: runc mounts its own /dev, so nothing there is a device we made.
MS_NODEV = 0x4
MOUNT_ATTR_NODEV = 0x4
_HEX = "0123456789abcdef"
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.syscall.restype = ctypes.c_long
_libc.syncfs.argtypes = [ctypes.c_int]

# The new mount API; these numbers are the same on every architecture.
_SYS_MOVE_MOUNT = 429
_SYS_FSOPEN = 430
_SYS_FSCONFIG = 431
_SYS_FSMOUNT = 432
_FSCONFIG_SET_STRING = 1
_FSCONFIG_CMD_CREATE = 6
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_AT_FDCWD = -100


def _os_error(what: str, path: Path | str) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{what} {path}: {os.strerror(code)}")


class _ReadProgress(io.RawIOBase):
    """A layer file whose reads report the furthest offset they have reached (the
    compression sniffing reads the head, then seeks back)."""

    def __init__(self, source: io.BufferedReader, report: Callable[[int], None]) -> None:
        self._source = source
        self._report = report
        self._furthest = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET, /) -> int:
        return self._source.seek(offset, whence)

    def tell(self) -> int:
        return self._source.tell()

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        count = self._source.readinto(buffer)
        offset = self._source.tell()
        if offset > self._furthest:
            self._furthest = offset
            self._report(offset)
        return count


def _reporting(file: io.BufferedReader, report: Callable[[int], None] | None) -> BinaryIO:
    return file if report is None else cast(BinaryIO, _ReadProgress(file, report))


class Snapshotter:
    """Unpacked layers under `root` (`<data_root>/snapshots`), keyed by chain id."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        # An image without layers still needs one lower directory to mount.
        self.empty = root / "empty"
        self.empty.mkdir(exist_ok=True)

    def dir(self, chain_id: str) -> Path:
        algorithm, _, hex_ = chain_id.partition(":")
        if algorithm != "sha256" or len(hex_) != 64 or hex_.strip(_HEX):
            raise ValueError(f"bad chain id {chain_id!r}")
        return self.root / hex_

    def fs(self, chain_id: str) -> Path:
        return self.dir(chain_id) / "fs"

    def exists(self, chain_id: str) -> bool:
        return (self.dir(chain_id) / "size").is_file()

    def size(self, chain_id: str) -> int:
        try:
            return int((self.dir(chain_id) / "size").read_text())
        except (FileNotFoundError, ValueError):
            return 0

    def unpack(
        self,
        chain_id: str,
        layer: Path,
        diff_id: str | None = None,
        on_read: Callable[[int], None] | None = None,
    ) -> int:
        """Unpack the (maybe compressed) layer tar for `chain_id` unless it is already
        there; return the layer's size. With `diff_id`, the uncompressed bytes must hash
        to it (DigestMismatch otherwise, and no snapshot). `on_read(offset)` is told how
        far into the layer file reading has come. A crash leaves only a `.tmp-`
        directory."""
        if self.exists(chain_id):
            return self.size(chain_id)
        staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
        try:
            fs = staging / "fs"
            fs.mkdir(mode=0o755)
            with (
                layer.open("rb") as file,
                archive.open_decompressed(_reporting(file, on_read)) as stream,
            ):
                if diff_id is None:
                    size = archive.unpack(stream, fs, whiteouts=True)
                else:
                    hashed = HashingReader(stream)
                    buffered = io.BufferedReader(hashed, archive.CHUNK)
                    size = archive.unpack(buffered, fs, whiteouts=True)
                    hashed.check(diff_id)
            (staging / "size").write_text(str(size))
            # Snapshots are durable once renamed: sync the tree as `sync -f` would.
            fd = os.open(fs, os.O_RDONLY | os.O_DIRECTORY)
            try:
                if _libc.syncfs(fd) != 0:
                    raise _os_error("syncfs", fs)
            finally:
                os.close(fd)
            try:
                os.rename(staging, self.dir(chain_id))
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                if self.exists(chain_id):
                    # Someone unpacked the same layer meanwhile: theirs is as good as ours.
                    return self.size(chain_id)
                # A directory without its size file was never a whole snapshot (made by
                # hand, or by an older layout): ours replaces it.
                self.remove(chain_id)
                os.rename(staging, self.dir(chain_id))
            fsync_dir(self.root)
            return size
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def remove(self, chain_id: str) -> bool:
        """Delete a snapshot; renamed away first so a half-deleted one never looks whole."""
        path = self.dir(chain_id)
        if not path.exists():
            return False
        doomed = Path(tempfile.mkdtemp(prefix=".tmp-del-", dir=self.root))
        os.rename(path, doomed / "snapshot")
        shutil.rmtree(doomed, ignore_errors=True)
        return True

    def clean(self) -> None:
        """Drop what interrupted unpacks and removals left behind."""
        for leftover in self.root.glob(".tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)

    def chain_ids_on_disk(self) -> list[str]:
        return [
            "sha256:" + p.name
            for p in self.root.iterdir()
            if len(p.name) == 64 and (p / "size").is_file()
        ]

    def lower_dirs(self, chain_ids: list[str]) -> list[Path]:
        """Overlay lower directories, top layer first, for an image's chain ids."""
        if not chain_ids:
            return [self.empty]
        return [self.fs(chain_id) for chain_id in reversed(chain_ids)]


def mount_overlay(lower_dirs: list[Path], container_dir: Path) -> Path:
    """Mount `container_dir/rootfs` as an overlay of `lower_dirs` (top first) under
    `container_dir/upper`; already mounted is fine. Returns the rootfs path."""
    upper = container_dir / "upper"
    work = container_dir / "work"
    rootfs = container_dir / "rootfs"
    for path in (upper, work, rootfs):
        path.mkdir(mode=0o755, parents=True, exist_ok=True)
    if os.path.ismount(rootfs):
        return rootfs
    for path in (*lower_dirs, upper, work):
        if any(c in os.fspath(path) for c in ",:"):
            raise SystemError_(f"overlay paths cannot contain ',' or ':': {path}")
    lowers = ":".join(os.fspath(p) for p in lower_dirs)
    options = f"lowerdir={lowers},upperdir={upper},workdir={work}"
    if len(options) < _PAGE_SIZE:
        flags = MS_NODEV
        if _libc.mount(b"overlay", os.fsencode(rootfs), b"overlay", flags, options.encode()) != 0:
            error = _os_error("mount overlay on", rootfs)
            raise SystemError_(f"failed to mount the container rootfs: {error}") from error
        return rootfs
    # Too many layers for mount(2)'s one-page option string: the new mount API takes
    # lower directories one at a time.
    _mount_overlay_fsconfig(lower_dirs, upper, work, rootfs)
    return rootfs


def _mount_overlay_fsconfig(lower_dirs: list[Path], upper: Path, work: Path, rootfs: Path) -> None:
    syscall = _libc.syscall
    fs_fd = syscall(_SYS_FSOPEN, b"overlay", 0)
    if fs_fd < 0:
        raise SystemError_(
            f"failed to mount the container rootfs: {_os_error('fsopen', 'overlay')}"
        )
    mnt_fd = -1
    try:
        settings = [(b"lowerdir+", p) for p in lower_dirs]
        settings += [(b"upperdir", upper), (b"workdir", work)]
        for key, value in settings:
            if syscall(_SYS_FSCONFIG, fs_fd, _FSCONFIG_SET_STRING, key, os.fsencode(value), 0):
                error = _os_error(f"fsconfig {key.decode()}", value)
                raise SystemError_(f"failed to mount the container rootfs: {error}")
        if syscall(_SYS_FSCONFIG, fs_fd, _FSCONFIG_CMD_CREATE, None, None, 0):
            error = _os_error("fsconfig create for", rootfs)
            raise SystemError_(f"failed to mount the container rootfs: {error}")
        mnt_fd = syscall(_SYS_FSMOUNT, fs_fd, 0, MOUNT_ATTR_NODEV)
        if mnt_fd < 0:
            raise SystemError_(
                f"failed to mount the container rootfs: {_os_error('fsmount', rootfs)}"
            )
        if syscall(
            _SYS_MOVE_MOUNT, mnt_fd, b"", _AT_FDCWD, os.fsencode(rootfs), _MOVE_MOUNT_F_EMPTY_PATH
        ):
            error = _os_error("move_mount to", rootfs)
            raise SystemError_(f"failed to mount the container rootfs: {error}")
    finally:
        if mnt_fd >= 0:
            os.close(mnt_fd)
        os.close(fs_fd)


def unmount_overlay(container_dir: Path) -> None:
    """Unmount `container_dir/rootfs`; a busy mount is detached lazily, an absent one is
    fine, so this can be called again after a crash."""
    rootfs = os.fsencode(container_dir / "rootfs")
    while True:
        if _libc.umount2(rootfs, 0) == 0:
            continue  # mounts can be stacked (a restart raced a mount); peel them all
        code = ctypes.get_errno()
        if code in (errno.EINVAL, errno.ENOENT):
            return  # not a mount point (any more), or no rootfs at all
        if code == errno.EBUSY:
            if _libc.umount2(rootfs, MNT_DETACH) == 0:
                continue
            code = ctypes.get_errno()
            if code in (errno.EINVAL, errno.ENOENT):
                return
        error = OSError(code, f"unmount {container_dir / 'rootfs'}: {os.strerror(code)}")
        raise SystemError_(f"failed to unmount the container rootfs: {error}") from error


def remove_container_layer(container_dir: Path) -> None:
    """Delete a container's upper and work directories (after unmounting)."""
    for name in ("upper", "work"):
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(container_dir / name)
