"""The exec endpoints: create against a container, start (hijacked, or detached with a
plain 200), resize and inspect; wire JSON in and out, the exec service does the rest.
"""

from __future__ import annotations

from typing import Any

from essaim.api.containers import MULTIPLEXED, RAW_STREAM
from essaim.api.request import Request
from essaim.api.responses import AnyResponse, HijackResponse, empty, json_response
from essaim.api.router import Router
from essaim.api.wire_fields import strings
from essaim.engine.exec import ExecService
from essaim.errors import InvalidParameter
from essaim.model.exec import ExecConfig, ExecInstance


def _console_size(value: Any) -> tuple[int, int] | None:
    if not value:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and v >= 0 for v in value)
    ):
        raise InvalidParameter("ConsoleSize must be two non-negative integers")
    return (value[0], value[1])


def parse_exec_config(body: Any) -> ExecConfig:
    if not isinstance(body, dict):
        raise InvalidParameter("No exec command specified")
    return ExecConfig(
        cmd=strings(body.get("Cmd"), "Cmd"),
        env=strings(body.get("Env"), "Env"),
        user=str(body.get("User") or ""),
        working_dir=str(body.get("WorkingDir") or ""),
        tty=bool(body.get("Tty")),
        privileged=bool(body.get("Privileged")),
        attach_stdin=bool(body.get("AttachStdin")),
        attach_stdout=bool(body.get("AttachStdout")),
        attach_stderr=bool(body.get("AttachStderr")),
        detach_keys=str(body.get("DetachKeys") or ""),
        console_size=_console_size(body.get("ConsoleSize")),
    )


def inspect_wire(instance: ExecInstance) -> dict[str, Any]:
    config = instance.config
    return {
        "ID": instance.id,
        "Running": instance.running,
        "ExitCode": instance.exit_code,
        "ProcessConfig": {
            "tty": config.tty,
            "entrypoint": config.cmd[0] if config.cmd else "",
            "arguments": config.cmd[1:],
            "privileged": config.privileged,
            "user": config.user,
        },
        "OpenStdin": config.attach_stdin,
        "OpenStderr": config.attach_stderr,
        "OpenStdout": config.attach_stdout,
        "CanRemove": instance.started and not instance.running,
        "ContainerID": instance.container_id,
        "DetachKeys": config.detach_keys,
        "Pid": instance.pid,
    }


class ExecAPI:
    def __init__(self, execs: ExecService) -> None:
        self.execs = execs

    def register(self, router: Router) -> None:
        router.post("/containers/{id}/exec", self.create)
        router.post("/exec/{id}/start", self.start)
        router.post("/exec/{id}/resize", self.resize)
        router.get("/exec/{id}/json", self.inspect)

    async def create(self, req: Request) -> AnyResponse:
        config = parse_exec_config(await req.json(allow_empty=False))
        instance = self.execs.create(req.params["id"], config)
        return json_response({"Id": instance.id}, 201)

    async def start(self, req: Request) -> AnyResponse:
        body = await req.json(allow_empty=True) or {}
        if not isinstance(body, dict):
            raise InvalidParameter("json: cannot unmarshal exec start options")
        tty = body.get("Tty")
        instance = self.execs.prepare_start(
            req.params["id"],
            tty=None if tty is None else bool(tty),
            console_size=_console_size(body.get("ConsoleSize")),
        )
        if body.get("Detach"):
            await self.execs.start_detached(instance)
            return empty(200)
        tty_stream = instance.config.tty or not req.version_at_least(1, 42)
        return HijackResponse(
            self.execs.attached(instance), RAW_STREAM if tty_stream else MULTIPLEXED
        )

    async def resize(self, req: Request) -> AnyResponse:
        height = req.query.get_int("h", 0) or 0
        width = req.query.get_int("w", 0) or 0
        self.execs.resize(req.params["id"], height, width)
        return empty(200)

    async def inspect(self, req: Request) -> AnyResponse:
        return json_response(inspect_wire(self.execs.get(req.params["id"])))
