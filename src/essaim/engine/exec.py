"""`docker exec`: exec instances created against a running container, started attached
(stdio relayed until the process ends, its exit code known before the stream closes) or
detached, resized, inspected, and forgotten with their container.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from essaim.engine.attach import (
    AttachOptions,
    AttachSession,
    ClientStream,
    frame,
    parse_detach_keys,
)
from essaim.engine.container_events import ContainerEvents
from essaim.engine.index import ContainerIndex
from essaim.engine.naming import new_id
from essaim.engine.storage import ContainerStorage
from essaim.engine.tasks import BackgroundTasks
from essaim.errors import Conflict, EssaimError, InvalidParameter, NotFound
from essaim.model.container import PAUSED, RESTARTING, Container
from essaim.model.exec import ExecConfig, ExecInstance
from essaim.runtime.base import ContainerFiles, ExecHandle, RuntimeError_
from essaim.runtime.capabilities import container_capabilities
from essaim.runtime.conmon import ATTACH_PACKET, send_signal
from essaim.runtime.exec_spec import ExecRequest, exec_process
from essaim.runtime.host import HostFacts
from essaim.runtime.registry import Runtimes
from essaim.runtime.spec import container_env
from essaim.runtime.users import resolve_user

log = logging.getLogger(__name__)

Relay = Callable[[ClientStream], Awaitable[None]]

# dockerd's exec garbage collection lets an ended exec go within 5 to 10 minutes.
KEEP_ENDED_EXEC = 300.0
# What dockerd keeps of a health probe's output.
PROBE_OUTPUT = 4096


def exec_failure_exit_code(message: str) -> int:
    """What dockerd records for an exec whose process could not start."""
    if "executable file not found" in message or "no such file or directory" in message:
        return 127
    return 126


class ExecService:
    def __init__(
        self,
        *,
        index: ContainerIndex,
        storage: ContainerStorage,
        runtimes: Runtimes,
        events: ContainerEvents,
        tasks: BackgroundTasks,
        host: HostFacts,
    ) -> None:
        self.index = index
        self.storage = storage
        self.runtimes = runtimes
        self.events = events
        self.tasks = tasks
        self.host = host
        self._execs: dict[str, ExecInstance] = {}
        # When each ended exec ended (monotonic seconds).
        self._ended_at: dict[str, float] = {}

    def create(self, ref: str, config: ExecConfig) -> ExecInstance:
        container = self._running(ref)
        if not config.cmd:
            raise InvalidParameter("No exec command specified")
        self._forget_stale()
        instance = ExecInstance(
            id=new_id(), container_id=container.id, config=config,
            container_started_at=container.state.started_at,
        )  # fmt: skip
        self._execs[instance.id] = instance
        self.events.publish(container, f"exec_create: {' '.join(config.cmd)}", execID=instance.id)
        return instance

    def get(self, exec_id: str) -> ExecInstance:
        instance = self._execs.get(exec_id)
        if instance is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return instance

    def ids_of(self, cid: str) -> list[str]:
        """`ExecIDs` of a container, as dockerd keeps its list: execs created in its
        current run that have not ended (an ended or failed one leaves it at once)."""
        container = self.index.find(cid)
        if container is None or not container.state.running:
            return []
        return [
            e.id
            for e in self._execs.values()
            if e.container_id == cid
            and e.exit_code is None
            and e.container_started_at == container.state.started_at
        ]

    def _forget_stale(self) -> None:
        """Like dockerd, keep an ended exec a while for inspection, then let it go; and
        let go of every exec of a container that is gone."""
        now = time.monotonic()
        for instance in list(self._execs.values()):
            ended = self._ended_at.get(instance.id)
            gone = self.index.find(instance.container_id) is None
            if gone or (ended is not None and now - ended > KEEP_ENDED_EXEC):
                del self._execs[instance.id]
                self._ended_at.pop(instance.id, None)

    def resize(self, exec_id: str, height: int, width: int) -> None:
        instance = self.get(exec_id)
        if not instance.running:
            raise Conflict(f"Exec {exec_id} is not running")
        container = self.index.get(instance.container_id)
        runtime = self.runtimes.get(container.runtime)
        runtime.resize(ContainerFiles(self._exec_dir(instance)), height, width)

    def prepare_start(
        self, exec_id: str, *, tty: bool | None, console_size: tuple[int, int] | None
    ) -> ExecInstance:
        """Checks before anything is answered (a 404 or 409 must precede the 101)."""
        instance = self.get(exec_id)
        if instance.running:
            raise Conflict(f"Error: Exec command {exec_id} is already running")
        if instance.started:
            raise Conflict(f"Error: Exec command {exec_id} has already run")
        self._running(instance.container_id)
        if tty is not None:
            instance.config.tty = tty
        if console_size is not None and min(console_size) > 0:
            instance.config.console_size = console_size
        instance.started = True
        return instance

    async def start_detached(self, instance: ExecInstance) -> None:
        """`docker exec -d`: answered once the process runs; its end is recorded later."""
        handle = await self._launch(instance, attach=False)
        self.tasks.spawn(self._record_exit(instance, handle), f"exec-{instance.id}")

    def attached(self, instance: ExecInstance) -> Relay:
        """The relay to run once the client's connection is ours."""
        config = instance.config
        options = AttachOptions(
            stdin=config.attach_stdin,
            stdout=config.attach_stdout,
            stderr=config.attach_stderr,
            tty=config.tty,
            # An exec's stdin is closed when the client's ends, as dockerd does.
            stdin_once=True,
            detach_keys=parse_detach_keys(config.detach_keys),
        )

        async def relay(client: ClientStream) -> None:
            try:
                handle = await self._launch(instance, attach=True)
            except EssaimError as exc:
                text = exc.message + "\r\n"
                await client.write(text.encode() if config.tty else frame(1, text.encode()))
                return
            assert handle.attach is not None
            await AttachSession(client, options).run(handle.attach)
            # The client asks for the exit code as soon as the stream ends: know it first.
            await self._record_exit(instance, handle)

        return relay

    async def probe(self, cid: str, argv: list[str], limit: float) -> tuple[int, str]:
        """A health-check probe: `argv` run in the container, its exit code and output
        (stdout and stderr together, at most 4 KiB); -1 when it runs past `limit` seconds."""
        config = ExecConfig(cmd=argv, attach_stdout=True, attach_stderr=True)
        instance = ExecInstance(id=new_id(), container_id=cid, config=config, started=True)
        # A probe is an exec to dockerd too: exec_create, then exec_start and exec_die.
        self.events.publish(
            self.index.get(cid), f"exec_create: {' '.join(argv)}", execID=instance.id
        )
        handle = await self._launch(instance, attach=True)
        assert handle.attach is not None
        output = bytearray()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(limit):
                while packet := await loop.sock_recv(handle.attach, ATTACH_PACKET):
                    output += packet[1:][: max(0, PROBE_OUTPUT - len(output))]
        except TimeoutError:
            send_signal(handle.pid, signal.SIGKILL)
            await self._record_exit(instance, handle)
            return -1, f"Health check exceeded timeout ({limit:g}s)"
        except OSError:
            pass
        finally:
            handle.attach.close()
        await self._record_exit(instance, handle)
        assert instance.exit_code is not None
        return instance.exit_code, output.decode(errors="replace")

    async def _launch(self, instance: ExecInstance, *, attach: bool) -> ExecHandle:
        container = self._running(instance.container_id)
        runtime = self.runtimes.get(container.runtime)
        exec_dir = self._exec_dir(instance)
        try:
            await asyncio.get_running_loop().run_in_executor(
                None, self._write_process, container, instance, exec_dir
            )
            handle = await runtime.exec(
                container.id, instance.id, exec_dir,
                tty=instance.config.tty, stdin=instance.config.attach_stdin, attach=attach,
            )  # fmt: skip
        except EssaimError as exc:
            message = exc.message
            if isinstance(exc, RuntimeError_):
                message = f"OCI runtime exec failed: {message}: unknown"
                exc.message = message
            instance.exit_code = exec_failure_exit_code(message)
            self._ended_at[instance.id] = time.monotonic()
            await self._cleanup(instance)
            raise
        instance.running, instance.pid = True, handle.pid
        self.events.publish(
            container, f"exec_start: {' '.join(instance.config.cmd)}", execID=instance.id
        )
        return handle

    async def _record_exit(self, instance: ExecInstance, handle: ExecHandle) -> None:
        code = await handle.exit_code()
        instance.exit_code, instance.running = code, False
        self._ended_at[instance.id] = time.monotonic()
        await self._cleanup(instance)
        container = self.index.find(instance.container_id)
        if container is not None:
            self.events.publish(container, "exec_die", execID=instance.id, exitCode=str(code))

    def _write_process(self, container: Container, instance: ExecInstance, exec_dir: Path) -> None:
        """process.json: the container's process with the exec's command and identity."""
        files = self.storage.files(container.id)
        container_process = json.loads(files.config.read_text())["process"]
        config = instance.config
        hostname = container.config.hostname or container.id[:12]
        privileged = (
            container_capabilities([], [], privileged=True, available=self.host.capabilities)
            if config.privileged
            else None
        )
        request = ExecRequest(
            args=config.cmd,
            env=container_env(
                [*container.config.env, *config.env], hostname=hostname, tty=config.tty
            ),
            cwd=config.working_dir or container.config.working_dir or "/",
            user=resolve_user(
                files.bundle / "rootfs",
                config.user or container.config.user,
                container.host_config.group_add or [],
            ),
            tty=config.tty,
            console_size=config.console_size,
            privileged_capabilities=privileged,
        )
        process = exec_process(container_process, request)
        exec_dir.mkdir(parents=True, exist_ok=True)
        (exec_dir / "process.json").write_text(json.dumps(process))

    def _exec_dir(self, instance: ExecInstance) -> Path:
        return self.storage.files(instance.container_id).bundle / "exec" / instance.id

    async def _cleanup(self, instance: ExecInstance) -> None:
        await asyncio.get_running_loop().run_in_executor(
            None, shutil.rmtree, self._exec_dir(instance), True
        )

    def _running(self, ref: str) -> Container:
        container = self.index.get(ref)
        status = container.state.status
        if status == PAUSED:
            raise Conflict(f"container {container.id} is paused, unpause the container before exec")
        if status == RESTARTING:
            raise Conflict(
                f"container {container.id} is restarting, wait until the container is running"
            )
        if not container.state.running:
            raise Conflict(f"container {container.id} is not running")
        return container
