"""Log rotation (`max-size`, `max-file`, `compress`): a periodic check of the running
containers' log sizes, rotating a full log by renaming it and having conmon reopen it.

conmon cannot rotate and keep files (its own size limit discards), so the daemon does:
it shifts `<log>.k` to `<log>.k+1`, renames `<log>` to `<log>.1`, then asks conmon to
reopen; lines written in between go to `<log>.1` through conmon's old descriptor, so
nothing is lost. With `max-file=1` only the reopen happens, which drops the old content
as Docker's truncation does. Sizes are checked every `CHECK_INTERVAL`: a file can
overshoot `max-size` by what the container writes between two checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from essaim.engine.index import ContainerIndex
from essaim.engine.log_files import LogFiles, LogFileSet
from essaim.model.container import PAUSED, RUNNING, Container
from essaim.model.log_config import Rotation, rotation
from essaim.runtime.base import ContainerFiles
from essaim.runtime.registry import Runtimes

log = logging.getLogger(__name__)

CHECK_INTERVAL = 0.2
# How long conmon gets to put a fresh log file in place after the reopen request.
REOPEN_TIMEOUT = 2.0
REOPEN_POLL = 0.002


class LogRotator:
    """Owns one long-lived task (`start`/`close`) and the compressions it starts."""

    def __init__(
        self,
        *,
        index: ContainerIndex,
        files: Callable[[str], ContainerFiles],
        runtimes: Runtimes,
        logs: LogFiles,
        interval: float = CHECK_INTERVAL,
    ) -> None:
        self.index = index
        self.files = files
        self.runtimes = runtimes
        self.logs = logs
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._compressions: set[asyncio.Task[None]] = set()
        # A container's log settings never change after create: parsed once.
        self._rotations: dict[str, Rotation | None] = {}

    def start(self) -> None:
        self._task = asyncio.ensure_future(self.run())
        self._task.set_name("log-rotation")

    async def close(self) -> None:
        tasks = [t for t in (self._task, *self._compressions) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def run(self) -> None:
        """Check, rotate where due, until cancelled; containers re-adopted after a daemon
        restart are simply among the running ones."""
        while True:
            try:
                await self.check_once()
            except Exception:
                log.exception("log rotation check failed")
            await asyncio.sleep(self.interval)

    async def check_once(self) -> None:
        containers = self.index.all()
        due: list[tuple[Container, Rotation]] = []
        for container in containers:
            policy = self._rotation(container)
            if policy is not None and container.state.status in (RUNNING, PAUSED):
                due.append((container, policy))
        self._forget_removed({c.id for c in containers})
        if not due:
            return
        paths = [self.files(c.id).log for c, _ in due]
        sizes = await asyncio.get_running_loop().run_in_executor(None, _sizes, paths)
        for (container, policy), size in zip(due, sizes, strict=True):
            try:
                if size is None:
                    await self.restore_live_file(container)
                elif size >= policy.max_size:
                    await self.rotate(container, policy)
            except OSError as exc:
                log.warning("rotating the log of %s failed: %s", container.id[:12], exc)
            if policy.compress:
                self._compress_rotated(self.logs.get(container.id))

    def _rotation(self, container: Container) -> Rotation | None:
        if container.id not in self._rotations:
            host = container.host_config
            self._rotations[container.id] = rotation(host.log_type, host.log_options)
        return self._rotations[container.id]

    def _forget_removed(self, present: set[str]) -> None:
        for cid in [c for c in self._rotations if c not in present]:
            del self._rotations[cid]
        self.logs.prune(present)

    async def rotate(self, container: Container, policy: Rotation) -> bool:
        """Rotate the live log now; False when its conmon is gone or did not answer."""
        files = self.files(container.id)
        runtime = self.runtimes.get(container.runtime)
        fileset = self.logs.get(container.id)
        loop = asyncio.get_running_loop()
        async with fileset.lock:
            fileset.load()
            # Opened first: without a conmon to reopen the log, nothing is renamed.
            control = runtime.log_control(files)
            if control is None:
                return False
            try:
                old = os.stat(fileset.log).st_ino
                moved = policy.max_files > 1
                if moved:
                    await loop.run_in_executor(None, fileset.move_live_file, policy.max_files)
            except BaseException:
                os.close(control)
                raise
            if runtime.reopen_log(control) and await _replaced(fileset.log, old):
                fileset.next_generation()
                return True
            log.warning("conmon of %s did not reopen its log", container.id[:12])
            if moved:
                fileset.undo_move()
            return False

    async def restore_live_file(self, container: Container) -> None:
        """A rotation cut short (essaimd killed between the rename and the reopen) leaves
        conmon writing to `<log>.1` with no `<log>`: ask it to reopen. The new file is
        still the same generation, whose file was missing."""
        files = self.files(container.id)
        fileset = self.logs.get(container.id)
        async with fileset.lock:
            fileset.load()
            if fileset.log.exists() or not files.bundle.is_dir():
                return
            control = self.runtimes.get(container.runtime).log_control(files)
            if control is not None and self.runtimes.get(container.runtime).reopen_log(control):
                await _replaced(fileset.log, -1)

    def _compress_rotated(self, fileset: LogFileSet) -> None:
        for gen in fileset.uncompressed():
            fileset.compressing.add(gen)
            task = asyncio.ensure_future(self._compress(fileset, gen))
            task.set_name(f"log-compress-{fileset.log.parent.name[:12]}")
            self._compressions.add(task)
            task.add_done_callback(self._compressions.discard)

    async def _compress(self, fileset: LogFileSet, gen: int) -> None:
        """gzip one rotated file beside it, then swap names under the lock (the file may
        have been shifted meanwhile: it is found by its generation)."""
        partial = fileset.partial_gzip(gen)
        loop = asyncio.get_running_loop()
        try:
            async with fileset.lock:
                path = fileset.rotated.get(gen)
                if path is None or path.name.endswith(".gz"):
                    return
                source = path.open("rb")
            try:
                await loop.run_in_executor(None, _gzip_to, source, partial)
            finally:
                source.close()
            async with fileset.lock:
                path = fileset.rotated.get(gen)
                if path is None:
                    partial.unlink(missing_ok=True)
                    return
                target = path.with_name(path.name + ".gz")
                os.rename(partial, target)
                path.unlink(missing_ok=True)
                fileset.rotated[gen] = target
        except OSError as exc:
            partial.unlink(missing_ok=True)
            log.warning("compressing %s failed: %s", fileset.log, exc)
        finally:
            fileset.compressing.discard(gen)


def _sizes(paths: list[Path]) -> list[int | None]:
    sizes: list[int | None] = []
    for path in paths:
        try:
            sizes.append(os.stat(path).st_size)
        except OSError:
            sizes.append(None)
    return sizes


def _gzip_to(source: BinaryIO, target: Path) -> None:
    with target.open("wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as out:
            shutil.copyfileobj(source, out, 1024 * 1024)
        raw.flush()
        os.fsync(raw.fileno())


async def _replaced(path: Path, old_inode: int) -> bool:
    """Wait for conmon to have put a new file at `path`."""
    deadline = time.monotonic() + REOPEN_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if os.stat(path).st_ino != old_inode:
                return True
        except FileNotFoundError:
            pass
        await asyncio.sleep(REOPEN_POLL)
    return False
