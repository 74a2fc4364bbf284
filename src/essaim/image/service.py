"""The image service: the one façade the engine and the API use for local images
(lookup, tag, remove, import, create from layer tars, and container root filesystems).

The store holds the truth (kinds "images" and "tags"); an in-memory index mirrors it for
fast lookups. Blocking work runs in the executor; changes are serialised by one lock.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import datetime as _dt
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, TypeVar

import msgspec

from essaim.errors import Conflict, InvalidParameter, NotFound, SystemError_
from essaim.image import archive, oci, reference
from essaim.image.changes import apply_changes
from essaim.image.content import ContentStore
from essaim.image.index import ImageIndex
from essaim.image.platform import host_platform
from essaim.image.reference import Reference
from essaim.image.snapshot import Snapshotter, mount_overlay, unmount_overlay
from essaim.model.image import HistoryEntry, Image, ImageConfig, TagRecord
from essaim.store.base import Store, Transaction
from essaim.store.events import EventBus

IMAGES = "images"
TAGS = "tags"
_WRITE_BATCH = 1 << 20

P = ParamSpec("P")
R = TypeVar("R")

# For an image id: the containers using it, as (container id, running).
ContainerUsers = Callable[[str], Iterable[tuple[str, bool]]]


_RFC3339 = re.compile(
    r"(\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d)(?:\.(\d{1,9})\d*)?([Zz]|[+-]\d\d:\d\d)"
)


def now_rfc3339() -> str:
    """UTC now with nanoseconds, the way Go's RFC3339Nano writes `created` (trailing
    zeros of the fraction dropped)."""
    ns = time.time_ns()
    seconds, fraction = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if fraction:
        text += f".{fraction:09d}".rstrip("0")
    return text + "Z"


def rfc3339_nano(value: str) -> int | None:
    """Nanoseconds since the epoch of an RFC 3339 time with up to 9 fraction digits
    (which `datetime` alone cannot read); None for an empty or unreadable value."""
    m = _RFC3339.fullmatch(value)
    if m is None:
        return None
    zone = "+00:00" if m.group(3) in ("Z", "z") else m.group(3)
    try:
        moment = _dt.datetime.fromisoformat(m.group(1).replace(" ", "T") + zone)
    except ValueError:
        return None
    fraction = int((m.group(2) or "").ljust(9, "0"))
    return int(moment.timestamp()) * 1_000_000_000 + fraction


def short_id(value: str) -> str:
    """Docker's TruncateID: no algorithm prefix, 12 characters."""
    return value.split(":", 1)[-1][:12]


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One line of `docker history`, newest first."""

    id: str  # the image id, or "<missing>" for layers with no local image
    created: str
    created_by: str
    tags: list[str]  # familiar names
    size: int
    comment: str


@dataclass(frozen=True, slots=True)
class ListQuery:
    """The filters of `docker images`, already decoded from the wire."""

    show_all: bool = False
    dangling: bool | None = None  # None: not filtered on
    references: Sequence[str] = ()  # path.Match patterns on familiar names
    labels: Sequence[str] = ()  # "key" or "key=value", all must hold
    before: Sequence[str] = ()  # image references: created strictly before all of them
    since: Sequence[str] = ()  # image references: created strictly after all of them
    until_nano: int | None = None  # created strictly before this time


@dataclass(frozen=True, slots=True)
class ImageListing:
    """One image of `docker images`, with the names the reference filter kept
    (normalised)."""

    image: Image
    repo_tags: builtins.list[str]
    repo_digests: builtins.list[str]


def _labels_match(labels: Mapping[str, str], wanted: Sequence[str]) -> bool:
    """Docker's MatchKVList: every `key` present, every `key=value` equal."""
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


@dataclass(frozen=True, slots=True)
class _HeldLayers:
    """The layers a container stacks: chain ids bottom first, and each one's blob."""

    chain_ids: tuple[str, ...]
    layer_digests: tuple[str, ...]


@dataclass(slots=True)
class _DeleteConflict:
    image_id: str
    message: str
    hard: bool
    used: bool

    def error(self) -> Conflict:
        force = "cannot be forced" if self.hard else "must be forced"
        return Conflict(
            f"conflict: unable to delete {short_id(self.image_id)} ({force}) - {self.message}"
        )


class ImageService:
    def __init__(self, data_root: Path, store: Store, events: EventBus, executor: Executor) -> None:
        self.data_root = data_root
        self._store = store
        self._events = events
        self._executor = executor
        self.content = ContentStore(data_root / "content")
        self.snapshots = Snapshotter(data_root / "snapshots")
        self._index = ImageIndex()
        # Layers containers use, by container id: kept when their image goes (`rmi -f`).
        self._held: dict[str, _HeldLayers] = {}
        self._loaded = False
        self._load_lock = asyncio.Lock()
        self._lock = asyncio.Lock()  # every change: store commit + index update
        self._image_decoder = msgspec.json.Decoder(Image)
        self._tag_decoder = msgspec.json.Decoder(TagRecord)
        self._encoder = msgspec.json.Encoder()

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
            images = [self._image_decoder.decode(raw) for _, raw in await self._store.list(IMAGES)]
            refs = {
                key: self._tag_decoder.decode(raw).image_id
                for key, raw in await self._store.list(TAGS)
            }
            await self.run_blocking(self.content.clean_ingest)
            await self.run_blocking(self.snapshots.clean)
            self._index.load(images, refs)
            self._loaded = True

    def _publish(self, action: str, image_id: str, name: str) -> None:
        """An image event the way moby logs it: the image's labels (while it still
        exists) plus `name`, the reference concerned or the id itself."""
        image = self._index.get(image_id)
        attributes = dict(image.config.labels) if image is not None else {}
        attributes["name"] = name
        self._events.publish("image", action, image_id, attributes)

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
        return sorted(self._index.all(), key=_newest_first)

    async def list_filtered(self, query: ListQuery) -> builtins.list[ImageListing]:
        """`docker images`, with moby's rules: without `show_all`, an unnamed image that
        others are built on is left out (a named one stays); `dangling` means no tag
        (digests allowed) and no child; a reference filter also trims the names shown,
        and leaves out the images it leaves nameless. Newest first."""
        await self.load()
        before = [await self.get(ref) for ref in query.before]
        since = [await self.get(ref) for ref in query.since]
        # Several values narrow the range: the oldest `before`, the newest `since`.
        limits = [rfc3339_nano(i.created) for i in before]
        if query.until_nano is not None:
            limits.append(query.until_nano)
        before_nano = min((n for n in limits if n is not None), default=None)
        since_nano = max(
            (n for n in (rfc3339_nano(i.created) for i in since) if n is not None), default=None
        )
        images = self._index.all()
        parents = {image.parent for image in images if image.parent}
        names = self._index.references_by_image()
        out: builtins.list[ImageListing] = []
        for image in images:
            if query.dangling and image.id in parents:
                continue
            created = rfc3339_nano(image.created)
            if before_nano is not None and (created is None or created >= before_nano):
                continue
            if since_nano is not None and (created is None or created <= since_nano):
                continue
            if query.labels and not _labels_match(image.config.labels, query.labels):
                continue
            tags: builtins.list[str] = []
            digests: builtins.list[str] = []
            for ref in names.get(image.id, []):
                if query.references and not any(
                    reference.familiar_match(pattern, ref) for pattern in query.references
                ):
                    continue
                (tags if ref.digest is None else digests).append(ref.normalized())
            if not tags and not digests:
                if not query.show_all and image.id in parents:
                    continue  # an intermediate image: only `-a` shows it
                if query.dangling is False or query.references:
                    continue
            elif query.dangling and tags:
                continue
            out.append(ImageListing(image, tags, digests))
        out.sort(key=lambda listing: _newest_first(listing.image))
        return out

    async def children(self, image_id: str) -> builtins.list[str]:
        await self.load()
        return self._index.children(image_id)

    async def history(self, ref: str) -> builtins.list[HistoryRow]:
        """`docker history`: the image's history, newest first, with layer sizes, and the
        ids and tags of the image and its local ancestors filled in from the top."""
        image = await self.get(ref)
        rows: builtins.list[HistoryRow] = []
        layer = 0
        for entry in image.history:
            size = 0
            if not entry.empty_layer:
                if layer >= len(image.diff_ids):
                    raise SystemError_("too many non-empty layers in History section")
                size = image.layer_sizes[layer] if layer < len(image.layer_sizes) else 0
                layer += 1
            rows.insert(
                0, HistoryRow("<missing>", entry.created, entry.created_by, [], size, entry.comment)
            )
        current: Image | None = image
        for i, row in enumerate(rows):
            if current is None:
                break
            tags = [reference.familiar(t) for t in current.repo_tags]
            rows[i] = HistoryRow(
                current.id, row.created, row.created_by, tags, row.size, row.comment
            )
            current = self._index.get(current.parent) if current.parent else None
        return rows

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
            await self._set_refs(image.id, [target])
        return target

    async def _set_refs(
        self, image_id: str, refs: Sequence[Reference], new_image: Image | None = None
    ) -> None:
        """Point `refs` at the image (and store `new_image` first, if given) in one
        transaction, then mirror it in the index; holds `self._lock`."""
        tag_time = now_rfc3339()
        names = [ref.normalized() for ref in refs]
        record = self._encoder.encode(TagRecord(image_id=image_id))
        updates: dict[str, Image] = {}
        owner = new_image or self._index.get(image_id)
        if owner is not None:
            updates[image_id] = self._renamed(owner, names, tag_time if names else None)
        for name in names:
            previous = self._index.ref_target(name)
            if previous is not None and previous != image_id:
                lost = self._index.get(previous)
                if lost is not None:
                    updates[previous] = self._renamed(updates.get(previous, lost), [], None, name)

        def body(txn: Transaction) -> None:
            for name in names:
                txn.put(TAGS, name, record)
            for updated_id, updated in updates.items():
                txn.put(IMAGES, updated_id, self._encoder.encode(updated))

        await self._store.transact(body)
        if new_image is not None:
            self._index.put(new_image)
        for name in names:
            self._index.set_ref(name, image_id, tag_time)
        for ref in refs:
            self._publish("tag", image_id, ref.familiar())

    @staticmethod
    def _renamed(
        image: Image, added: builtins.list[str], tag_time: str | None, removed: str = ""
    ) -> Image:
        """The record of `image` once `added` name it and `removed` no longer does."""
        tags = {t for t in image.repo_tags if t != removed}
        digests = {d for d in image.repo_digests if d != removed}
        tags.update(n for n in added if "@" not in n)
        digests.update(n for n in added if "@" in n)
        return msgspec.structs.replace(
            image,
            repo_tags=sorted(tags),
            repo_digests=sorted(digests),
            last_tag_time=tag_time or image.last_tag_time,
        )

    async def _drop_refs(self, image_id: str, refs: Sequence[Reference]) -> None:
        names = [ref.normalized() for ref in refs]
        image = self._index.get(image_id)

        def body(txn: Transaction) -> None:
            for name in names:
                txn.delete(TAGS, name)
            if image is not None:
                updated = msgspec.structs.replace(
                    image,
                    repo_tags=[t for t in image.repo_tags if t not in names],
                    repo_digests=[d for d in image.repo_digests if d not in names],
                )
                txn.put(IMAGES, image_id, self._encoder.encode(updated))

        await self._store.transact(body)
        for name in names:
            self._index.drop_ref(name)

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
        image = self._resolve(ref)
        image_id = image.id
        records: builtins.list[dict[str, str]] = []
        refs = self._index.references(image_id)
        quiet = False
        if not _is_id_prefix(image_id, ref):
            # A name was given: it goes first; the image only if nothing else names it.
            if not force and _is_single_reference(refs):
                user = next(iter(in_use_by(image_id)), None)
                if user is not None:
                    raise Conflict(
                        f'conflict: unable to remove repository reference "{ref}" (must force)'
                        f" - container {short_id(user[0])} is using its referenced image "
                        f"{short_id(image_id)}"
                    )
            named = reference.parse(ref).with_default_tag()
            await self._drop_refs(image_id, [named])
            records.append({"Untagged": named.familiar()})
            self._publish("untag", image_id, image_id)
            refs = self._index.references(image_id)
            if named.digest is None and not any(
                r.digest is None and r.name == named.name for r in refs
            ):
                # The last tag of a repository takes that repository's digests with it.
                same_repo_digests = [
                    r for r in refs if r.digest is not None and r.name == named.name
                ]
                if same_repo_digests:
                    await self._drop_refs(image_id, same_repo_digests)
                    records.extend({"Untagged": r.familiar()} for r in same_repo_digests)
                refs = self._index.references(image_id)
            if refs:
                return records
            quiet = True
        elif _is_single_reference(refs):
            # An id with at most one tag: untag it, then delete as usual.
            conflict = self._conflict(
                image_id, in_use_by, check_refs=False, check_stopped=not force
            )
            if conflict is not None:
                raise conflict.error()
            if refs:
                await self._drop_refs(image_id, refs)
                for r in refs:
                    records.append({"Untagged": r.familiar()})
                    self._publish("untag", image_id, image_id)
        await self._delete(image_id, records, force, prune, quiet, in_use_by)
        return records

    def _conflict(
        self, image_id: str, in_use_by: ContainerUsers, *, check_refs: bool, check_stopped: bool
    ) -> _DeleteConflict | None:
        if self._index.children(image_id):
            return _DeleteConflict(image_id, "image has dependent child images", True, False)
        users = list(in_use_by(image_id))
        running = [cid for cid, is_running in users if is_running]
        if running:
            message = f"image is being used by running container {short_id(running[0])}"
            return _DeleteConflict(image_id, message, True, True)
        if check_refs and self._index.references(image_id):
            message = "image is referenced in multiple repositories"
            return _DeleteConflict(image_id, message, False, False)
        stopped = [cid for cid, is_running in users if not is_running]
        if check_stopped and stopped:
            message = f"image is being used by stopped container {short_id(stopped[0])}"
            return _DeleteConflict(image_id, message, False, True)
        return None

    async def _delete(
        self,
        image_id: str,
        records: builtins.list[dict[str, str]],
        force: bool,
        prune: bool,
        quiet: bool,
        in_use_by: ContainerUsers,
    ) -> None:
        conflict = self._conflict(
            image_id, in_use_by, check_refs=not force, check_stopped=not force
        )
        if conflict is not None:
            dangling = not self._index.references(image_id) and not self._index.children(image_id)
            if quiet and (not dangling or conflict.used):
                return  # the untag alone was asked for; a used image stays
            raise conflict.error()
        image = self._index.get(image_id)
        if image is None:
            return
        refs = self._index.references(image_id)
        records.extend({"Untagged": r.familiar()} for r in refs)
        names = [r.normalized() for r in refs]

        def body(txn: Transaction) -> None:
            for name in names:
                txn.delete(TAGS, name)
            txn.delete(IMAGES, image_id)

        await self._store.transact(body)
        for _ in refs:
            self._publish("untag", image_id, image_id)
        chains = self._index.chain_ids(image)
        self._index.remove(image_id)
        self._publish("delete", image_id, image_id)
        records.append({"Deleted": image_id})
        # Containers keep the layers they stack (snapshots and blobs) when a forced delete
        # takes their image; `release_layers` drops them with the last such container.
        doomed_chains = [c for c in chains if not self._chain_used(c)]
        doomed_blobs = [
            b
            for b in (image.id, image.manifest_digest)
            if b and not self._index.blob_in_use(b, ignoring="")
        ]
        doomed_blobs += [b for b in image.layer_digests if b and not self._layer_blob_used(b)]
        removed = await self.run_blocking(self._remove_files, doomed_chains, doomed_blobs)
        records.extend({"Deleted": chain} for chain in reversed(removed))
        if prune and image.parent and image.parent in self._index:
            await self._delete(image.parent, records, False, True, True, in_use_by)

    def _chain_used(self, chain_id: str) -> bool:
        """Whether an image or a container still stacks the snapshot `chain_id`."""
        return self._index.chain_in_use(chain_id, ignoring="") or any(
            chain_id in held.chain_ids for held in builtins.list(self._held.values())
        )

    def _layer_blob_used(self, digest: str) -> bool:
        """Whether an image or a container still needs the layer blob `digest`."""
        return self._index.blob_in_use(digest, ignoring="") or any(
            digest in held.layer_digests for held in builtins.list(self._held.values())
        )

    def _remove_files(
        self, chains: builtins.list[str], blobs: builtins.list[str]
    ) -> builtins.list[str]:
        removed = [chain for chain in chains if self.snapshots.remove(chain)]
        for blob in set(blobs):
            self.content.delete(blob)
        return removed

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
            await self._receive(chunks, temp)
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
            await self.run_blocking(_unlink_quietly, temp)

    async def _receive(self, chunks: AsyncIterator[bytes], path: Path) -> None:
        """Stream a request body to `path`, in batches, off the event loop."""
        out = await self.run_blocking(open, path, "wb")
        try:
            batch = bytearray()
            async for chunk in chunks:
                batch += chunk
                if len(batch) >= _WRITE_BATCH:
                    data = bytes(batch)
                    batch.clear()
                    await self.run_blocking(out.write, data)
            if batch:
                await self.run_blocking(out.write, bytes(batch))
        finally:
            await self.run_blocking(out.close)

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
    ) -> Image:
        """A new image: `base`'s layers (if any) plus `layer_tars` (tar files, maybe
        compressed; copied, not consumed), run with `config`. `history` is the complete
        history; by default `base`'s plus one entry per new layer. `tags` are names as
        users type them. An identical image already present is returned (and tagged)."""
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
    ) -> Image:
        diff_ids = list(base.diff_ids) if base else []
        layer_digests = list(base.layer_digests) if base else []
        layer_sizes = list(base.layer_sizes) if base else []
        for layer in layer_tars:
            diff_id, size = await self.run_blocking(self._ingest_layer, layer, diff_ids)
            diff_ids.append(diff_id)
            layer_digests.append(diff_id)
            layer_sizes.append(size)
        architecture, variant, os_name = (
            (base.architecture, base.variant, base.os) if base else host_platform()
        )
        image = Image(
            id="",
            parent=parent,
            created=created,
            size=sum(layer_sizes),
            layer_sizes=layer_sizes,
            architecture=architecture,
            variant=variant,
            os=os_name,
            author=author,
            comment=comment,
            docker_version=docker_version,
            config=config,
            diff_ids=diff_ids,
            layer_digests=layer_digests,
            history=history,
        )
        image = await self.run_blocking(self._write_blobs, image)
        async with self._lock:
            if image.id not in self._index:
                await self._set_refs(image.id, tags, new_image=image)
            elif tags:
                await self._set_refs(image.id, tags)
            stored = self._index.get(image.id)
        if event is not None:
            self._publish(event, image.id, image.id)
        assert stored is not None
        return stored

    def _ingest_layer(self, layer: Path, lower_diff_ids: builtins.list[str]) -> tuple[str, int]:
        """Store a layer as an uncompressed blob and unpack its snapshot; (diff id, size)."""
        with layer.open("rb") as raw:
            kind = archive.sniff_compression(raw.read(8))
            raw.seek(0)
            if kind == "none" and layer.parent == self.content.ingest_dir:
                diff_id = None  # already on the blobs' filesystem: hashed and moved below
            else:
                with archive.open_decompressed(raw) as stream:
                    diff_id, _ = self.content.write_stream(stream)
        if diff_id is None:
            # Import bodies are ours to consume; a link keeps `layer` for its owner's cleanup.
            linked = self.content.temp_file(".layer")
            linked.unlink()
            os.link(layer, linked)
            diff_id, _ = self.content.adopt(linked)
        chain = oci.chain_ids([*lower_diff_ids, diff_id])[-1]
        try:
            size = self.snapshots.unpack(chain, self.content.path(diff_id))
        except BaseException:
            # A layer that cannot be unpacked must not linger as an orphan blob.
            if not self._layer_blob_used(diff_id):
                self.content.delete(diff_id)
            raise
        return diff_id, size

    def _write_blobs(self, image: Image) -> Image:
        """Write the config and manifest blobs; the image with its id and manifest."""
        config_bytes = oci.encode_config(image)
        image_id = self.content.write(config_bytes)
        layers = [
            oci.Descriptor(oci.OCI_LAYER, digest, self.content.size(digest))
            for digest in image.layer_digests
        ]
        manifest = oci.encode_manifest(
            oci.Descriptor(oci.OCI_CONFIG, image_id, len(config_bytes)), layers
        )
        manifest_digest = self.content.write(manifest)
        return msgspec.structs.replace(image, id=image_id, manifest_digest=manifest_digest)

    # -- container root filesystems

    def hold_layers(
        self, holder: str, chain_ids: Sequence[str], layer_digests: Sequence[str]
    ) -> None:
        """Keep these layers (snapshots, and the blobs to unpack them again) while the
        container `holder` uses them, even once no image does. Held in memory only: the
        engine holds its containers' layers again at start-up, from their records."""
        self._held[holder] = _HeldLayers(tuple(chain_ids), tuple(layer_digests))

    async def release_layers(self, holder: str) -> builtins.list[str]:
        """The container `holder` is gone: drop the snapshots and layer blobs it held
        that no image and no other container uses (those of a force-deleted image, once
        its last container goes). Returns the chain ids removed."""
        held = self._held.pop(holder, None)
        if held is None:
            return []
        await self.load()

        def doomed() -> tuple[builtins.list[str], builtins.list[str]]:
            chains = [c for c in held.chain_ids if not self._chain_used(c)]
            blobs = [b for b in held.layer_digests if b and not self._layer_blob_used(b)]
            return chains, blobs

        # Usually the image is still there and nothing goes: no need to wait for the lock.
        if doomed() == ([], []):
            return []
        async with self._lock:
            chains, blobs = doomed()  # again: a delete may have run meanwhile
            return await self.run_blocking(self._remove_files, chains, blobs)

    async def collect_unused_layers(self) -> builtins.list[str]:
        """Start-up sweep, once every container holds its layers again: snapshots and
        blobs no image and no container uses, left by a crash between a container's
        removal and its `release_layers`. Returns the chain ids removed."""
        await self.load()
        async with self._lock:

            def sweep() -> builtins.list[str]:
                chains = [c for c in self.snapshots.chain_ids_on_disk() if not self._chain_used(c)]
                blobs = [b for b in self.content.digests() if not self._layer_blob_used(b)]
                return self._remove_files(chains, blobs)

            return await self.run_blocking(sweep)

    async def mount_layers(
        self, chain_ids: Sequence[str], layer_digests: Sequence[str], container_dir: Path
    ) -> Path:
        """Mount `container_dir/rootfs`: the snapshots `chain_ids` (bottom first) under
        the container's own `upper` directory (overlayfs); returns the rootfs path. No
        image record is needed, so a container outlives its force-deleted image."""
        return await self.run_blocking(
            self._mount, builtins.list(chain_ids), builtins.list(layer_digests), container_dir
        )

    def _mount(
        self, chains: builtins.list[str], digests: builtins.list[str], container_dir: Path
    ) -> Path:
        for i, chain in enumerate(chains):
            if not self.snapshots.exists(chain):
                # Lost snapshot (disk trouble, manual cleanup): rebuild it from its blob.
                digest = digests[i] if i < len(digests) else ""
                if not digest or not self.content.has(digest):
                    raise SystemError_(
                        f"layer {chain} is missing: no snapshot, and no blob to unpack it from"
                    )
                self.snapshots.unpack(chain, self.content.path(digest))
        return mount_overlay(self.snapshots.lower_dirs(chains), container_dir)

    async def unmount_rootfs(self, container_dir: Path) -> None:
        """Unmount a container's rootfs; safe to call when it is not mounted."""
        await self.run_blocking(unmount_overlay, container_dir)


def _newest_first(image: Image) -> tuple[int, str]:
    return (-(rfc3339_nano(image.created) or 0), image.id)


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _is_id_prefix(image_id: str, ref: str) -> bool:
    return image_id.startswith(ref) or image_id.removeprefix("sha256:").startswith(ref)


def _is_single_reference(refs: list[Reference]) -> bool:
    """At least one reference, all in one repository, and at most one of them a tag
    (moby's isSingleReference)."""
    names = {r.name for r in refs}
    tags = [r for r in refs if r.digest is None]
    return len(names) == 1 and len(tags) <= 1
