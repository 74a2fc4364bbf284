"""Container filesystem endpoints: the archive API of `docker cp` (HEAD, GET, PUT with
the `X-Docker-Container-Path-Stat` header), `docker export` and `docker diff`.
"""

from __future__ import annotations

import base64
import json

from essaim.api.request import Request
from essaim.api.responses import AnyResponse, Response, StreamResponse, empty, json_response
from essaim.api.router import Router
from essaim.engine.archive import PathStat
from essaim.engine.container_filesystem import ContainerFilesystem
from essaim.errors import InvalidParameter

TAR = "application/x-tar"
STAT_HEADER = "X-Docker-Container-Path-Stat"


def stat_header(stat: PathStat) -> tuple[str, str]:
    """The stat as the CLI decodes it: base64 (standard alphabet) of moby's JSON."""
    body = {
        "name": stat.name,
        "size": stat.size,
        "mode": stat.mode,
        "mtime": stat.mtime,
        "linkTarget": stat.link_target,
    }
    encoded = base64.b64encode(json.dumps(body, separators=(",", ":")).encode()).decode()
    return STAT_HEADER, encoded


def _path(req: Request) -> str:
    path = req.query.get("path") or ""
    if not path:
        raise InvalidParameter("Path cannot be empty")
    return path


class ContainerFilesAPI:
    def __init__(self, files: ContainerFilesystem) -> None:
        self.files = files

    def register(self, router: Router) -> None:
        router.get("/containers/{id}/archive", self.archive)  # HEAD too: the stat alone
        router.put("/containers/{id}/archive", self.extract)
        router.get("/containers/{id}/export", self.export)
        router.get("/containers/{id}/changes", self.changes)

    async def archive(self, req: Request) -> AnyResponse:
        ref, path = req.params["id"], _path(req)
        if req.method == "HEAD":
            stat = await self.files.stat(ref, path)
            return Response(200, b"", None, [stat_header(stat)])
        stat, stream = await self.files.archive(ref, path)
        return StreamResponse(stream, TAR, headers=[stat_header(stat)])

    async def extract(self, req: Request) -> AnyResponse:
        q = req.query
        await self.files.extract(
            req.params["id"],
            _path(req),
            req.stream(),
            no_overwrite_dir_non_dir=q.get_bool("noOverwriteDirNonDir"),
            copy_uid_gid=q.get_bool("copyUIDGID"),
        )
        return empty(200)

    async def export(self, req: Request) -> AnyResponse:
        return StreamResponse(await self.files.export(req.params["id"]), TAR)

    async def changes(self, req: Request) -> AnyResponse:
        changes = await self.files.changes(req.params["id"])
        # moby answers `null` for no change (its nil slice), and clients expect it.
        return json_response([{"Path": c.path, "Kind": c.kind} for c in changes] or None)
