"""Image archive and store-wide endpoints: `docker save` (`GET /images/get`,
`GET /images/{name}/get`), `docker load` (`POST /images/load`), `docker image prune`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from essaim.api.filters import Filters
from essaim.api.images import filter_bool, filter_time
from essaim.api.request import Request
from essaim.api.responses import AnyResponse, StreamResponse, json_lines, json_response
from essaim.api.router import Router
from essaim.engine.containers import ContainerService
from essaim.errors import InvalidParameter
from essaim.image import save
from essaim.image.archive_load import load_archive
from essaim.image.distribution.progress import Message
from essaim.image.prune import PruneQuery
from essaim.image.service import ImageService

PRUNE_FILTERS = ("dangling", "label", "label!", "until")
TAR = "application/x-tar"


class ImageArchivesAPI:
    def __init__(self, images: ImageService, containers: ContainerService) -> None:
        self.images = images
        self.containers = containers

    def register(self, router: Router) -> None:
        router.get("/images/get", self.save_many)
        router.get("/images/{name:path}/get", self.save_one)
        router.post("/images/load", self.load)
        router.post("/images/prune", self.prune)

    async def save_many(self, req: Request) -> AnyResponse:
        return await self._save(req.query.get_all("names"))

    async def save_one(self, req: Request) -> AnyResponse:
        return await self._save([req.params["name"]])

    async def _save(self, names: list[str]) -> AnyResponse:
        # Everything that can fail does so before the first byte: a plain HTTP error.
        items = await save.select_images(self.images, names)
        stored = {
            item.image.id: await self.images.run_blocking(
                save.describe, self.images.content, item.image
            )
            for item in items
        }
        files = save.plan_archive(items, stored)
        opened = await self.images.run_blocking(save.open_blobs, self.images.content, files)
        for item in items:
            self.images.announce("save", item.image)
        return StreamResponse(save.stream_archive(self.images, files, opened), content_type=TAR)

    async def load(self, req: Request) -> AnyResponse:
        # The whole archive is read and checked before the reply starts, so a bad one
        # is a plain 400 and leaves nothing behind; the `Loading layer` progress is
        # gathered meanwhile and goes first. moby's `quiet` defaults to true (the CLI
        # asks for progress only on a terminal).
        progress: list[Message] = []
        quiet = req.query.get_bool("quiet", True)
        # list.append is safe from the executor thread that unpacks the layers.
        lines = await load_archive(self.images, req.stream(), None if quiet else progress.append)
        return StreamResponse(json_lines(_load_messages(progress, lines)))

    async def prune(self, req: Request) -> AnyResponse:
        filters = Filters.parse(req.query.get("filters"))
        filters.validate(PRUNE_FILTERS)
        dangling = filter_bool(filters, "dangling")
        until = filters.values("until")
        if len(until) > 1:
            raise InvalidParameter("more than one until filter specified")
        until_nano = None
        if until:
            try:
                until_nano = filter_time(until[0], time.time_ns())
            except InvalidParameter as exc:
                raise InvalidParameter(f"invalid value for 'until' filter: {exc}") from None
        query = PruneQuery(
            dangling_only=dangling is not False,
            until_nano=until_nano,
            labels=filters.values("label"),
            not_labels=filters.values("label!"),
        )
        report, reclaimed = await self.images.prune(query, self.containers.uses_image)
        return json_response({"ImagesDeleted": report or None, "SpaceReclaimed": reclaimed})


async def _load_messages(progress: list[Message], lines: list[str]) -> AsyncIterator[Message]:
    for message in progress:
        yield message
    for line in lines:
        yield {"stream": line + "\n"}
