"""One exec session under conmon: `runtime exec` started only once the attach socket is
connected (so no output is lost), its pid and then its exit code read from the sync pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from essaim.runtime.base import RuntimeError_
from essaim.runtime.conmon_pipes import PipeMessages, message_data, runtime_message


@dataclass
class ExecProcess:
    """A started exec: `attach` is its stdio (None when detached)."""

    pid: int
    attach: socket.socket | None
    sync: PipeMessages
    _exit_code: int | None = field(default=None, init=False)

    async def exit_code(self) -> int:
        """Wait for the process to end; its status as the shell reports it."""
        if self._exit_code is None:
            code = message_data(await self.sync.next())
            self.sync.close()
            # conmon gone without a word: the process is gone too, how is unknown.
            self._exit_code = 126 if code is None else code
        return self._exit_code


@dataclass
class ExecLaunch:
    """Where conmon and the runtime are, for one container."""

    conmon_path: str
    runtime_path: str
    runtime_root: Path
    socket_dir: Path


async def start_exec(
    launch: ExecLaunch,
    cid: str,
    exec_id: str,
    bundle: Path,
    *,
    tty: bool,
    stdin: bool,
    attach: bool,
) -> ExecProcess:
    """Run `bundle/process.json` in container `cid`; raises RuntimeError_ with the runtime's
    words when it cannot start (an unknown command, a bad user)."""
    sync_read, sync_write = os.pipe2(os.O_CLOEXEC)
    start_read, start_write = os.pipe2(os.O_CLOEXEC)
    attach_read, attach_write = os.pipe2(os.O_CLOEXEC)
    child_fds = (sync_write, start_read, attach_write)
    argv = [
        launch.conmon_path,
        "--api-version", "1",
        "--cid", cid,
        "--cuuid", exec_id,
        "--name", cid,
        "--runtime", launch.runtime_path,
        "--runtime-arg", f"--root={launch.runtime_root}",
        "--bundle", str(bundle),
        "--container-pidfile", str(bundle / "pidfile"),
        "--conmon-pidfile", str(bundle / "conmon.pid"),
        "--exit-dir", str(bundle),
        "--socket-dir-path", str(launch.socket_dir),
        # Docker keeps no log of exec output; conmon needs a path all the same.
        "--log-path", f"k8s-file:{bundle / 'output.log'}",
        "--no-sync-log",
        "--log-level", "error",
        "--exec",
        "--exec-process-spec", str(bundle / "process.json"),
    ]  # fmt: skip
    if attach:
        argv.append("--exec-attach")
    if tty:
        argv.append("--terminal")
    if stdin:
        argv.append("--stdin")
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "_OCI_SYNCPIPE": str(sync_write),
        "_OCI_STARTPIPE": str(start_read),
        "_OCI_ATTACHPIPE": str(attach_write),
    }
    sync = PipeMessages(sync_read)
    ready = PipeMessages(attach_read)
    connection: socket.socket | None = None
    try:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                pass_fds=child_fds,
                env=env,
                cwd=str(bundle),
            )
        finally:
            for fd in child_fds:
                os.close(fd)
        # conmon blocks on a first byte (meant for moving it to a cgroup) before it forks.
        os.write(start_write, b"0")
        early, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError_(f"conmon failed: {early.decode(errors='replace').strip()}")
        if attach:
            # The attach socket exists: connect before the runtime runs the command.
            if message_data(await ready.next()) is None:
                raise RuntimeError_("conmon exited before the exec's attach socket was ready")
            connection = _connect(launch.socket_dir / exec_id / "attach")
            os.write(start_write, b"0")
        started = await sync.next()
        pid = message_data(started)
        if pid is None or pid <= 0:
            text = str((started or {}).get("message") or "exec failed")
            raise RuntimeError_(runtime_message(text))
    except BaseException:
        if connection is not None:
            connection.close()
        sync.close()
        raise
    finally:
        ready.close()
        with contextlib.suppress(OSError):
            os.close(start_write)
    return ExecProcess(pid=pid, attach=connection, sync=sync)


def _connect(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        sock.connect(str(path))
    except OSError as exc:
        sock.close()
        raise RuntimeError_(f"cannot attach to the exec: {exc}") from exc
    sock.setblocking(False)
    return sock
