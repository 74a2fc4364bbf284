"""The container filesystem service: stat, tar out and extract in (`docker cp`), export
and diff, each with the container's lock held and its rootfs mounted while it works.

`docker cp` sees what the container sees: a running container's own root, with its
volumes, binds, tmpfs and /etc/hosts; for a stopped one, the rootfs, or the host source
of the volume or bind mounted over the path. `docker export` is the rootfs alone.
A stopped container's rootfs is mounted for the operation and unmounted after; the lock
keeps a start, restart or removal from racing it (moby holds the container lock as long).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, ParamSpec, TypeVar

from essaim.engine import archive, extract
from essaim.engine.archive import PathNotFound, PathStat
from essaim.engine.archive_roots import Located, check_writable, locate, stopped_mounts
from essaim.engine.container_events import ContainerEvents
from essaim.engine.extract import ExtractionPointMissing, ExtractOptions
from essaim.engine.filesystem_changes import Change, overlay_changes
from essaim.engine.in_root import open_process_root, open_root
from essaim.engine.index import ContainerIndex
from essaim.engine.storage import ContainerStorage
from essaim.engine.tar_paths import container_path
from essaim.errors import Conflict, InvalidParameter, NotFound
from essaim.image.snapshot import Snapshotter
from essaim.model.container import PAUSED, RUNNING, Container
from essaim.runtime.users import resolve_user

CHUNK = 1 << 16
# Tar streams last as long as their clients read: they get threads of their own, so that
# slow clients never starve the daemon's executor.
MAX_STREAMS = 8

P = ParamSpec("P")
R = TypeVar("R")


def _not_found(path: str, ref: str) -> NotFound:
    return NotFound(f"Could not find the file {path} in container {ref}")


class ContainerFilesystem:
    def __init__(
        self,
        *,
        index: ContainerIndex,
        storage: ContainerStorage,
        snapshots: Snapshotter,
        events: ContainerEvents,
    ) -> None:
        self.index = index
        self.storage = storage
        self.snapshots = snapshots
        self.events = events
        self._executor = ThreadPoolExecutor(MAX_STREAMS, thread_name_prefix="essaim-archive")

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _blocking(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    def _rootfs(self, cid: str) -> str:
        return os.fspath(self.storage.root / cid / "rootfs")

    async def _open_rootfs(
        self, ref: str, stack: contextlib.AsyncExitStack
    ) -> tuple[Container, int]:
        """Lock the container, mount its rootfs if no run holds it mounted, and open it;
        `stack` undoes all three in reverse."""
        cid = self.index.get(ref).id
        await stack.enter_async_context(self.index.lock(cid))
        container = self.index.get(cid)
        if container.state.status not in (RUNNING, PAUSED):
            # Undone even when it fails half-way (a volume subpath that is missing).
            stack.push_async_callback(self.storage.unmount_rootfs, cid)
            await self.storage.mount_rootfs(container)
        root_fd = await self._blocking(open_root, self._rootfs(cid))
        stack.callback(os.close, root_fd)
        return container, root_fd

    async def _open_view(
        self, ref: str, abs_path: str, stack: contextlib.AsyncExitStack
    ) -> tuple[Container, int, str, str | None]:
        """Lock the container and open the root `abs_path` is found in: (container, root
        descriptor, the path inside that root, and `abs_path` again when that root is a
        mount's, for naming). `stack` undoes it all."""
        container, root_fd = await self._open_rootfs(ref, stack)
        if container.state.status in (RUNNING, PAUSED):
            # Its own root, seen through its init: every mount as the container has it.
            pid = container.state.pid
            view_fd = await self._blocking(open_process_root, pid)
            stack.callback(os.close, view_fd)
            if self.index.get(container.id).state.pid != pid:
                raise Conflict(f"container {container.id} is not running")  # it just exited
            return container, view_fd, abs_path, None
        container_dir = self.storage.root / container.id

        def find() -> Located:
            mounts = stopped_mounts(
                container, container_dir, self.storage.mounts.sources(container.id)
            )
            return locate(mounts, abs_path, {m.source: os.path.isdir(m.source) for m in mounts})

        located = await self._blocking(find)
        if located.root is None:
            return container, root_fd, abs_path, None
        source = located.root
        mount_fd = await self._blocking(lambda: open_root(os.path.realpath(source)))
        stack.callback(os.close, mount_fd)
        return container, mount_fd, located.path, abs_path

    async def stat(self, ref: str, path: str) -> PathStat:
        abs_path = container_path(path)
        async with contextlib.AsyncExitStack() as stack:
            _, root_fd, inner, shown = await self._open_view(ref, abs_path, stack)
            try:
                result = await self._blocking(archive.stat_path, root_fd, inner, shown)
            except PathNotFound:
                raise _not_found(path, ref) from None
            return result

    async def archive(self, ref: str, path: str) -> tuple[PathStat, AsyncIterator[bytes]]:
        """The stat of `path` and a tar of it, streamed; the container stays locked (and
        its rootfs mounted) until the stream is read to its end or closed."""
        abs_path = container_path(path)
        stack = contextlib.AsyncExitStack()
        try:
            container, root_fd, inner, shown = await self._open_view(ref, abs_path, stack)
            try:
                result = await self._blocking(archive.stat_path, root_fd, inner, shown)
            except PathNotFound:
                raise _not_found(path, ref) from None

            def produce(out: BinaryIO) -> None:
                archive.write_path(root_fd, inner, out, shown)

            stream = PipeStream(produce, self._executor, stack.aclose)
        except BaseException:
            await stack.aclose()
            raise
        self.events.publish(container, "archive-path")
        return result, stream

    async def extract(
        self,
        ref: str,
        path: str,
        body: AsyncIterator[bytes],
        *,
        no_overwrite_dir_non_dir: bool,
        copy_uid_gid: bool,
    ) -> None:
        """Extract the tar `body` into the directory `path` of the container."""
        if not path:
            raise InvalidParameter("Path cannot be empty")
        abs_path = container_path(path)
        async with contextlib.AsyncExitStack() as stack:
            container, root_fd, inner, shown = await self._open_view(ref, abs_path, stack)
            # Messages name the path as the client gave it, unless a mount's root holds it.
            dest = path if shown is None else inner
            check_writable(container, abs_path)
            owner = None
            if copy_uid_gid and container.config.user:
                rootfs = Path(self._rootfs(container.id))
                user = await self._blocking(resolve_user, rootfs, container.config.user)
                owner = (user.uid, user.gid)
            options = ExtractOptions(no_overwrite_dir_non_dir, owner)

            def consume(source: BinaryIO) -> None:
                extract.extract(root_fd, dest, source, options)

            try:
                await feed_pipe(body, consume, self._executor)
            except ExtractionPointMissing:
                raise _not_found(path, ref) from None
        self.events.publish(container, "extract-to-dir")

    async def export(self, ref: str) -> AsyncIterator[bytes]:
        """A tar of the container's whole filesystem, streamed (locked until read)."""
        stack = contextlib.AsyncExitStack()
        try:
            container, root_fd = await self._open_rootfs(ref, stack)

            def produce(out: BinaryIO) -> None:
                archive.write_export(root_fd, out)

            stream = PipeStream(produce, self._executor, stack.aclose)
        except BaseException:
            await stack.aclose()
            raise
        self.events.publish(container, "export")
        return stream

    async def changes(self, ref: str) -> list[Change]:
        """What the container changed, from its own overlay layer against its image's."""
        container = self.index.get(ref)
        async with self.index.lock(container.id):
            chain_ids, _ = await self.storage.hold_layers(container)
            lowers = self.snapshots.lower_dirs(chain_ids)
            upper = self.storage.root / container.id / "upper"
            return await self._blocking(overlay_changes, upper, lowers)


class PipeStream:
    """The bytes a blocking producer writes into a pipe, read on the event loop. Closing
    it early breaks the pipe, which stops the producer; `on_close` runs once after."""

    def __init__(
        self,
        produce: Callable[[BinaryIO], None],
        executor: ThreadPoolExecutor,
        on_close: Callable[[], Awaitable[object]],
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(self._read_fd, False)
        self._on_close = on_close
        self._closed = False
        self._closing: asyncio.Future[None] | None = None
        self._producer = self._loop.run_in_executor(executor, _produce_into, produce, write_fd)

    def __aiter__(self) -> PipeStream:
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        while True:
            try:
                data = os.read(self._read_fd, CHUNK)
            except BlockingIOError:
                await _ready(self._loop, self._read_fd, writing=False)
                continue
            if data:
                return data
            try:
                await self._producer  # the end: the producer's failure, if any, is ours
            finally:
                await self.aclose()
            raise StopAsyncIteration

    async def aclose(self) -> None:
        """Close once; the release (unlock, unmount) runs to its end even when the
        caller is cancelled (a client hanging up as the stream ends), and a later call
        waits for it."""
        self._closed = True
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._release())
        await asyncio.shield(self._closing)

    async def _release(self) -> None:
        os.close(self._read_fd)
        try:
            with contextlib.suppress(Exception):
                await self._producer
        finally:
            await self._on_close()


def _produce_into(produce: Callable[[BinaryIO], None], write_fd: int) -> None:
    try:
        with open(write_fd, "wb", buffering=CHUNK, closefd=True) as out:
            produce(out)
    except BrokenPipeError:
        pass  # the reader went away: nobody wants the rest


async def feed_pipe(
    body: AsyncIterator[bytes], consume: Callable[[BinaryIO], None], executor: ThreadPoolExecutor
) -> None:
    """Run the blocking `consume` on a pipe that the loop fills with `body`; return (or
    raise) when it has finished. It may stop reading early (a refused entry): the rest of
    `body` is then left for the server to drain."""
    loop = asyncio.get_running_loop()
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    os.set_blocking(write_fd, False)
    consumer = loop.run_in_executor(executor, _consume_from, consume, read_fd)
    try:
        async for chunk in body:
            if not await _write_all(loop, write_fd, chunk):
                break
    except BaseException:
        os.close(write_fd)
        with contextlib.suppress(Exception):
            await consumer  # its thread must be done before the rootfs goes
        raise
    os.close(write_fd)
    await consumer


def _consume_from(consume: Callable[[BinaryIO], None], read_fd: int) -> None:
    with open(read_fd, "rb", buffering=CHUNK, closefd=True) as source:
        consume(source)


async def _write_all(loop: asyncio.AbstractEventLoop, fd: int, data: bytes) -> bool:
    """Write all of `data`; False when the reader has gone."""
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            await _ready(loop, fd, writing=True)
            continue
        except BrokenPipeError:
            return False
        view = view[written:]
    return True


async def _ready(loop: asyncio.AbstractEventLoop, fd: int, *, writing: bool) -> None:
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    if writing:
        loop.add_writer(fd, wake)
    else:
        loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        if writing:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)
