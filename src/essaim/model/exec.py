"""An exec instance as essaim models it: what `docker exec` asked for and how its
process fares (not started, running, exited with a code). Kept in memory, as dockerd does.
"""

from __future__ import annotations

import msgspec


class ExecConfig(msgspec.Struct, kw_only=True):
    cmd: list[str]
    env: list[str] = []
    user: str = ""
    working_dir: str = ""
    tty: bool = False
    privileged: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    detach_keys: str = ""
    console_size: tuple[int, int] | None = None


class ExecInstance(msgspec.Struct, kw_only=True):
    id: str
    container_id: str
    config: ExecConfig
    running: bool = False
    started: bool = False
    pid: int = 0
    # None until the process has ended (or failed to start).
    exit_code: int | None = None
    # The container's StartedAt when the exec was created: dockerd forgets a container's
    # execs when it stops, so one from an earlier run is no longer the container's.
    container_started_at: str = ""
