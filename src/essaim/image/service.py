"""The image service: the one façade the engine and the API use for local images
(lookup, tag, remove, import, create from layer tars, and container root filesystems).

The store holds the truth (kinds "images" and "tags"); an in-memory index mirrors it for
fast lookups. Blocking work runs in the executor; changes are serialised by one lock.
Each job is its own module (records, listing, history, removal, ingest, layers); this
one resolves references, takes the lock and runs the steps in order.
"""

from __future__ import annotations

import asyncio
import builtins
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import ParamSpec, TypeVar

from essaim.errors import Conflict, InvalidParameter, NotFound
from essaim.image import ingest, oci, reference, removal
from essaim.image import prune as pruning
from essaim.image.changes import apply_changes
from essaim.image.content import ContentStore
from essaim.image.history import HistoryRow, history_rows
from essaim.image.index import ImageIndex
from essaim.image.layers import Layers
from essaim.image.listing import ImageListing, ListQuery, list_images, newest_first
from essaim.image.prune import PruneQuery
from essaim.image.records import IMAGES, TAGS, ImageRecords
from essaim.image.reference import Reference
from essaim.image.removal import ContainerUsers, ImageFacts, short_id
from essaim.image.snapshot import Snapshotter, unmount_overlay
from essaim.model.image import HistoryEntry, Image, ImageConfig
from essaim.model.rfc3339 import now_rfc3339, rfc3339_nano
from essaim.store.base import Store
from essaim.store.events import EventBus

# Names callers import from here, wherever they now live.
__all__ = [
    "IMAGES",
    "TAGS",
    "ContainerUsers",
    "HistoryRow",
    "ImageListing",
    "ImageService",
    "ListQuery",
    "now_rfc3339",
    "rfc3339_nano",
    "short_id",
]

P = ParamSpec("P")
R = TypeVar("R")


class ImageService:
    def __init__(self, data_root: Path, store: Store, events: EventBus, executor: Executor) -> None:
        self.data_root = data_root
        self._executor = executor
        self.content = ContentStore(data_root / "content")
        self.snapshots = Snapshotter(data_root / "snapshots")
        self._index = ImageIndex()
        self._events = events
        self._records = ImageRecords(store, self._index, events)
        self._layers = Layers(self._index, self.content, self.snapshots)
        self._loaded = False
        self._load_lock = asyncio.Lock()
        self._lock = asyncio.Lock()  # every change: store commit + index update

    async def run_blocking(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run blocking `fn` in the image executor."""
        loop = asyncio.get_running_loop()
        if kwargs:
            return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))
        return await loop.run_in_executor(self._executor, fn, *args)

    # -- start-up

    async def load(self) -> None:
        """Read the index from the store and drop what interrupted writes left behind.
        Called at daemon start; every other method calls it too if it was not."""
        if self._loaded:
            return
        async with self._load_lock:
            if self._loaded:
                return
            images, refs = await self._records.read()
            await self.run_blocking(self.content.clean_ingest)
            await self.run_blocking(self.snapshots.clean)
            self._index.load(images, refs)
            self._loaded = True

    # -- lookups

    async def get(self, ref: str) -> Image:
        """By name[:tag] (familiar or normalised), name@digest, full id with or without
        `sha256:`, or a unique id prefix. NotFound says `No such image: <ref>` the way
        Docker spells it (familiar, with the implicit :latest)."""
        if not self._loaded:
            await self.load()
        return self._resolve(ref)

    def get_cached(self, ref: str) -> Image | None:
        """`get` without awaiting, for callers on a hot path after start-up; None if not
        found or not loaded yet."""
        if not self._loaded:
            return None
        try:
            return self._resolve(ref)
        except (NotFound, InvalidParameter):
            return None

    def _resolve(self, ref: str) -> Image:
        if reference.is_image_id(ref):
            image_id = ref if ref.startswith("sha256:") else "sha256:" + ref
            found = self._index.get(image_id)
            if found is None:
                raise NotFound(f"No such image: {image_id}")
            return found
        parsed = reference.parse(ref)
        named = parsed.with_default_tag()
        target = self._index.ref_target(named.normalized())
        if target is not None:
            found = self._index.get(target)
            if found is not None:
                return found
        found = self._index.search_id(ref)
        if found is not None:
            return found
        raise NotFound(f"No such image: {named.familiar()}")

    async def list(self) -> builtins.list[Image]:
        """Every image, newest first."""
        await self.load()
        return sorted(self._index.all(), key=newest_first)

    async def list_filtered(self, query: ListQuery) -> builtins.list[ImageListing]:
        """`docker images` with its filters (see `listing.list_images`), newest first."""
        await self.load()
        before = [await self.get(ref) for ref in query.before]
        since = [await self.get(ref) for ref in query.since]
        return list_images(
            self._index.all(),
            self._index.references_by_image(),
            query,
            before=before,
            since=since,
        )

    async def children(self, image_id: str) -> builtins.list[str]:
        await self.load()
        return self._index.children(image_id)

    async def history(self, ref: str) -> builtins.list[HistoryRow]:
        """`docker history`: the image's history, newest first, with layer sizes, and the
        ids and tags of the image and its local ancestors filled in from the top."""
        image = await self.get(ref)
        return history_rows(image, self._index.get)

    def lower_dirs(self, image: Image) -> builtins.list[Path]:
        """The image's snapshot directories, top layer first (for GraphDriver data)."""
        return self.snapshots.lower_dirs(self._index.chain_ids(image))

    def rootfs_layers(self, image: Image) -> tuple[builtins.list[str], builtins.list[str]]:
        """What a container of `image` stacks: the layers' chain ids, bottom first, and
        the blob of each (to unpack a lost snapshot again)."""
        return list(self._index.chain_ids(image)), list(image.layer_digests)

    # -- tags

    async def tag(self, source_ref: str, repo: str, tag: str | None) -> Reference:
        """`docker tag`: name the image `source_ref` resolves to as repo[:tag]; returns
        the new (normalised) reference. A name moved from another image leaves it."""
        target = reference.repo_tag_reference(repo, tag)
        image = await self.get(source_ref)
        async with self._lock:
            # The image may have gone while we waited for the lock.
            if image.id not in self._index:
                raise NotFound(f"No such image: {source_ref}")
            await self._records.set_refs(image.id, [target])
        return target

    async def add_references(self, image_id: str, refs: Sequence[Reference]) -> None:
        """Point `refs` (tags or repo@digest) at the image `image_id`; NotFound if it
        went meanwhile. Push uses it to record where an image now is."""
        await self.load()
        async with self._lock:
            if image_id not in self._index:
                raise NotFound(f"No such image: {image_id}")
            await self._records.set_refs(image_id, refs)

    # -- removal

    async def remove(
        self, ref: str, *, force: bool, prune: bool, in_use_by: ContainerUsers
    ) -> builtins.list[dict[str, str]]:
        """`docker rmi`: untag `ref`, and delete the image once nothing names it, with
        Docker's conflicts. Returns [{"Untagged": name}, ..., {"Deleted": id}, ...]."""
        await self.load()
        async with self._lock:
            return await self._remove_locked(ref, force, prune, in_use_by)

    async def _remove_locked(
        self, ref: str, force: bool, prune: bool, in_use_by: ContainerUsers
    ) -> builtins.list[dict[str, str]]:
        image_id = self._resolve(ref).id
        plan = removal.plan_removal(ref, self._facts(image_id, in_use_by), force=force)
        report: builtins.list[dict[str, str]] = []
        for untag in plan.untags:
            await self._records.drop_refs(image_id, untag.references)
            for r in untag.references:
                report.append({"Untagged": r.familiar()})
                if untag.announced:
                    self._records.publish("untag", image_id, image_id)
        if plan.delete:
            await self._delete(image_id, report, force, prune, plan.quiet, in_use_by)
        return report

    def _facts(self, image_id: str, in_use_by: ContainerUsers) -> ImageFacts:
        return ImageFacts(
            image_id,
            references=tuple(self._index.references(image_id)),
            has_children=bool(self._index.children(image_id)),
            users=tuple(in_use_by(image_id)),
        )

    async def _delete(
        self,
        image_id: str,
        report: builtins.list[dict[str, str]],
        force: bool,
        prune: bool,
        quiet: bool,
        in_use_by: ContainerUsers,
    ) -> None:
        facts = self._facts(image_id, in_use_by)
        if not removal.may_delete(facts, force=force, quiet=quiet):
            return  # the untag alone was asked for; a used image stays
        image = self._index.get(image_id)
        if image is None:
            return
        chains = self._index.chain_ids(image)
        untagged = await self._records.delete(image_id)
        report.extend({"Untagged": r.familiar()} for r in untagged)
        report.append({"Deleted": image_id})
        doomed_chains, doomed_blobs = self._layers.left_by(image, chains)
        removed = await self.run_blocking(self._layers.remove, doomed_chains, doomed_blobs)
        report.extend({"Deleted": chain} for chain in reversed(removed))
        if prune and image.parent and image.parent in self._index:
            await self._delete(image.parent, report, False, True, True, in_use_by)

    async def prune(
        self, query: PruneQuery, in_use_by: ContainerUsers
    ) -> tuple[builtins.list[dict[str, str]], int]:
        """`docker image prune`: remove what `query` selects (see `pruning.removal_names`)
        the way `rmi` would, skipping conflicts; the removal report and the bytes of
        layers freed. Publishes moby's `prune` event."""
        await self.load()
        every = self._index.all()
        sizes = pruning.layer_sizes(every)
        names = pruning.removal_names(
            every, self._index.references_by_image(),
            lambda image_id: bool(self._index.children(image_id)), query,
        )  # fmt: skip
        report: builtins.list[dict[str, str]] = []
        for image_names in names:
            for name in image_names:
                try:
                    report += await self.remove(name, force=False, prune=True, in_use_by=in_use_by)
                except (Conflict, NotFound):
                    continue  # used by a container, or gone with an earlier name
        reclaimed = sum(sizes.get(item.get("Deleted", ""), 0) for item in report)
        self._events.publish("image", "prune", "", {"reclaimed": str(reclaimed)})
        return report, reclaimed

    async def discard_blobs(self, digests: Sequence[str]) -> None:
        """Delete these blobs unless an image or a container uses them: what a failed
        load leaves in the store."""
        async with self._lock:
            unused = [d for d in digests if not self._layers.layer_blob_used(d)]
            await self.run_blocking(self._layers.remove, [], unused)

    def announce(self, action: str, image: Image) -> None:
        """Publish an image event (`save` ...) named by the image's id, as moby does."""
        self._records.publish(action, image.id, image.id)

    async def receive_upload(self, chunks: AsyncIterator[bytes]) -> Path:
        """A request body, streamed to a fresh file of the ingest area; the caller
        removes it."""
        await self.load()
        temp = await self.run_blocking(self.content.temp_file, ".upload")
        try:
            await ingest.receive(chunks, temp, self._executor)
        except BaseException:
            await self.run_blocking(ingest.unlink_quietly, temp)
            raise
        return temp

    # -- creation

    async def import_tar(
        self,
        chunks: AsyncIterator[bytes],
        *,
        repo: str | None,
        tag: str | None,
        changes: builtins.list[str],
        message: str,
        source: str = "-",
    ) -> Image:
        """`docker import`: the tar (maybe gzip, bzip2 or xz) becomes the one layer of a
        new image configured by `changes`; `repo` may carry the tag."""
        target = reference.repo_tag_reference(repo, tag) if repo else None
        config = apply_changes(ImageConfig(), changes)
        await self.load()
        temp = await self.run_blocking(self.content.temp_file, ".import")
        try:
            await ingest.receive(chunks, temp, self._executor)
            created = now_rfc3339()
            comment = message or f"Imported from {source}"
            return await self._create(
                [temp],
                config=config,
                created=created,
                history=[HistoryEntry(created=created, comment=comment)],
                comment=comment,
                tags=[target] if target else [],
                event="import",
            )
        finally:
            await self.run_blocking(ingest.unlink_quietly, temp)

    async def add_image(
        self,
        layer_tars: builtins.list[Path],
        config: ImageConfig,
        *,
        created: str | None = None,
        history: builtins.list[HistoryEntry] | None = None,
        base: Image | None = None,
        parent: str = "",
        author: str = "",
        comment: str = "",
        tags: Sequence[str] = (),
        docker_version: str = "",
        container: str = "",
        container_config: ImageConfig | None = None,
    ) -> Image:
        """A new image: `base`'s layers (if any) plus `layer_tars` (tar files, maybe
        compressed; copied, not consumed), run with `config`. `history` is the complete
        history; by default `base`'s plus one entry per new layer. `tags` are names as
        users type them. An identical image already present is returned (and tagged).
        `container` and `container_config` record the container a commit made it from."""
        refs = [reference.parse_tagged(t) for t in tags]
        for ref in refs:
            if ref.digest is not None:
                raise InvalidParameter("refusing to create a tag with a digest reference")
        await self.load()
        created = created or now_rfc3339()
        if history is None:
            history = list(base.history) if base else []
            history += [HistoryEntry(created=created, comment=comment) for _ in layer_tars]
        return await self._create(
            layer_tars,
            config=config,
            created=created,
            history=history,
            base=base,
            parent=parent,
            author=author,
            comment=comment,
            tags=refs,
            docker_version=docker_version,
            container=container,
            container_config=container_config,
        )

    async def _create(
        self,
        layer_tars: builtins.list[Path],
        *,
        config: ImageConfig,
        created: str,
        history: builtins.list[HistoryEntry],
        base: Image | None = None,
        parent: str = "",
        author: str = "",
        comment: str = "",
        tags: Sequence[Reference] = (),
        docker_version: str = "",
        event: str | None = None,
        container: str = "",
        container_config: ImageConfig | None = None,
    ) -> Image:
        diff_ids = list(base.diff_ids) if base else []
        new_layers: builtins.list[tuple[str, int]] = []
        for layer in layer_tars:
            diff_id, size = await self.run_blocking(
                ingest.ingest_layer, self.content, self.snapshots, self._layers, layer, diff_ids
            )
            diff_ids.append(diff_id)
            new_layers.append((diff_id, size))
        image = ingest.new_image(
            new_layers,
            config=config,
            created=created,
            history=history,
            base=base,
            parent=parent,
            author=author,
            comment=comment,
            docker_version=docker_version,
            container=container,
            container_config=container_config,
        )
        image = await self.run_blocking(ingest.write_blobs, self.content, image)
        async with self._lock:
            await self.run_blocking(
                ingest.ensure_on_disk, self.content, self.snapshots, self._layers, image,
                layer_tars,
            )  # fmt: skip
            if image.id not in self._index:
                await self._records.set_refs(image.id, tags, new_image=image)
            elif tags:
                await self._records.set_refs(image.id, tags)
            stored = self._index.get(image.id)
        if event is not None:
            self._records.publish(event, image.id, image.id)
        assert stored is not None
        return stored

    async def add_from_content(
        self,
        config_digest: str,
        layers: Sequence[oci.Descriptor],
        *,
        manifest_digest: str = "",
        refs: Sequence[Reference] = (),
        event: str | None = None,
        reading: ingest.LayerReading | None = None,
    ) -> Image:
        """The image whose config blob and layer blobs (bottom first; gzip, zstd or
        uncompressed) are already in the content store, as pulled or loaded: nothing is
        re-encoded, so its id is the config's digest. Each layer is checked against its
        diff id as it is unpacked. `manifest_digest` names a stored manifest ("" writes
        an OCI one). `refs` (tags and repo@digest) are pointed at it. Blobs are read,
        never consumed: on failure the caller deletes what it no longer needs.
        `reading` follows each layer as it is unpacked (`docker load`'s progress)."""
        await self.load()
        # Held while we work, so that a concurrent `rmi` of an image sharing them does
        # not remove the snapshots and blobs this image is about to use.
        holder = f"ingest:{uuid.uuid4().hex}"
        blobs = [layer.digest for layer in layers] + [config_digest]
        if manifest_digest:
            blobs.append(manifest_digest)
        config = await self.run_blocking(self.content.read, config_digest)
        chains = oci.chain_ids(oci.decode_config(config, config_digest).diff_ids)
        self._layers.hold(holder, chains, blobs)
        try:
            image = await self.run_blocking(
                ingest.image_from_content,
                self.content,
                self.snapshots,
                config_digest,
                layers,
                manifest_digest,
                self._index.layer_blob_holds,
                reading,
            )
            self._layers.hold(holder, chains, [*blobs, image.manifest_digest])
            async with self._lock:
                existing = self._index.get(image.id)
                if existing is None:
                    await self._records.set_refs(image.id, refs, new_image=image)
                elif refs:
                    await self._records.set_refs(image.id, refs)
                stored = self._index.get(image.id)
        finally:
            self._layers.release(holder)
        if event is not None:
            self._records.publish(event, image.id, _event_name(refs, image.id))
        assert stored is not None
        return stored

    # -- container root filesystems

    def hold_layers(
        self, holder: str, chain_ids: Sequence[str], layer_digests: Sequence[str]
    ) -> None:
        """Keep these layers (snapshots, and the blobs to unpack them again) while the
        container `holder` uses them, even once no image does. Held in memory only: the
        engine holds its containers' layers again at start-up, from their records."""
        self._layers.hold(holder, chain_ids, layer_digests)

    async def release_layers(self, holder: str) -> builtins.list[str]:
        """The container `holder` is gone: drop the snapshots and layer blobs it held
        that no image and no other container uses (those of a force-deleted image, once
        its last container goes). Returns the chain ids removed."""
        held = self._layers.release(holder)
        if held is None:
            return []
        await self.load()
        # Usually the image is still there and nothing goes: no need to wait for the lock.
        if self._layers.unused(held) == ([], []):
            return []
        async with self._lock:
            chains, blobs = self._layers.unused(held)  # again: a delete may have run meanwhile
            return await self.run_blocking(self._layers.remove, chains, blobs)

    async def collect_unused_layers(self) -> builtins.list[str]:
        """Start-up sweep, once every container holds its layers again: snapshots and
        blobs no image and no container uses, left by a crash between a container's
        removal and its `release_layers`. Returns the chain ids removed."""
        await self.load()
        async with self._lock:
            return await self.run_blocking(self._layers.sweep)

    async def mount_layers(
        self, chain_ids: Sequence[str], layer_digests: Sequence[str], container_dir: Path
    ) -> Path:
        """Mount `container_dir/rootfs`: the snapshots `chain_ids` (bottom first) under
        the container's own `upper` directory (overlayfs); returns the rootfs path. No
        image record is needed, so a container outlives its force-deleted image."""
        return await self.run_blocking(
            self._layers.mount, list(chain_ids), list(layer_digests), container_dir
        )

    async def unmount_rootfs(self, container_dir: Path) -> None:
        """Unmount a container's rootfs; safe to call when it is not mounted."""
        await self.run_blocking(unmount_overlay, container_dir)


def _event_name(refs: Sequence[Reference], image_id: str) -> str:
    """The name an image event carries: the first tag as users write it, else the id."""
    for ref in refs:
        if ref.digest is None:
            return ref.familiar()
    return refs[0].familiar() if refs else image_id
