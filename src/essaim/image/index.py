"""The in-memory image index: images by id and references by normalised name, kept
current by the image service after each store commit, so lookups never touch disk.

Image objects here are never mutated in place; a change replaces them, which makes what
`resolve` returned a stable snapshot for its caller.
"""

from __future__ import annotations

import msgspec

from essaim.image import oci, reference
from essaim.image.reference import Reference
from essaim.model.image import Image


class ImageIndex:
    def __init__(self) -> None:
        self._images: dict[str, Image] = {}
        self._refs: dict[str, str] = {}  # normalised reference -> image id
        self._chains: dict[str, list[str]] = {}

    def load(self, images: list[Image], refs: dict[str, str]) -> None:
        """Start over from the store's records; an image's names are derived from `refs`
        (the store's tag records are what counts)."""
        self._images = {image.id: image for image in images}
        self._refs = {ref: image_id for ref, image_id in refs.items() if image_id in self._images}
        self._chains.clear()
        for image_id in self._images:
            self._refresh_names(image_id)

    # -- lookups

    def __contains__(self, image_id: str) -> bool:
        return image_id in self._images

    def __len__(self) -> int:
        return len(self._images)

    def get(self, image_id: str) -> Image | None:
        return self._images.get(image_id)

    def all(self) -> list[Image]:
        return list(self._images.values())

    def ref_target(self, normalized: str) -> str | None:
        return self._refs.get(normalized)

    def references(self, image_id: str) -> list[Reference]:
        """Every reference naming the image (tags and digests), in a stable order."""
        return [reference.parse(r) for r, i in sorted(self._refs.items()) if i == image_id]

    def references_by_image(self) -> dict[str, list[Reference]]:
        """`references` of every named image at once (for listings)."""
        out: dict[str, list[Reference]] = {}
        for ref, image_id in sorted(self._refs.items()):
            out.setdefault(image_id, []).append(reference.parse(ref))
        return out

    def children(self, image_id: str) -> list[str]:
        return [i.id for i in self._images.values() if i.parent == image_id]

    def chain_ids(self, image: Image) -> list[str]:
        chains = self._chains.get(image.id)
        if chains is None:
            chains = self._chains[image.id] = oci.chain_ids(image.diff_ids)
        return chains

    def chain_in_use(self, chain_id: str, *, ignoring: str) -> bool:
        """Whether an image other than `ignoring` stacks the snapshot `chain_id`."""
        return any(
            chain_id in self.chain_ids(image)
            for image in self._images.values()
            if image.id != ignoring
        )

    def blob_in_use(self, digest: str, *, ignoring: str) -> bool:
        for image in self._images.values():
            if image.id == ignoring:
                continue
            if digest in (image.id, image.manifest_digest) or digest in image.layer_digests:
                return True
        return False

    def layer_blob_holds(self, blob: str, diff_id: str) -> bool:
        """Whether the layer blob `blob` is known to unpack to `diff_id`: it is that
        uncompressed layer itself, or an image checked it so when it was added. Called
        from executor threads: reads a copy of the images."""
        if blob == diff_id:
            return True
        for image in list(self._images.values()):
            pairs = zip(image.layer_digests, image.diff_ids, strict=False)
            if (blob, diff_id) in pairs:
                return True
        return False

    def search_id(self, term: str) -> Image | None:
        """The image whose id starts with `term` (with or without `sha256:`), if exactly
        one does: an ambiguous prefix finds nothing, as in Docker."""
        hex_ = term.removeprefix("sha256:")
        if not hex_ or len(hex_) > 64 or hex_.strip("0123456789abcdef"):
            return None
        if len(hex_) == 64:
            return self._images.get("sha256:" + hex_)
        found: Image | None = None
        for image_id, image in self._images.items():
            if image_id.startswith("sha256:" + hex_):
                if found is not None:
                    return None
                found = image
        return found

    # -- changes (after the store committed them)

    def put(self, image: Image) -> None:
        self._images[image.id] = image
        self._chains.pop(image.id, None)
        self._refresh_names(image.id)

    def remove(self, image_id: str) -> None:
        self._images.pop(image_id, None)
        self._chains.pop(image_id, None)
        for ref in [r for r, i in self._refs.items() if i == image_id]:
            del self._refs[ref]

    def set_ref(self, normalized: str, image_id: str, tag_time: str | None = None) -> None:
        previous = self._refs.get(normalized)
        self._refs[normalized] = image_id
        if previous is not None and previous != image_id:
            self._refresh_names(previous)
        self._refresh_names(image_id, tag_time)

    def drop_ref(self, normalized: str) -> None:
        image_id = self._refs.pop(normalized, None)
        if image_id is not None:
            self._refresh_names(image_id)

    def _refresh_names(self, image_id: str, tag_time: str | None = None) -> None:
        image = self._images.get(image_id)
        if image is None:
            return
        refs = sorted(r for r, i in self._refs.items() if i == image_id)
        tags = [r for r in refs if "@" not in r]
        digests = [r for r in refs if "@" in r]
        changes: dict[str, object] = {}
        if tags != image.repo_tags:
            changes["repo_tags"] = tags
        if digests != image.repo_digests:
            changes["repo_digests"] = digests
        if tag_time is not None:
            changes["last_tag_time"] = tag_time
        if changes:
            self._images[image_id] = msgspec.structs.replace(image, **changes)
