"""`POST /commit`: query parameters and the optional JSON config in, the new image's id
out (`201 {"Id": ...}`), with dockerd's checks in dockerd's order.
"""

from __future__ import annotations

from typing import Any

from essaim.api.health_wire import parse_healthcheck
from essaim.api.request import Request
from essaim.api.responses import AnyResponse, json_response
from essaim.api.router import Router
from essaim.api.wire_fields import string, string_map, strings
from essaim.engine.commit import CommitOptions, Committer
from essaim.engine.containers import ContainerService
from essaim.engine.pause import Pauser
from essaim.errors import InvalidParameter
from essaim.image import reference
from essaim.image.reference import Reference
from essaim.model.image import ImageConfig

# The fields of a container `Config`: the body is one (Go decodes it into a wrapper that
# embeds it, so any of these names, in any case, makes a config; none, no config).
_CONFIG_FIELDS = {
    name.lower(): name
    for name in (
        "Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
        "ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck",
        "ArgsEscaped", "Image", "Volumes", "WorkingDir", "Entrypoint", "NetworkDisabled",
        "MacAddress", "OnBuild", "Labels", "StopSignal", "StopTimeout", "Shell",
    )
}  # fmt: skip


def _optional_strings(value: Any, field: str) -> list[str] | None:
    """A Go string slice: null stays nil, which differs from [] for the merge."""
    return None if value is None else strings(value, field)


def _keys(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, dict):
        raise InvalidParameter(f"json: cannot unmarshal {field}: expected an object")
    return [str(key) for key in value]


def parse_commit_config(body: Any) -> ImageConfig | None:
    """The request body's config, in image terms; None when it names no config field."""
    if body is None:
        return None
    if not isinstance(body, dict):
        raise InvalidParameter(
            "json: cannot unmarshal into Go value of type container.ContainerConfigWrapper"
        )
    fields = {_CONFIG_FIELDS[k.lower()]: v for k, v in body.items() if k.lower() in _CONFIG_FIELDS}
    if not fields:
        return None
    return ImageConfig(
        user=string(fields.get("User"), "User"),
        env=strings(fields.get("Env"), "Env"),
        cmd=_optional_strings(fields.get("Cmd"), "Cmd"),
        entrypoint=_optional_strings(fields.get("Entrypoint"), "Entrypoint"),
        working_dir=string(fields.get("WorkingDir"), "WorkingDir"),
        labels=string_map(fields.get("Labels"), "Labels"),
        stop_signal=string(fields.get("StopSignal"), "StopSignal"),
        exposed_ports=_keys(fields.get("ExposedPorts"), "ExposedPorts"),
        volumes=_keys(fields.get("Volumes"), "Volumes"),
        shell=_optional_strings(fields.get("Shell"), "Shell"),
        on_build=strings(fields.get("OnBuild"), "OnBuild"),
        healthcheck=parse_healthcheck(fields.get("Healthcheck")),
        args_escaped=fields.get("ArgsEscaped") is True,
    )


def commit_reference(repo: str, tag: str) -> Reference | None:
    """moby's RepoTagReference: no repo, no name (a tag alone is ignored); the tag
    defaults to `latest`; digests refused."""
    if not repo:
        return None
    if reference.parse(repo).digest is not None:
        raise InvalidParameter("cannot import digest reference")
    return reference.repo_tag_reference(repo, tag or None)


def _check_json(req: Request, body: bytes) -> None:
    """moby's CheckForJSON: a body must come as application/json. An empty one passes
    whatever it is labelled (Go clients label bodiless POSTs text/plain)."""
    content_type = req.headers.get("content-type", "")
    if not body.strip():
        return
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        raise InvalidParameter(
            f"unsupported Content-Type header ({content_type}): must be 'application/json'"
        )


class CommitAPI:
    def __init__(self, containers: ContainerService) -> None:
        index, events = containers.index, containers.events
        self.committer = Committer(
            index=index, storage=containers.storage, images=containers.images, events=events,
            pauser=Pauser(index=index, events=events, runtimes=containers.runtimes),
        )  # fmt: skip

    def register(self, router: Router) -> None:
        router.post("/commit", self.commit)

    async def commit(self, req: Request) -> AnyResponse:
        query = req.query
        _check_json(req, await req.body())
        config = parse_commit_config(await req.json())
        options = CommitOptions(
            reference=commit_reference(query.get("repo") or "", query.get("tag") or ""),
            author=query.get("author") or "",
            comment=query.get("comment") or "",
            changes=query.get_all("changes"),
            config=config,
            pause=query.get_bool("pause", default=True),
        )
        image = await self.committer.commit(query.get("container") or "", options)
        return json_response({"Id": image.id}, 201)
