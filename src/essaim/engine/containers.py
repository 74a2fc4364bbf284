"""The container service: create, start, stop, kill, restart, remove, wait, attach,
resize, and the exit monitor that records exits, removes `--rm` containers and
re-adopts containers that kept running while essaimd was down.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import logging
import os
import re
import shutil
import signal as signals
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from essaim.engine.attach import AttachOptions, AttachSession, ClientStream
from essaim.engine.hostfiles import host_file_mounts, write_host_files
from essaim.engine.naming import generated_name, new_id, validate_name
from essaim.engine.network_mode import CONTAINER, HOST, parse_network_mode
from essaim.engine.status import parse_rfc3339
from essaim.errors import Conflict, EssaimError, InvalidParameter, NotFound, NotModified
from essaim.image.service import ImageService
from essaim.model.container import (
    EXITED,
    PAUSED,
    REMOVING,
    RESTARTING,
    RUNNING,
    Container,
    ContainerConfig,
    ContainerState,
    HostConfig,
)  # fmt: skip
from essaim.runtime.conmon import (
    SIGNALS,
    ContainerFiles,
    RuntimeError_,
    conmon_alive,
    read_exit_code,
    send_signal,
    wait_for_pid_exit,
)  # fmt: skip
from essaim.runtime.host import HostFacts
from essaim.runtime.mounts import bind_mount
from essaim.runtime.registry import Runtimes
from essaim.runtime.rlimits import Ulimit
from essaim.runtime.spec import RunSpec, build_oci_config
from essaim.store import Collection, Store
from essaim.store.events import EventBus

log = logging.getLogger(__name__)

DEFAULT_STOP_TIMEOUT = 10
WAIT_CONDITIONS = ("not-running", "next-exit", "removed")
# Restart policy back-off, as dockerd: 100 ms doubling, reset after 10 s of running.
RESTART_DELAY_MIN = 0.1
RESTART_DELAY_MAX = 60.0


def now_rfc3339() -> str:
    t = time.time_ns()
    base = datetime.fromtimestamp(t // 1_000_000_000, tz=UTC)
    return base.strftime("%Y-%m-%dT%H:%M:%S") + f".{t % 1_000_000_000:09d}Z"


def parse_signal(value: str | int | None, default: int = signals.SIGKILL) -> int:
    """Signal names with or without SIG, or numbers; Docker's 400 otherwise."""
    if value is None or value == "":
        return default
    if isinstance(value, int) or value.isdigit():
        number = int(value)
        if 0 < number < 65:
            return number
    else:
        name = value.upper().removeprefix("SIG")
        if name in SIGNALS:
            return SIGNALS[name]
    raise InvalidParameter(f"Invalid signal: {value}")


def exit_code_for_start_error(message: str) -> int:
    """What dockerd records for a process that could not start (the CLI maps these too)."""
    if "executable file not found" in message or "no such file or directory" in message:
        return 127
    if "permission denied" in message:
        return 126
    return 128


@dataclass
class _Waiters:
    next_exit: list[asyncio.Future[tuple[int, str]]]
    removed: list[asyncio.Future[tuple[int, str]]]


class ContainerService:
    def __init__(
        self,
        *,
        data_root: Path,
        store: Store,
        events: EventBus,
        images: ImageService,
        runtimes: Runtimes,
        cgroup_parent: str,
    ) -> None:
        self.root = data_root / "containers"
        self.root.mkdir(parents=True, exist_ok=True)
        self.records: Collection[Container] = Collection(store, "containers", Container)
        self.events = events
        self.images = images
        self.runtimes = runtimes
        self.cgroup_parent = cgroup_parent
        self.host = HostFacts.read()
        self._containers: dict[str, Container] = {}
        self._names: dict[str, str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiters: dict[str, _Waiters] = {}
        self._pending_attach: dict[str, list[AttachSession]] = {}
        # Containers whose last run's runtime state and rootfs mount are already freed.
        self._released: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- bookkeeping -------------------------------------------------------------

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _lock(self, cid: str) -> asyncio.Lock:
        return self._locks.setdefault(cid, asyncio.Lock())

    def _waiters_for(self, cid: str) -> _Waiters:
        return self._waiters.setdefault(cid, _Waiters([], []))

    def files(self, cid: str) -> ContainerFiles:
        return ContainerFiles(self.root / cid)

    async def _save(self, container: Container) -> None:
        await self.records.put(container.id, container)
        self._containers[container.id] = container

    def _event(self, container: Container, action: str, **extra: str) -> None:
        attributes = dict(container.config.labels)
        attributes.update(image=container.config.image, name=container.name, **extra)
        self.events.publish("container", action, container.id, attributes)

    async def load(self) -> None:
        """Read every record and find running containers again (they outlive us)."""
        for container in await self.records.list():
            self._containers[container.id] = container
            self._names[container.name] = container.id
        layers_known = True
        for container in list(self._containers.values()):
            try:
                await self._hold_layers(container)
            except NotFound:
                layers_known = False
                log.warning(
                    "container %s: its image %s is gone and its layers were never recorded",
                    container.id[:12],
                    container.image_id,
                )
        await self._collect_orphans()
        if layers_known:
            # Only when every container's layers are known can the unused ones be told.
            swept = await self.images.collect_unused_layers()
            if swept:
                log.info("removed %d unused layer snapshots", len(swept))
        for container in list(self._containers.values()):
            await self._readopt(container)

    async def _collect_orphans(self) -> None:
        """Container directories without a record: a removal cut short by a crash."""
        loop = asyncio.get_running_loop()
        names = await loop.run_in_executor(None, _dir_names, self.root)
        for cid in names:
            if cid in self._containers or not _CONTAINER_ID.fullmatch(cid):
                continue
            log.info("removing what is left of container %s", cid[:12])
            # No record says which runtime ran it: each forgets it (quiet when unknown).
            for runtime in self.runtimes:
                runtime.forget_sockets(cid)
                await runtime.delete(cid)
            await self._unmount_rootfs(cid)
            await loop.run_in_executor(None, shutil.rmtree, self.root / cid, True)

    async def _readopt(self, container: Container) -> None:
        state = container.state
        if state.status == REMOVING:
            await self._finish_remove(container)
            return
        if state.status not in (RUNNING, PAUSED, RESTARTING):
            return
        if conmon_alive(state.conmon_pid, container.id):
            log.info("re-adopted running container %s", container.id[:12])
            self._spawn(self._monitor(container.id, state.conmon_pid), f"monitor-{container.id}")
            return
        # It ended while we were away: conmon left its exit code on disk.
        code = read_exit_code(self.files(container.id), container.id)
        await self._on_exit(container.id, 255 if code is None else code)

    async def close(self) -> None:
        """Stop watching; containers keep running under their conmon."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _hold_layers(
        self, container: Container
    ) -> tuple[builtins.list[str], builtins.list[str]]:
        """Hold the container's layers with the image service so that no image removal
        takes them; returns them (chain ids bottom first, blobs). Records from before
        containers kept their layers get them from their image (NotFound if it is gone)."""
        chain_ids = container.chain_ids
        if chain_ids is None:
            image = await self.images.get(container.image_id)
            chain_ids, container.layer_digests = self.images.rootfs_layers(image)
            container.chain_ids = chain_ids
            await self._save(container)
        self.images.hold_layers(container.id, chain_ids, container.layer_digests)
        return chain_ids, container.layer_digests

    # ---- lookup ------------------------------------------------------------------

    def get(self, ref: str) -> Container:
        """By full id, name (with or without /), or unique id prefix, as dockerd."""
        if not ref:
            raise NotFound("No such container: ")
        found = self._containers.get(ref)
        if found is not None:
            return found
        cid = self._names.get(ref.lstrip("/"))
        if cid is not None:
            return self._containers[cid]
        matches = [c for cid, c in self._containers.items() if cid.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def list(self) -> list[Container]:
        return sorted(self._containers.values(), key=lambda c: c.created, reverse=True)

    def uses_image(self, image_id: str) -> builtins.list[tuple[str, bool]]:
        return [
            (c.id, c.state.running) for c in self._containers.values() if c.image_id == image_id
        ]

    def image_shown(self, container: Container) -> str:
        """The image as `docker ps` shows it: the name the container was created with
        while it still names the same image, else the image id (moby's refreshImage)."""
        typed = container.config.image
        if typed == container.image_id:
            return typed
        image = self.images.get_cached(typed)
        return typed if image is not None and image.id == container.image_id else container.image_id

    # ---- create ------------------------------------------------------------------

    async def create(
        self, name: str | None, config: ContainerConfig, host_config: HostConfig
    ) -> Container:
        runtime_name = self.runtimes.get(host_config.runtime).runtime_name
        if name:
            name = validate_name(name)
            if name in self._names:
                raise Conflict(
                    f'Conflict. The container name "/{name}" is already in use by container '
                    f'"{self._names[name]}". You have to remove (or rename) that container '
                    "to be able to reuse that name."
                )
        else:
            name = generated_name()
            while name in self._names:
                name = generated_name()
        if host_config.restart_policy.name not in (
            "",
            "no",
            "always",
            "unless-stopped",
            "on-failure",
        ):
            raise InvalidParameter(
                f"invalid restart policy: unknown policy '{host_config.restart_policy.name}'; "
                "use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
            )
        if host_config.auto_remove and host_config.restart_policy.name not in ("", "no"):
            raise InvalidParameter("can't create 'AutoRemove' container with restart policy")
        image = await self.images.get(config.image)
        chain_ids, layer_digests = self.images.rootfs_layers(image)
        image_config = image.config
        entrypoint = config.entrypoint if config.entrypoint else list(image_config.entrypoint or [])
        cmd = config.cmd
        if not cmd and not config.entrypoint:
            cmd = list(image_config.cmd or [])
        argv = [*entrypoint, *cmd]
        if not argv:
            raise InvalidParameter("no command specified")
        env = _merge_env(list(image_config.env or []), config.env)
        cid = new_id()
        config.env = env
        config.cmd = cmd
        config.entrypoint = entrypoint
        config.working_dir = config.working_dir or image_config.working_dir or ""
        config.user = config.user or image_config.user or ""
        config.labels = {**(image_config.labels or {}), **config.labels}
        config.stop_signal = config.stop_signal or image_config.stop_signal or ""
        network = parse_network_mode(host_config.network_mode)
        if network.kind == CONTAINER:
            # Stored by id, as dockerd does: a rename of the other one changes nothing.
            host_config.network_mode = f"container:{self.get(network.container).id}"
        host_network = network.kind == HOST
        config.hostname = config.hostname or (socket.gethostname() if host_network else cid[:12])
        container = Container(
            id=cid,
            name=name,
            created=now_rfc3339(),
            image_id=image.id,
            config=config,
            host_config=host_config,
            path=argv[0],
            args=argv[1:],
            runtime=runtime_name,
            chain_ids=chain_ids,
            layer_digests=layer_digests,
        )
        self._names[name] = cid
        # Held before anything awaits: an `rmi -f` from now on leaves the layers be.
        self.images.hold_layers(cid, chain_ids, layer_digests)
        container_dir = self.root / cid
        try:
            await asyncio.get_running_loop().run_in_executor(
                None, self._make_dir, container_dir, config.hostname, config.domainname,
                host_network,
            )  # fmt: skip
            await self._save(container)
        except BaseException:
            self._names.pop(name, None)
            self._containers.pop(cid, None)
            shutil.rmtree(container_dir, ignore_errors=True)
            with contextlib.suppress(Exception):
                await self.images.release_layers(cid)
            raise
        self._event(container, "create")
        return container

    @staticmethod
    def _make_dir(container_dir: Path, hostname: str, domainname: str, host_network: bool) -> None:
        container_dir.mkdir(mode=0o710)
        write_host_files(container_dir, hostname, domainname, host_network=host_network)

    # ---- start -------------------------------------------------------------------

    async def start(self, ref: str) -> None:
        container = self.get(ref)
        async with self._lock(container.id):
            container = self.get(container.id)
            if container.state.status in (RUNNING, PAUSED, RESTARTING):
                raise NotModified("container already started")
            if container.state.status == REMOVING:
                raise Conflict(
                    f"container {container.id} is marked for removal and cannot be started"
                )
            await self._start_locked(container)

    async def _start_locked(self, container: Container) -> None:
        cid = container.id
        files = self.files(cid)
        tty, stdin = container.config.tty, container.config.open_stdin
        self._released.discard(cid)
        runtime = self.runtimes.get(container.runtime)
        try:
            # The recorded layers, not the image: `rmi -f` may have taken it.
            chain_ids, layer_digests = await self._hold_layers(container)
            rootfs = await self.images.mount_layers(chain_ids, layer_digests, files.bundle)
            oci = build_oci_config(self._run_spec(container, rootfs), self.host)
            files.config.write_text(json.dumps(oci))
            started = await runtime.create(
                cid, files, tty=tty, stdin=stdin,
                leave_stdin_open=not (container.config.stdin_once and not tty),
            )  # fmt: skip
        except EssaimError as exc:
            await self._start_failed(container, exc)
            raise
        for session in self._pending_attach.pop(cid, []):
            self._connect_attach(cid, session)
        try:
            await runtime.start(cid)
        except RuntimeError_ as exc:
            await runtime.delete(cid)
            await self._start_failed(container, exc)
            raise
        container.state = ContainerState(
            status=RUNNING,
            pid=started.pid,
            conmon_pid=started.conmon_pid,
            started_at=now_rfc3339(),
            restart_count=container.state.restart_count,
        )
        await self._save(container)
        self._event(container, "start")
        self._spawn(self._monitor(cid, started.conmon_pid), f"monitor-{cid}")

    async def _start_failed(self, container: Container, exc: EssaimError) -> None:
        message = (
            "failed to create task for container: failed to create shim task: "
            f"OCI runtime create failed: {exc.message}: unknown"
            if isinstance(exc, RuntimeError_)
            else exc.message
        )
        exc.message = message
        exc.args = (message,)
        for session in self._pending_attach.pop(container.id, []):
            session.done.set()
        self.runtimes.get(container.runtime).forget_sockets(container.id)
        with contextlib.suppress(Exception):
            await self.images.unmount_rootfs(self.files(container.id).bundle)
        container.state.error = message
        container.state.exit_code = exit_code_for_start_error(message)
        await self._save(container)
        if container.host_config.auto_remove:
            await self._remove_locked(container)

    def _run_spec(self, container: Container, rootfs: Path) -> RunSpec:
        config, host = container.config, container.host_config
        files_dir = self.files(container.id).bundle
        network = parse_network_mode(host.network_mode)
        namespace: str | None = ""  # a new one
        if network.kind == HOST:
            namespace = None
        elif network.kind == CONTAINER:
            other = self.get(network.container)
            if other.state.status not in (RUNNING, PAUSED) or other.state.pid <= 0:
                raise Conflict(f"cannot join network of a non running container: {other.id}")
            namespace = f"/proc/{other.state.pid}/ns/net"
            files_dir = self.files(other.id).bundle  # its names and resolvers too
        mounts = [bind_mount(src, dest) for src, dest in host_file_mounts(files_dir)]
        rows, cols = host.console_size
        return RunSpec(
            container_id=container.id,
            rootfs=str(rootfs),
            args=[container.path, *container.args],
            env=config.env,
            cwd=config.working_dir or "/",
            user=config.user,
            tty=config.tty,
            open_stdin=config.open_stdin,
            hostname=config.hostname,
            network_namespace=namespace,
            console_size=(rows, cols) if config.tty and rows and cols else None,
            cgroups_path=f"/{self.cgroup_parent}/{container.id}",
            mounts=mounts,
            readonly_rootfs=host.readonly_rootfs,
            privileged=host.privileged,
            cap_add=host.cap_add,
            cap_drop=host.cap_drop,
            security_opt=host.security_opt,
            memory=host.memory,
            memory_swap=host.memory_swap,
            nano_cpus=host.nano_cpus,
            cpu_shares=host.cpu_shares,
            cpu_quota=host.cpu_quota,
            cpu_period=host.cpu_period,
            pids_limit=host.pids_limit,
            ulimits=[Ulimit(name=n, soft=s, hard=h) for n, s, h in host.ulimits],
            oom_score_adj=host.oom_score_adj,
        )

    # ---- exit --------------------------------------------------------------------

    async def _monitor(self, cid: str, conmon_pid: int) -> None:
        await wait_for_pid_exit(conmon_pid)
        code = read_exit_code(self.files(cid), cid)
        await self._on_exit(cid, 255 if code is None else code)

    async def _on_exit(self, cid: str, exit_code: int) -> None:
        container = self._containers.get(cid)
        if container is None:
            return
        async with self._lock(cid):
            state = container.state
            # An auto-removed container goes straight to removal: one record write, and
            # a crash before the end finds it REMOVING and finishes the job at start-up.
            state.status = REMOVING if container.host_config.auto_remove else EXITED
            state.exit_code = exit_code
            state.pid = 0
            state.conmon_pid = 0
            state.finished_at = now_rfc3339()
            state.oom_killed = (self.files(cid).bundle / "oom").exists()
            # This exit answers the waits registered before it; a `next-exit` wait that
            # arrives while the record is saved already sees it stopped: it is for the next run.
            waiters = self._waiters_for(cid)
            answered, waiters.next_exit = waiters.next_exit, []
            await self._save(container)
            ran_for = parse_rfc3339(state.finished_at) - parse_rfc3339(state.started_at)
            self._event(
                container, "die", exitCode=str(exit_code), execDuration=str(max(0, int(ran_for)))
            )
            for future in answered:
                if not future.done():
                    future.set_result((exit_code, ""))
            if container.host_config.auto_remove:
                await self._finish_remove(container)
                return
            await self._release(container)
            if self._should_restart(container):
                self._spawn(self._restart_later(container), f"restart-{cid}")

    async def _release(self, container: Container) -> None:
        """Free what a run held: the runtime's state and cgroup, the rootfs mount; both
        at once, since they are independent once the process is gone. Done once per run."""
        cid = container.id
        if cid in self._released:
            return
        runtime = self.runtimes.get(container.runtime)
        runtime.forget_sockets(cid)
        await asyncio.gather(runtime.delete(cid), self._unmount_rootfs(cid))
        self._released.add(cid)

    async def _release_layers(self, cid: str) -> None:
        try:
            await self.images.release_layers(cid)
        except Exception:
            log.exception("container %s: removing its unused layers failed", cid[:12])

    async def _unmount_rootfs(self, cid: str) -> None:
        with contextlib.suppress(Exception):
            await self.images.unmount_rootfs(self.files(cid).bundle)

    def _should_restart(self, container: Container) -> bool:
        policy, state = container.host_config.restart_policy, container.state
        if state.stopped_by_user:
            return False
        if policy.name in ("always", "unless-stopped"):
            return True
        if policy.name == "on-failure" and state.exit_code != 0:
            return (
                policy.maximum_retry_count == 0 or state.restart_count < policy.maximum_retry_count
            )
        return False

    async def _restart_later(self, container: Container) -> None:
        cid = container.id
        ran_for = time.time() - parse_rfc3339(container.state.started_at)
        count = container.state.restart_count
        delay = 0.0 if ran_for > 10 else min(RESTART_DELAY_MIN * (2**count), RESTART_DELAY_MAX)
        container.state.status = RESTARTING
        await self._save(container)
        await asyncio.sleep(delay)
        async with self._lock(cid):
            current = self._containers.get(cid)
            if current is None or current.state.status != RESTARTING:
                return
            current.state.restart_count += 1
            try:
                await self._start_locked(current)
            except EssaimError as exc:
                log.warning("restart of %s failed: %s", cid[:12], exc.message)
                current.state.status = EXITED
                await self._save(current)
                return
        self._event(current, "restart")

    # ---- stop, kill, restart -----------------------------------------------------

    async def kill(self, ref: str, signal: str | None) -> None:
        container = self.get(ref)
        sig = parse_signal(signal)
        if not container.state.running or container.state.pid <= 0:
            raise Conflict(f"Cannot kill container: {ref}: Container {container.id} is not running")
        if sig in (signals.SIGKILL, signals.SIGTERM, signals.SIGINT):
            container.state.stopped_by_user = True
        send_signal(container.state.pid, sig)
        self._event(container, "kill", signal=str(sig))

    async def stop(self, ref: str, grace: int | None, signal: str | None) -> None:
        container = self.get(ref)
        if container.state.status == RESTARTING:
            container.state.status = EXITED
            container.state.stopped_by_user = True
            await self._save(container)
            return
        if not container.state.running:
            raise NotModified("container already stopped")
        stop_signal = parse_signal(signal or container.config.stop_signal or None, signals.SIGTERM)
        if grace is None:
            grace = container.config.stop_timeout
        if grace is None:
            grace = DEFAULT_STOP_TIMEOUT
        await self._stop_running(container, stop_signal, grace)
        self._event(container, "stop")

    async def _stop_running(self, container: Container, stop_signal: int, grace: int) -> None:
        container.state.stopped_by_user = True
        exited = self.wait_for_next_exit(container.id)
        if container.state.status == PAUSED:
            with contextlib.suppress(EssaimError):
                await self.runtimes.get(container.runtime).resume(container.id)
        send_signal(container.state.pid, stop_signal)
        self._event(container, "kill", signal=str(stop_signal))
        try:
            if grace < 0:
                await exited
            else:
                await asyncio.wait_for(asyncio.shield(exited), grace)
        except TimeoutError:
            send_signal(container.state.pid, signals.SIGKILL)
            self._event(container, "kill", signal=str(int(signals.SIGKILL)))
            await exited

    async def restart(self, ref: str, grace: int | None, signal: str | None) -> None:
        container = self.get(ref)
        if container.state.running:
            with contextlib.suppress(NotModified):
                await self.stop(ref, grace, signal)
        await self.start(container.id)
        container.state.stopped_by_user = False
        self._event(container, "restart")

    async def resize(self, ref: str, height: int, width: int) -> None:
        container = self.get(ref)
        if not container.state.running:
            raise Conflict(f"Container {container.id} is not running")
        self.runtimes.get(container.runtime).resize(self.files(container.id), height, width)

    # ---- wait --------------------------------------------------------------------

    def wait_for_next_exit(self, cid: str) -> asyncio.Future[tuple[int, str]]:
        future: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self._waiters_for(cid).next_exit.append(future)
        return future

    def wait(self, ref: str, condition: str) -> asyncio.Future[tuple[int, str]]:
        """Registers at once (before the client starts the container); resolves later."""
        if condition == "":
            condition = "not-running"
        if condition not in WAIT_CONDITIONS:
            raise InvalidParameter(f"invalid condition: {json.dumps(condition)}")  # Go's %q
        container = self.get(ref)
        loop = asyncio.get_running_loop()
        if condition == "removed":
            future: asyncio.Future[tuple[int, str]] = loop.create_future()
            self._waiters_for(container.id).removed.append(future)
            return future
        if condition == "not-running" and not container.state.running:
            future = loop.create_future()
            future.set_result((container.state.exit_code, ""))
            return future
        return self.wait_for_next_exit(container.id)

    # ---- remove ------------------------------------------------------------------

    async def remove(self, ref: str, *, force: bool) -> None:
        container = self.get(ref)
        if container.state.running:
            if not force:
                raise Conflict(
                    f'cannot remove container "/{container.name}": container is running: '
                    "stop the container before removing or force remove"
                )
            await self._stop_running(container, signals.SIGKILL, -1)
        async with self._lock(container.id):
            if container.id in self._containers:
                await self._remove_locked(container)

    async def _remove_locked(self, container: Container) -> None:
        container.state.status = REMOVING
        await self._save(container)
        await self._finish_remove(container)

    async def _finish_remove(self, container: Container) -> None:
        cid = container.id

        async def drop_files() -> None:
            await self._release(container)
            loop = asyncio.get_running_loop()
            # Unmounted: the layers can go if only this container held them (their image
            # was force-deleted).
            await asyncio.gather(
                loop.run_in_executor(None, shutil.rmtree, self.root / cid, True),
                self._release_layers(cid),
            )

        # The record and the files go together; a crash in between leaves files without
        # a record, which start-up collects (`_collect_orphans`).
        await asyncio.gather(drop_files(), self.records.delete(cid))
        self._released.discard(cid)
        self._containers.pop(cid, None)
        if self._names.get(container.name) == cid:
            del self._names[container.name]
        self._event(container, "destroy")
        waiters = self._waiters.pop(cid, None)
        if waiters:
            for future in [*waiters.next_exit, *waiters.removed]:
                if not future.done():
                    future.set_result((container.state.exit_code, ""))
        self._locks.pop(cid, None)

    # ---- attach ------------------------------------------------------------------

    def prepare_attach(
        self, ref: str, options: AttachOptions
    ) -> Callable[[ClientStream], Awaitable[None]]:
        """Checks now (a 404 must come before the 101), relays once the client is ours."""
        container = self.get(ref)
        cid = container.id
        if not container.config.open_stdin:
            options.stdin = False
        options.tty = container.config.tty

        async def run(client: ClientStream) -> None:
            session = AttachSession(client, options)
            current = self._containers.get(cid)
            if current is None:
                return
            self._event(current, "attach")
            if current.state.status in (RUNNING, PAUSED):
                self._connect_attach(cid, session)
            else:
                self._pending_attach.setdefault(cid, []).append(session)
            await session.done.wait()

        return run

    def _connect_attach(self, cid: str, session: AttachSession) -> None:
        try:
            container = self._containers.get(cid)
            if container is None:
                raise OSError(f"container {cid} is gone")
            sock = self.runtimes.get(container.runtime).open_attach(cid)
        except OSError:
            session.done.set()
            return
        self._spawn(session.run(sock), f"attach-{cid}")


def _merge_env(image_env: list[str], env: list[str]) -> list[str]:
    merged: dict[str, str] = {}
    for item in [*image_env, *env]:
        key = item.split("=", 1)[0]
        merged[key] = item
    return list(merged.values())


_CONTAINER_ID = re.compile(r"[0-9a-f]{64}")


def _dir_names(path: Path) -> list[str]:
    try:
        return [entry.name for entry in os.scandir(path) if entry.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []
