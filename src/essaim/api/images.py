"""Image endpoints: list, inspect, history, tag, remove, and `POST /images/create`
(import from the request body, or a pull handed to the distribution API).
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from essaim.api.filters import Filters
from essaim.api.request import Request
from essaim.api.responses import AnyResponse, StreamResponse, empty, json_response
from essaim.api.router import Router
from essaim.engine.containers import ContainerService
from essaim.errors import InvalidParameter, NotImplementedYet
from essaim.image import oci, reference
from essaim.image.service import ImageListing, ImageService, ListQuery
from essaim.model.image import Image, ImageConfig
from essaim.model.rfc3339 import unix_time

LIST_FILTERS = ("dangling", "label", "before", "since", "reference", "until")
GRAPH_DRIVER = "overlay2"
_GO_DURATION = re.compile(r"[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_UNIX_TIME = re.compile(r"(\d+)(?:\.(\d{1,9}))?")


def list_wire(listing: ImageListing, version: tuple[int, int]) -> dict[str, Any]:
    image = listing.image
    tags = [reference.familiar(t) for t in listing.repo_tags]
    digests = [reference.familiar(d) for d in listing.repo_digests]
    if version < (1, 43) and not tags and not digests:
        # moby's placeholders for an unnamed image, dropped from API 1.43 on.
        tags, digests = ["<none>:<none>"], ["<none>@<none>"]
    out: dict[str, Any] = {
        "Id": image.id,
        "ParentId": image.parent,
        "RepoTags": tags,
        "RepoDigests": digests,
        "Created": image.created_unix,
        "Size": image.size,
        "SharedSize": -1,
        "Labels": dict(image.config.labels) or None,
        "Containers": -1,
    }
    if version < (1, 44):
        out["VirtualSize"] = image.size
    return out


def _run_config(image: Image) -> dict[str, Any]:
    """The image's `Config` as Docker's inspect shows it: the container-config shape,
    with the image's run settings filled in."""
    return _config_wire(image.config)


def _config_wire(config: ImageConfig) -> dict[str, Any]:
    run = oci.encode_run_config(config)
    return {
        "Hostname": "",
        "Domainname": "",
        "User": run.get("User", ""),
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
        "ExposedPorts": run.get("ExposedPorts"),
        "Tty": False,
        "OpenStdin": False,
        "StdinOnce": False,
        "Env": run.get("Env"),
        "Cmd": run.get("Cmd"),
        "Healthcheck": run.get("Healthcheck"),
        "ArgsEscaped": run.get("ArgsEscaped"),
        "Image": "",
        "Volumes": run.get("Volumes"),
        "WorkingDir": run.get("WorkingDir", ""),
        "Entrypoint": run.get("Entrypoint"),
        "OnBuild": run.get("OnBuild"),
        "Labels": run.get("Labels"),
        "StopSignal": run.get("StopSignal"),
        "Shell": run.get("Shell"),
    }


def inspect_wire(image: Image, graph: dict[str, str], version: tuple[int, int]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "Id": image.id,
        "RepoTags": [reference.familiar(t) for t in image.repo_tags],
        "RepoDigests": [reference.familiar(d) for d in image.repo_digests],
        "Parent": image.parent,
        # As moby: a config without its own comment shows its last history entry's.
        "Comment": image.comment or (image.history[-1].comment if image.history else ""),
        "Created": image.created,
        "DockerVersion": image.docker_version,
        "Author": image.author,
        "Config": _run_config(image),
        "Architecture": image.architecture,
        "Os": image.os,
        "Size": image.size,
        "GraphDriver": {"Name": GRAPH_DRIVER, "Data": graph},
        "RootFS": {"Type": "layers", "Layers": list(image.diff_ids)},
        "Metadata": {"LastTagTime": image.last_tag_time or "0001-01-01T00:00:00Z"},
    }
    if image.variant:
        out["Variant"] = image.variant
    if version < (1, 44):
        out["VirtualSize"] = image.size
    if version < (1, 45):  # both dropped from API 1.45 on
        out["Container"] = image.container
        committed = image.container_config
        out["ContainerConfig"] = (
            _config_wire(committed) if committed is not None else _run_config(image)
        )
    return out


def filter_bool(filters: Filters, key: str) -> bool | None:
    """moby's GetBoolOrDefault: None when absent; "true"/"1" or "false"/"0", and
    anything else (or both at once) is an invalid filter."""
    if key not in filters:
        return None
    values = filters.values(key)
    is_true = any(v in ("true", "1") for v in values)
    is_false = any(v in ("false", "0") for v in values)
    if is_true == is_false:
        shown = f"={','.join(sorted(values))}" if values else ""
        raise InvalidParameter(f"invalid filter '{key}{shown}'")
    return is_true


def _go_duration(text: str) -> int:
    """A Go duration ("90m", "1h30m", "-2s") in nanoseconds; the caller has matched it."""
    sign = -1 if text.startswith("-") else 1
    total = sum(
        float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        for m in _DURATION_PART.finditer(text.lstrip("+-"))
    )
    return sign * int(total)


def filter_time(value: str, now_nano: int) -> int:
    """moby's GetTimestamp for `until` filters: a Go duration back from now, a date or
    RFC 3339 time (local time when no zone is given), or Unix seconds; in ns."""
    if value != "0" and _GO_DURATION.fullmatch(value):
        return now_nano - _go_duration(value)
    unix = _UNIX_TIME.fullmatch(value)
    if unix is not None:
        return int(unix.group(1)) * 1_000_000_000 + int((unix.group(2) or "").ljust(9, "0"))
    text, fraction = value, 0
    fraction_match = re.search(r"\.(\d{1,9})\d*", value)
    if fraction_match is not None:
        fraction = int(fraction_match.group(1).ljust(9, "0"))
        text = value[: fraction_match.start()] + value[fraction_match.end() :]
    try:
        moment = _dt.datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise InvalidParameter(
            f"failed to parse value as time or duration: {json.dumps(value)}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # the daemon's local zone, as Go's ParseInLocation
    return int(moment.timestamp()) * 1_000_000_000 + fraction


# `POST /images/create?fromImage=`: the request and the image named.
Pull = Callable[[Request, str], Awaitable[AnyResponse]]


class ImagesAPI:
    def __init__(self, images: ImageService, containers: ContainerService, pull: Pull) -> None:
        self.images = images
        self.containers = containers
        self.pull = pull

    def register(self, router: Router) -> None:
        r = router
        r.get("/images/json", self.list)
        r.post("/images/create", self.create)
        r.get("/images/{name:path}/json", self.inspect)
        r.get("/images/{name:path}/history", self.history)
        r.post("/images/{name:path}/tag", self.tag)
        r.delete("/images/{name:path}", self.remove)

    async def list(self, req: Request) -> AnyResponse:
        filters = Filters.parse(req.query.get("filters"))
        filters.validate(LIST_FILTERS)
        dangling = filter_bool(filters, "dangling")
        now = time.time_ns()
        until = [filter_time(value, now) for value in filters.values("until")]
        query = ListQuery(
            show_all=req.query.get_bool("all"),
            dangling=dangling,
            references=filters.values("reference"),
            labels=filters.values("label"),
            before=filters.values("before"),
            since=filters.values("since"),
            until_nano=min(until, default=None),
        )
        listings = await self.images.list_filtered(query)
        return json_response([list_wire(listing, req.version) for listing in listings])

    async def inspect(self, req: Request) -> AnyResponse:
        image = await self.images.get(req.params["name"])
        lower = self.images.lower_dirs(image)
        graph = {"LowerDir": ":".join(str(p) for p in lower[1:])} if len(lower) > 1 else {}
        if lower:
            graph["UpperDir"] = str(lower[0])
        return json_response(inspect_wire(image, graph, req.version))

    async def history(self, req: Request) -> AnyResponse:
        rows = await self.images.history(req.params["name"])
        return json_response(
            [
                {
                    "Id": row.id,
                    "Created": unix_time(row.created),
                    "CreatedBy": row.created_by,
                    "Tags": row.tags or None,
                    "Size": row.size,
                    "Comment": row.comment,
                }
                for row in rows
            ]
        )

    async def tag(self, req: Request) -> AnyResponse:
        repo = req.query.get("repo") or ""
        if not repo:
            raise InvalidParameter("repository name must have at least one component")
        await self.images.tag(req.params["name"], repo, req.query.get("tag") or None)
        return empty(201)

    async def remove(self, req: Request) -> AnyResponse:
        records = await self.images.remove(
            req.params["name"],
            force=req.query.get_bool("force"),
            prune=not req.query.get_bool("noprune"),
            in_use_by=self.containers.uses_image,
        )
        return json_response(records)

    async def create(self, req: Request) -> AnyResponse:
        source = req.query.get("fromSrc")
        from_image = req.query.get("fromImage")
        if source is None and from_image is None:
            raise InvalidParameter("fromImage or fromSrc must be set")
        if source is not None:
            return await self._import(req, source)
        assert from_image is not None
        return await self.pull(req, from_image)

    async def _import(self, req: Request, source: str) -> AnyResponse:
        if source != "-":
            # Fetching a URL would reach outside this host; only uploads are taken.
            raise NotImplementedYet("importing from a URL is not supported: upload the archive")
        repo = req.query.get("repo") or None
        tag = req.query.get("tag") or None
        if repo is not None:
            # A bad name fails before the upload is read.
            if reference.parse(repo).digest is not None:
                raise InvalidParameter("cannot import digest reference")
            reference.repo_tag_reference(repo, tag)
        changes = req.query.get_all("changes")
        message = req.query.get("message") or ""
        # The whole body is taken before any reply, so a bad archive is a plain error.
        image = await self.images.import_tar(
            req.stream(), repo=repo, tag=tag, changes=changes, message=message
        )
        return StreamResponse(_one_message({"status": image.id}))


async def _one_message(message: dict[str, Any]) -> AsyncIterator[bytes]:
    yield json.dumps(message, separators=(",", ":")).encode() + b"\r\n"
