"""Network namespaces the daemon owns: each one pinned by a bind mount under the exec root,
and code run inside one on a thread of its own (setns only moves the calling thread).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from essaim.errors import SystemError_

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SHARED = 1 << 20
MNT_DETACH = 0x2

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise SystemError_(f"{what}: {os.strerror(err)}")


def _mount(source: str, target: str, flags: int) -> None:
    _check(
        _libc.mount(source.encode(), target.encode(), b"none", ctypes.c_ulong(flags), None),
        f"mount {target}",
    )


def _on_own_thread(body: Callable[[], T]) -> T:
    """Run `body` on a new thread, so that a namespace it enters dies with that thread
    even if leaving it failed."""
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(body())
        except BaseException as exc:  # handed to the caller's thread
            error.append(exc)

    thread = threading.Thread(target=run, name="essaim-netns")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def run_in_netns(path: Path | str, body: Callable[[], T]) -> T:
    """`body()` with the calling thread inside the namespace at `path`. Sockets it opens
    stay in that namespace after it returns."""

    def inside() -> T:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _check(_libc.setns(fd, CLONE_NEWNET), f"setns {path}")
        finally:
            os.close(fd)
        return body()

    return _on_own_thread(inside)


async def in_netns(path: Path | str, body: Callable[[], T]) -> T:
    """`run_in_netns` off the event loop."""
    return await asyncio.to_thread(run_in_netns, path, body)


def _is_mount_point(path: Path) -> bool:
    """From mountinfo: `os.path.ismount` misses a directory bound onto itself."""
    wanted = str(path.resolve())
    with open("/proc/self/mountinfo") as mountinfo:
        return any(line.split()[4] == wanted for line in mountinfo)


class NamespaceFiles:
    """Namespaces pinned as files in one directory, which is a shared mount so that the
    copies later mount namespaces (containers') take of it go when we unmount ours:
    otherwise a container started after the pin would keep the namespace alive."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not _is_mount_point(self.root):
            # As iproute2 does for /run/netns: a mount of its own, so it can be shared.
            _mount(str(self.root), str(self.root), MS_BIND | MS_REC)
        _mount("", str(self.root), MS_SHARED | MS_REC)

    def release(self) -> None:
        """The directory's own mount gone, when no namespace is pinned in it any more."""
        if not self.names() and _is_mount_point(self.root):
            _check(_libc.umount2(str(self.root).encode(), MNT_DETACH), f"umount {self.root}")

    def path(self, name: str) -> Path:
        return self.root / name

    def create(self, name: str) -> Path:
        """A new, empty network namespace (only `lo`, down) pinned at `path(name)`."""
        target = self.path(name)
        target.touch(mode=0o444)

        def pin() -> None:
            _check(_libc.unshare(CLONE_NEWNET), "unshare")
            _mount("/proc/thread-self/ns/net", str(target), MS_BIND)

        try:
            _on_own_thread(pin)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return target

    def exists(self, name: str) -> bool:
        return os.path.ismount(self.path(name))

    def remove(self, name: str) -> None:
        """Unpin; the namespace (and the interfaces in it) goes once nothing else holds it."""
        target = self.path(name)
        if os.path.ismount(target):
            _check(_libc.umount2(str(target).encode(), MNT_DETACH), f"umount {target}")
        target.unlink(missing_ok=True)

    def names(self) -> list[str]:
        try:
            return sorted(p.name for p in self.root.iterdir())
        except FileNotFoundError:
            return []
