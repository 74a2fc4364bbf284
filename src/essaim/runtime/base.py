"""What the engine needs from an OCI runtime driver (the `OCIRuntime` protocol), and the
types that cross that boundary: a container's runtime files, a started process, a refusal.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from essaim.errors import SystemError_


class RuntimeError_(SystemError_):
    """The OCI runtime refused: the message is the runtime's own (users grep it)."""


@dataclass
class ContainerFiles:
    """Where one container's runtime files live (the bundle is the container dir)."""

    bundle: Path

    @property
    def config(self) -> Path:
        return self.bundle / "config.json"

    @property
    def log(self) -> Path:
        return self.bundle / "container.log"

    @property
    def conmon_pid(self) -> Path:
        return self.bundle / "conmon.pid"

    @property
    def pidfile(self) -> Path:
        return self.bundle / "pidfile"

    @property
    def exit_dir(self) -> Path:
        return self.bundle / "exit"

    @property
    def ctl(self) -> Path:
        return self.bundle / "ctl"


@dataclass
class Started:
    """A created container process: `pid` is its init, `conmon_pid` the monitor watching it."""

    pid: int
    conmon_pid: int


class ExecHandle(Protocol):
    """A process started in a running container by `docker exec`."""

    @property
    def pid(self) -> int: ...

    @property
    def attach(self) -> socket.socket | None:
        """Its stdio (as a container's attach socket), None when started detached."""
        ...

    async def exit_code(self) -> int:
        """Wait for it to end."""
        ...


class OCIRuntime(Protocol):
    """One OCI runtime (runc, crun) as the engine drives it; failures of the runtime
    itself raise `RuntimeError_` with the runtime's own message."""

    @property
    def runtime_name(self) -> str:
        """The name containers record and `docker info` lists ("runc")."""
        ...

    @property
    def runtime_path(self) -> str:
        """The runtime's executable."""
        ...

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
        """The process exists, stopped before it execs the container's command; its
        output goes to `files.log` unless `keep_log` is false."""
        ...

    async def start(self, cid: str) -> None:
        """Let the created process exec its command."""
        ...

    async def exec(
        self, cid: str, exec_id: str, bundle: Path, *, tty: bool, stdin: bool, attach: bool
    ) -> ExecHandle:
        """Run `bundle/process.json` in the running container `cid`; with `attach`, the
        command runs only once its stdio is connected."""
        ...

    async def delete(self, cid: str) -> None:
        """Forget the runtime's state and cgroup; quiet when already gone."""
        ...

    async def pause(self, cid: str) -> None: ...

    async def update(self, cid: str, resources: dict[str, object]) -> None:
        """Apply OCI `linux.resources` fields to a running container's cgroups; the
        fields left out keep their values."""
        ...

    async def resume(self, cid: str) -> None: ...

    def open_attach(self, cid: str) -> socket.socket:
        """A non-blocking connection to the container's stdio (OSError if none)."""
        ...

    def resize(self, files: ContainerFiles, height: int, width: int) -> None:
        """Resize the container's pty, if it has one and is still running."""
        ...

    def log_control(self, files: ContainerFiles) -> int | None:
        """A handle to ask the running container's monitor to reopen its log (None when
        it is not running); pass it to `reopen_log`."""
        ...

    def reopen_log(self, control: int) -> bool:
        """Have the monitor write to a fresh `files.log` (whatever holds the old one's
        name now keeps what was written before); consumes `control`."""
        ...

    def forget_sockets(self, cid: str) -> None:
        """Drop what the driver keeps to reach the container's stdio."""
        ...

    def state_ids(self) -> list[str]:
        """The containers the runtime keeps state for (deleted or not yet)."""
        ...
