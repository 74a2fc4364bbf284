"""One writer per data root: essaimd holds an exclusive lock on `<data root>/essaimd.lock`
for its lifetime, so a second daemon (or an offline tool that cleans up leftovers) on the
same root is refused instead of corrupting the first one's state.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_NAME = "essaimd.lock"


class DataRootBusy(Exception):
    def __init__(self, data_root: Path, holder: str) -> None:
        who = f" (pid {holder})" if holder else ""
        super().__init__(f"data root {data_root} is in use by a running essaimd{who}")
        self.data_root = data_root


class DataRootLock:
    def __init__(self, data_root: Path) -> None:
        self.path = data_root / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock without waiting; DataRootBusy names the holder's pid."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise DataRootBusy(self.path.parent, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None
