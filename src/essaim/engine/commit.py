"""`docker commit`: a container's read-write layer and configuration become a new image
on top of its own, with the container frozen meanwhile when asked, as dockerd does it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from essaim import __version__
from essaim.engine.commit_config import commit_config, container_run_config, created_by
from essaim.engine.container_events import ContainerEvents
from essaim.engine.index import ContainerIndex
from essaim.engine.layer_tar import write_layer_file
from essaim.engine.pause import Pauser
from essaim.engine.storage import ContainerStorage
from essaim.errors import Conflict, EssaimError, NotFound
from essaim.image import ingest
from essaim.image.reference import Reference
from essaim.image.service import ImageService
from essaim.model.container import DEAD, REMOVING, RUNNING, Container
from essaim.model.image import HistoryEntry, Image, ImageConfig
from essaim.model.rfc3339 import now_rfc3339


@dataclass(frozen=True)
class CommitOptions:
    """What the client asked: the name to tag (None: untagged), the history's author and
    comment, `--change` lines, a config to start from (None: the container's), and
    whether to freeze a running container while its layer is read."""

    reference: Reference | None = None
    author: str = ""
    comment: str = ""
    changes: list[str] = field(default_factory=list)
    config: ImageConfig | None = None
    pause: bool = True


def _refuse_commit(container: Container) -> None:
    if container.state.status == DEAD:
        raise Conflict(f"You cannot commit container {container.id} which is Dead")
    if container.state.status == REMOVING:
        raise Conflict(f"You cannot commit container {container.id} which is being removed")


class Committer:
    def __init__(
        self,
        *,
        index: ContainerIndex,
        storage: ContainerStorage,
        images: ImageService,
        pauser: Pauser,
        events: ContainerEvents,
    ) -> None:
        self.index = index
        self.storage = storage
        self.images = images
        self.pauser = pauser
        self.events = events

    async def commit(self, ref: str, options: CommitOptions) -> Image:
        """The new image. A running container is paused for the while (and resumed
        after, even on failure) unless `options.pause` is off or it is paused already."""
        container = self.index.get(ref)
        _refuse_commit(container)
        paused_here = False
        if options.pause and container.state.status == RUNNING:
            # As dockerd: a container that cannot be paused (it just exited, say) is
            # committed all the same.
            with contextlib.suppress(EssaimError):
                await self.pauser.pause(container.id)
                paused_here = True
        try:
            image = await self._commit(ref, container.id, options)
            tagged = options.reference
            self.events.publish(
                container, "commit", comment=options.comment, imageID=image.id,
                imageRef=tagged.familiar() if tagged is not None else "",
            )  # fmt: skip
            return image
        finally:
            if paused_here:
                with contextlib.suppress(EssaimError):
                    await self.pauser.unpause(container.id)

    async def _commit(self, ref: str, cid: str, options: CommitOptions) -> Image:
        images = self.images
        temp = await images.run_blocking(images.content.temp_file, ".commit")
        try:
            # Locked while the layer is read: no start, restart or removal meanwhile.
            async with self.index.lock(cid):
                container = self.index.find(cid)
                if container is None:
                    raise NotFound(f"No such container: {ref}")
                _refuse_commit(container)
                base = await images.get(container.image_id)
                own = container_run_config(container.config, base.config)
                config = commit_config(own, options.config, options.changes)
                chain_ids, _ = await self.storage.hold_layers(container)
                lowers = images.snapshots.lower_dirs(chain_ids)
                upper = self.storage.root / cid / "upper"
                entries = await images.run_blocking(write_layer_file, upper, lowers, temp)
            created = now_rfc3339()
            entry = HistoryEntry(
                created=created,
                created_by=created_by(container.config),
                author=options.author,
                comment=options.comment,
                empty_layer=entries == 0,
            )
            tags = [options.reference.normalized()] if options.reference is not None else []
            return await images.add_image(
                [temp] if entries else [],
                config,
                created=created,
                history=[*base.history, entry],
                base=base,
                parent=base.id,
                author=options.author,
                tags=tags,
                docker_version=__version__,
                container=cid,
                container_config=own,
            )
        finally:
            await images.run_blocking(ingest.unlink_quietly, temp)
