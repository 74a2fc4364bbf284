"""Image endpoints: list, inspect, history, tag, remove, and `POST /images/create`
(import from the request body; pulling from a registry comes with the distribution
client).
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import AsyncIterator
from typing import Any

from essaim.api.filters import Filters
from essaim.api.request import Request
from essaim.api.responses import AnyResponse, StreamResponse, empty, json_response
from essaim.api.router import Router
from essaim.engine.containers import ContainerService
from essaim.errors import InvalidParameter, NotFound, NotImplementedYet
from essaim.image import oci, reference
from essaim.image.service import ImageService
from essaim.model.image import Image, rfc3339_to_unix

LIST_FILTERS = ("dangling", "label", "before", "since", "reference", "until")
GRAPH_DRIVER = "overlay2"


def list_wire(image: Image, version: tuple[int, int]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "Id": image.id,
        "ParentId": image.parent,
        "RepoTags": [reference.familiar(t) for t in image.repo_tags],
        "RepoDigests": [reference.familiar(d) for d in image.repo_digests],
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
    run = oci.encode_run_config(image.config)
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
        "Comment": image.comment,
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
        out["Container"] = ""
        out["ContainerConfig"] = _run_config(image)
    return out


def _reference_match(image: Image, patterns: list[str]) -> bool:
    """Docker's `reference` filter: a shell pattern against the familiar `name` or
    `name:tag` of any of the image's names."""
    if not patterns:
        return True
    for stored in [*image.repo_tags, *image.repo_digests]:
        ref = reference.parse(stored)
        name = ref.familiar_name()
        candidates = [name, ref.familiar()]
        for pattern in patterns:
            if any(fnmatch.fnmatchcase(c, pattern) for c in candidates):
                return True
    return False


class ImagesAPI:
    def __init__(self, images: ImageService, containers: ContainerService) -> None:
        self.images = images
        self.containers = containers

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
        show_all = req.query.get_bool("all")
        images = await self.images.list(heads_only=not show_all)
        before = [await self.images.get(ref) for ref in filters.values("before")]
        since = [await self.images.get(ref) for ref in filters.values("since")]
        dangling = filters.values("dangling")
        for value in dangling:
            if value not in ("true", "false", "1", "0"):
                raise InvalidParameter(f"Invalid filter 'dangling={value}'")
        # A name given as a plain argument (`docker images busybox`) also filters.
        patterns = filters.values("reference")
        out = []
        for image in images:
            is_dangling = not image.repo_tags and not image.repo_digests
            if dangling and is_dangling != (dangling[-1] in ("true", "1")):
                continue
            if not filters.match_labels(image.config.labels):
                continue
            if any(image.created >= b.created for b in before):
                continue
            if any(image.created <= s.created for s in since):
                continue
            if not _reference_match(image, patterns):
                continue
            out.append(list_wire(image, req.version))
        return json_response(out)

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
                    "Created": rfc3339_to_unix(row.created),
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
        return await self._pull(from_image, req.query.get("tag") or None)

    async def _import(self, req: Request, source: str) -> AnyResponse:
        if source != "-":
            # Fetching a URL would reach outside this host; only uploads are taken.
            raise NotImplementedYet("importing from a URL is not supported: upload the archive")
        repo = req.query.get("repo") or None
        tag = req.query.get("tag") or None
        if repo is not None:
            reference.repo_tag_reference(repo, tag)  # a bad name fails before the upload
        changes = req.query.get_all("changes")
        message = req.query.get("message") or ""
        # The whole body is taken before any reply, so a bad archive is a plain error.
        image = await self.images.import_tar(
            req.stream(), repo=repo, tag=tag, changes=changes, message=message
        )
        return StreamResponse(_one_message({"status": image.id}))

    async def _pull(self, name: str, tag: str | None) -> AnyResponse:
        ref = reference.parse(name)
        if tag and tag.startswith("sha256:"):
            wanted = f"{ref.familiar_name()}@{tag}"
        else:
            wanted = ref.with_tag(tag).familiar() if tag else ref.with_default_tag().familiar()
        try:
            await self.images.get(wanted)
        except NotFound:
            # No registry client yet, so no repository is reachable: Docker's words for it.
            raise NotFound(
                f"pull access denied for {ref.familiar_name()}, repository does not exist or "
                "may require 'docker login'"
            ) from None
        raise NotImplementedYet(
            f"pulling from a registry is not supported by this engine yet; {wanted} is "
            "available locally"
        )


async def _one_message(message: dict[str, Any]) -> AsyncIterator[bytes]:
    yield json.dumps(message, separators=(",", ":")).encode() + b"\r\n"
