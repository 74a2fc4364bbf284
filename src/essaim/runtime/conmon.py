"""The conmon + OCI runtime driver: one conmon per container owns its stdio, log file
and exit code, so containers outlive essaimd and are found again at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
from pathlib import Path

from essaim.runtime.base import ContainerFiles, RuntimeError_, Started
from essaim.runtime.conmon_exec import ExecLaunch, ExecProcess, start_exec
from essaim.runtime.conmon_pipes import PipeMessages, runtime_message

log = logging.getLogger(__name__)

# conmon's attach socket prefixes each packet with the stream it came from.
STDOUT_PIPE = 2
STDERR_PIPE = 3
ATTACH_PACKET = 8192 + 1
# runc's created-but-not-started handshake, in its state directory.
EXEC_FIFO = "exec.fifo"
EXEC_FIFO_TIMEOUT = 2.0


class ConmonRuntime:
    """The `OCIRuntime` of a runc-compatible runtime under conmon."""

    def __init__(
        self,
        *,
        runtime: str,
        runtime_root: Path,
        socket_dir: Path,
        conmon: str | None = None,
    ) -> None:
        self.runtime_path = shutil.which(runtime) or runtime
        self.runtime_name = Path(runtime).name
        self.runtime_root = runtime_root
        self.socket_dir = socket_dir
        self.conmon_path = conmon or shutil.which("conmon") or "/usr/bin/conmon"
        runtime_root.mkdir(parents=True, exist_ok=True)
        socket_dir.mkdir(parents=True, exist_ok=True)

    def _runtime_argv(self, *args: str) -> list[str]:
        return [self.runtime_path, "--root", str(self.runtime_root), *args]

    async def _run_runtime(self, *args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            *self._runtime_argv(*args),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError_(runtime_message(err.decode(errors="replace")))
        return out.decode()

    async def create(
        self,
        cid: str,
        files: ContainerFiles,
        *,
        tty: bool,
        stdin: bool,
        leave_stdin_open: bool,
        keep_log: bool = True,
    ) -> Started:
        """conmon -> `runtime create`: the process exists, stopped before exec."""
        files.exit_dir.mkdir(exist_ok=True)
        for stale in (files.pidfile, files.conmon_pid, files.ctl, files.bundle / "winsz"):
            stale.unlink(missing_ok=True)
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        argv = [
            self.conmon_path,
            "--api-version", "1",
            "--cid", cid,
            "--cuuid", cid,
            "--name", cid,
            "--runtime", self.runtime_path,
            "--runtime-arg", f"--root={self.runtime_root}",
            "--bundle", str(files.bundle),
            "--container-pidfile", str(files.pidfile),
            "--conmon-pidfile", str(files.conmon_pid),
            "--exit-dir", str(files.exit_dir),
            "--socket-dir-path", str(self.socket_dir),
            # `none` (the log driver of that name): output only reaches attached clients.
            "--log-path", f"k8s-file:{files.log}" if keep_log else "none",
            "--log-level", "error",
        ]  # fmt: skip
        if tty:
            argv.append("--terminal")
        if stdin:
            argv.append("--stdin")
            if leave_stdin_open:
                # Otherwise conmon closes the container's stdin when any attach ends.
                argv.append("--leave-stdin-open")
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
        env["_OCI_SYNCPIPE"] = str(write_fd)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                pass_fds=(write_fd,),
                env=env,
                cwd=str(files.bundle),
            )
        finally:
            os.close(write_fd)
        try:
            # conmon forks itself away at once; its first process only reports problems
            # with its own arguments.
            early, _ = await proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError_(f"conmon failed: {early.decode(errors='replace').strip()}")
            message = await PipeMessages(read_fd).next() or {
                "data": -1,
                "message": "conmon exited before reporting the container pid",
            }
        finally:
            os.close(read_fd)
        conmon_pid = int(files.conmon_pid.read_text().strip() or 0)
        raw_data = message.get("data", -1)
        data = raw_data if isinstance(raw_data, int) else -1
        if data <= 0:
            raise RuntimeError_(runtime_message(str(message.get("message", "unknown error"))))
        return Started(pid=data, conmon_pid=conmon_pid)

    async def start(self, cid: str) -> None:
        """Let the created process exec its command. runc's init waits on the state
        directory's exec fifo, and `runc start` only reads that fifo; reading it here
        saves a Go process start (~4 ms of every `docker run`). Anything unexpected
        falls back to the runtime's own command, which reports the real problem."""
        fifo = self.runtime_root / cid / EXEC_FIFO
        if self.runtime_name == "runc" and await _release_exec_fifo(fifo):
            return
        await self._run_runtime("start", cid)

    async def exec(
        self, cid: str, exec_id: str, bundle: Path, *, tty: bool, stdin: bool, attach: bool
    ) -> ExecProcess:
        """Run `bundle/process.json` in the running container `cid`."""
        launch = ExecLaunch(self.conmon_path, self.runtime_path, self.runtime_root, self.socket_dir)
        return await start_exec(launch, cid, exec_id, bundle, tty=tty, stdin=stdin, attach=attach)

    async def delete(self, cid: str) -> None:
        """Forget the runtime's state and cgroup; quiet when already gone."""
        with contextlib.suppress(RuntimeError_):
            await self._run_runtime("delete", "--force", cid)

    async def update(self, cid: str, resources: dict[str, object]) -> None:
        proc = await asyncio.create_subprocess_exec(
            *self._runtime_argv("update", "--resources", "-", cid),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate(json.dumps(resources).encode())
        if proc.returncode != 0:
            raise RuntimeError_(runtime_message(err.decode(errors="replace")))

    async def pause(self, cid: str) -> None:
        await self._run_runtime("pause", cid)

    async def resume(self, cid: str) -> None:
        await self._run_runtime("resume", cid)

    def attach_path(self, cid: str) -> Path:
        return self.socket_dir / cid / "attach"

    def open_attach(self, cid: str) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            sock.connect(str(self.attach_path(cid)))
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        return sock

    def resize(self, files: ContainerFiles, height: int, width: int) -> None:
        """Ask conmon to resize the pty; the fifo only exists while conmon runs."""
        try:
            fd = os.open(files.ctl, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return
        try:
            os.write(fd, f"1 {height} {width}\n".encode())
        except OSError:
            pass
        finally:
            os.close(fd)

    def log_control(self, files: ContainerFiles) -> int | None:
        """conmon's control fifo opened for writing; None when no conmon reads it."""
        try:
            return os.open(files.ctl, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return None

    def reopen_log(self, control: int) -> bool:
        """Ask conmon (through `log_control`'s fd, closed here) to write its log to a new
        file: it closes the one it has, creates `<log>.tmp` and renames it to `<log>`."""
        try:
            os.write(control, b"2 0 0\n")
            return True
        except OSError:
            return False
        finally:
            os.close(control)

    def forget_sockets(self, cid: str) -> None:
        link = self.socket_dir / cid
        with contextlib.suppress(OSError):
            link.unlink()

    def state_ids(self) -> list[str]:
        try:
            return [e.name for e in os.scandir(self.runtime_root) if e.is_dir()]
        except FileNotFoundError:
            return []


def read_exit_code(files: ContainerFiles, cid: str) -> int | None:
    """The exit code conmon recorded, or None if the container has not exited."""
    try:
        raw = (files.exit_dir / cid).read_text().strip()
    except OSError:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def conmon_alive(pid: int, cid: str) -> bool:
    """True if `pid` is still the conmon of `cid` (pids get reused across restarts)."""
    if pid <= 0:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"conmon" in cmdline and cid.encode() in cmdline


async def wait_for_pid_exit(pid: int) -> None:
    """Returns when process `pid` (not our child) has exited, via a pidfd."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def on_readable() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(pidfd, on_readable)
    try:
        await done
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


async def _release_exec_fifo(fifo: Path) -> bool:
    """Read runc's exec fifo the way `runc start` does: the init writes one byte and
    execs. True when done; False when the fifo is absent or the init never answered
    (the caller then runs `runc start`)."""
    try:
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    loop.add_reader(fd, readable.set)
    data = b""
    try:
        async with asyncio.timeout(EXEC_FIFO_TIMEOUT):
            while True:
                await readable.wait()
                readable.clear()
                try:
                    chunk = os.read(fd, 64)
                except BlockingIOError:
                    continue
                if chunk:
                    data += chunk
                elif data:
                    break  # the init wrote its byte and closed: it is exec'ing now
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(fifo)
    return True


def send_signal(pid: int, sig: int) -> None:
    # A pid of 0 or less would signal our own process group (or every process).
    if pid <= 0:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


SIGNALS = {name[3:]: int(getattr(signal, name)) for name in dir(signal)
           if name.startswith("SIG") and not name.startswith("SIG_")}  # fmt: skip
