"""`GET /containers/{id}/logs`: a container's log as dockerd streams it (multiplexed frames,
or raw bytes with a tty), with tail, since, until, timestamps, details and follow.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from essaim.api.request import Request
from essaim.api.responses import AnyResponse, StreamResponse
from essaim.api.router import Router
from essaim.engine.attach import frame
from essaim.engine.containers import ContainerService
from essaim.engine.log_files import LogFiles
from essaim.engine.logs import LogReader, format_timestamp
from essaim.errors import InvalidParameter, NotImplementedYet
from essaim.model.container import Container
from essaim.model.log_config import NONE, TagFields, attributes, details_prefix

MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW_STREAM = "application/vnd.docker.raw-stream"


def parse_tail(value: str | None) -> int | None:
    """dockerd's reading of `tail`: a count, or everything ("all", negative, unreadable)."""
    try:
        count = int(value or "all")
    except ValueError:
        return None
    return count if count >= 0 else None


def log_details(container: Container) -> bytes:
    """What `details=1` prefixes each line with for this container."""
    host, config = container.host_config, container.config
    tag = TagFields(
        container_id=container.id,
        container_name=container.name,
        image_id=container.image_id,
        image_name=config.image,
        command=" ".join([container.path, *container.args]),
    )
    return details_prefix(attributes(host.log_options, config.labels, config.env, tag))


class ContainerLogsAPI:
    def __init__(self, containers: ContainerService, logs: LogFiles) -> None:
        self.containers = containers
        self.logs = logs

    def register(self, router: Router) -> None:
        router.get("/containers/{id}/logs", self.get_logs)

    async def get_logs(self, req: Request) -> AnyResponse:
        q = req.query
        stdout, stderr = q.get_bool("stdout"), q.get_bool("stderr")
        if not (stdout or stderr):
            raise InvalidParameter("Bad parameters: you must choose at least one stream")
        container = self.containers.get(req.params["id"])
        if container.host_config.log_type == NONE:
            raise NotImplementedYet("configured logging driver does not support reading")
        tail = parse_tail(q.get("tail"))
        since = q.get_unix_nano("since") or 0
        until = q.get_unix_nano("until")
        timestamps = q.get_bool("timestamps")
        prefix = log_details(container) if q.get_bool("details") else b""
        tty = container.config.tty
        cid = container.id
        reader = LogReader(self.logs.get(cid))

        def running() -> bool:
            current = self.containers.index.find(cid)
            return current is not None and current.state.running

        async def produce() -> AsyncIterator[bytes]:
            stamped_at, stamp = -1, b""  # lines read together share their time
            async for batch in reader.entries(
                tail=tail, since_nano=since, until_nano=until,
                follow=q.get_bool("follow"), running=running,
            ):  # fmt: skip
                out: list[bytes] = []
                for entry in batch:
                    if not (stdout if entry.stream == "stdout" else stderr):
                        continue
                    data = prefix + entry.data if prefix else entry.data
                    if timestamps:
                        if entry.time_nano != stamped_at:
                            stamped_at = entry.time_nano
                            stamp = format_timestamp(stamped_at).encode() + b" "
                        data = stamp + data
                    out.append(data if tty else frame(1 if entry.stream == "stdout" else 2, data))
                if out:
                    yield b"".join(out)

        return StreamResponse(produce(), RAW_STREAM if tty else MULTIPLEXED)
