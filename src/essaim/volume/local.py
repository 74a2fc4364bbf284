"""The local volume driver on disk: `<data root>/volumes/<name>/_data`, and the filesystem
its `type`/`device`/`o` options mount there while a container uses it.

Everything here blocks (mkdir, rmtree, mount(8)): the volume service runs it off the loop.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from essaim.errors import SystemError_
from essaim.model.volume import Volume

DATA = "_data"


def created_now() -> str:
    """dockerd's CreatedAt: RFC 3339 to the second, in the daemon's zone (Z for UTC)."""
    moment = datetime.now().astimezone().replace(microsecond=0)
    if moment.utcoffset() == UTC.utcoffset(None):
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.isoformat()


class LocalDriver:
    def __init__(self, root: Path) -> None:
        self.root = root
        # 0701, as dockerd: others may reach a volume's data by path, not list names.
        self.root.mkdir(mode=0o701, parents=True, exist_ok=True)

    def volume_dir(self, name: str) -> Path:
        """The volume's own directory; refuses any name that would not stay a direct
        child of the volumes root (names are validated before, this is the backstop)."""
        if not name or "/" in name or name in (".", "..") or "\0" in name:
            raise SystemError_(f"invalid volume name {name!r}")
        path = self.root / name
        if path.parent != self.root:
            raise SystemError_(f"invalid volume name {name!r}")
        return path

    def mountpoint(self, name: str) -> Path:
        return self.volume_dir(name) / DATA

    def create(self, name: str) -> None:
        directory = self.volume_dir(name)
        directory.mkdir(mode=0o701, exist_ok=True)
        (directory / DATA).mkdir(mode=0o755, exist_ok=True)

    def remove(self, name: str) -> None:
        data = self.mountpoint(name)
        if os.path.ismount(data):
            self.unmount(name)
        shutil.rmtree(self.volume_dir(name), ignore_errors=True)

    def names_on_disk(self) -> list[str]:
        try:
            return [e.name for e in os.scandir(self.root) if e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return []

    def is_empty(self, name: str) -> bool:
        with os.scandir(self.mountpoint(name)) as entries:
            return next(entries, None) is None

    def size(self, name: str) -> int:
        """Bytes of the files under the volume's data, each hard-linked file once."""
        total = 0
        seen: set[tuple[int, int]] = set()
        for top, dirs, files in os.walk(self.mountpoint(name)):
            for entry in (*dirs, *files):
                try:
                    st = os.lstat(os.path.join(top, entry))
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
        return total

    def is_mounted(self, name: str) -> bool:
        return os.path.ismount(self.mountpoint(name))

    def mount(self, volume: Volume) -> None:
        """Mount the filesystem the volume's options describe on its data directory."""
        target = self.mountpoint(volume.name)
        if not volume.options or os.path.ismount(target):
            return
        options = volume.options
        argv = ["mount", "-t", options.get("type", ""), options.get("device", ""), str(target)]
        if options.get("o"):
            argv[3:3] = ["-o", options["o"]]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            reason = done.stderr.strip() or f"mount exited with {done.returncode}"
            raise SystemError_(
                f"error while mounting volume '{target}': failed to mount local volume: {reason}"
            )

    def unmount(self, name: str) -> None:
        target = self.mountpoint(name)
        if not os.path.ismount(target):
            return
        done = subprocess.run(["umount", str(target)], capture_output=True, check=False)
        if done.returncode != 0:
            # Busy (a process outside any container holds it): detach it lazily.
            subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)
