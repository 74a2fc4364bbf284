"""The runtimes a daemon offers: looked up by name ("" is the default), Docker's 400 for
an unknown one, any `OCIRuntime` driver accepted (here a simulated one)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from essaim.errors import InvalidParameter
from essaim.runtime.base import ContainerFiles, ExecHandle, OCIRuntime, RuntimeError_, Started
from essaim.runtime.registry import Runtimes


class SimulatedRuntime:
    def __init__(self, name: str) -> None:
        self.runtime_name = name
        self.runtime_path = f"/usr/bin/{name}"
        self.deleted: list[str] = []

    async def create(
        self, cid: str, files: ContainerFiles, *, tty: bool, stdin: bool, leave_stdin_open: bool
    ) -> Started:
        return Started(pid=100, conmon_pid=99)

    async def start(self, cid: str) -> None:
        pass

    async def exec(
        self, cid: str, exec_id: str, bundle: Path, *, tty: bool, stdin: bool, attach: bool
    ) -> ExecHandle:
        raise RuntimeError_("no exec in a simulated runtime")

    async def delete(self, cid: str) -> None:
        self.deleted.append(cid)

    async def pause(self, cid: str) -> None:
        pass

    async def update(self, cid: str, resources: dict[str, object]) -> None:
        pass

    async def resume(self, cid: str) -> None:
        pass

    def open_attach(self, cid: str) -> socket.socket:
        raise OSError("no attach socket")

    def resize(self, files: ContainerFiles, height: int, width: int) -> None:
        pass

    def forget_sockets(self, cid: str) -> None:
        pass

    def state_ids(self) -> list[str]:
        return []


def runtimes() -> Runtimes:
    found: dict[str, OCIRuntime] = {n: SimulatedRuntime(n) for n in ("runc", "crun")}
    return Runtimes(found, "runc")


def test_empty_name_is_the_default() -> None:
    assert runtimes().get("").runtime_name == "runc"
    assert runtimes().get("crun").runtime_name == "crun"


def test_unknown_runtime_is_dockers_400() -> None:
    with pytest.raises(InvalidParameter, match="unknown or invalid runtime name: kata"):
        runtimes().get("kata")


def test_the_default_must_be_installed() -> None:
    with pytest.raises(ValueError, match="default runtime 'kata' is not installed"):
        Runtimes({"runc": SimulatedRuntime("runc")}, "kata")


def test_paths_and_iteration_cover_every_runtime() -> None:
    registry = runtimes()
    assert registry.paths() == {"runc": "/usr/bin/runc", "crun": "/usr/bin/crun"}
    assert [r.runtime_name for r in registry] == ["runc", "crun"]
