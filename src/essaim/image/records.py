"""The image and tag records: every change committed to the store first (kinds "images"
and "tags"), then mirrored in the in-memory index, then announced as an image event.

Callers serialise changes (the image service's lock); reads go to the index directly.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from essaim.image.index import ImageIndex
from essaim.image.reference import Reference
from essaim.model.image import Image, TagRecord
from essaim.model.rfc3339 import now_rfc3339
from essaim.store.base import Store, Transaction
from essaim.store.events import EventBus

IMAGES = "images"
TAGS = "tags"


class ImageRecords:
    def __init__(self, store: Store, index: ImageIndex, events: EventBus) -> None:
        self._store = store
        self._index = index
        self._events = events
        self._image_decoder = msgspec.json.Decoder(Image)
        self._tag_decoder = msgspec.json.Decoder(TagRecord)
        self._encoder = msgspec.json.Encoder()

    async def read(self) -> tuple[list[Image], dict[str, str]]:
        """Every image record, and every reference's image id, as stored."""
        images = [self._image_decoder.decode(raw) for _, raw in await self._store.list(IMAGES)]
        refs = {
            key: self._tag_decoder.decode(raw).image_id for key, raw in await self._store.list(TAGS)
        }
        return images, refs

    def publish(self, action: str, image_id: str, name: str) -> None:
        """An image event the way moby logs it: the image's labels (while it still
        exists) plus `name`, the reference concerned or the id itself."""
        image = self._index.get(image_id)
        attributes = dict(image.config.labels) if image is not None else {}
        attributes["name"] = name
        self._events.publish("image", action, image_id, attributes)

    async def set_refs(
        self, image_id: str, refs: Sequence[Reference], new_image: Image | None = None
    ) -> None:
        """Point `refs` at the image (and store `new_image` first, if given) in one
        transaction, then mirror it in the index; a `tag` event for each reference."""
        tag_time = now_rfc3339()
        names = [ref.normalized() for ref in refs]
        record = self._encoder.encode(TagRecord(image_id=image_id))
        updates: dict[str, Image] = {}
        owner = new_image or self._index.get(image_id)
        if owner is not None:
            updates[image_id] = _renamed(owner, names, tag_time if names else None)
        for name in names:
            previous = self._index.ref_target(name)
            if previous is not None and previous != image_id:
                lost = self._index.get(previous)
                if lost is not None:
                    updates[previous] = _renamed(updates.get(previous, lost), [], None, name)

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
            self.publish("tag", image_id, ref.familiar())

    async def drop_refs(self, image_id: str, refs: Sequence[Reference]) -> None:
        """Remove `refs` from the image, in one transaction; no event (the caller's)."""
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

    async def delete(self, image_id: str) -> list[Reference]:
        """Delete the image record and the references still naming it, in one
        transaction; an `untag` event per reference, then `delete`. Returns the
        references."""
        refs = self._index.references(image_id)
        names = [r.normalized() for r in refs]

        def body(txn: Transaction) -> None:
            for name in names:
                txn.delete(TAGS, name)
            txn.delete(IMAGES, image_id)

        await self._store.transact(body)
        for _ in refs:
            self.publish("untag", image_id, image_id)
        self._index.remove(image_id)
        self.publish("delete", image_id, image_id)
        return refs


def _renamed(image: Image, added: list[str], tag_time: str | None, removed: str = "") -> Image:
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
