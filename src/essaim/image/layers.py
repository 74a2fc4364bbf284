"""The layers on disk that images and containers stack (snapshots, and the blobs to
unpack them again): who still needs which, removing the rest, and mounting a rootfs.

Containers hold their layers here so that a forced `rmi` leaves them what they stack.
Everything but the holds themselves blocks: the image service runs it in its executor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from essaim.errors import SystemError_
from essaim.image.content import ContentStore
from essaim.image.index import ImageIndex
from essaim.image.snapshot import Snapshotter, mount_overlay
from essaim.model.image import Image


@dataclass(frozen=True, slots=True)
class HeldLayers:
    """The layers a container stacks: chain ids bottom first, and each one's blob."""

    chain_ids: tuple[str, ...]
    layer_digests: tuple[str, ...]


class Layers:
    """The snapshots and layer blobs of `content` and `snapshots` that the images of
    `index` and the holding containers use."""

    def __init__(self, index: ImageIndex, content: ContentStore, snapshots: Snapshotter) -> None:
        self._index = index
        self._content = content
        self._snapshots = snapshots
        # Layers containers use, by container id: kept when their image goes (`rmi -f`).
        self._held: dict[str, HeldLayers] = {}

    # -- holds (in memory, on the event loop)

    def hold(self, holder: str, chain_ids: Sequence[str], layer_digests: Sequence[str]) -> None:
        self._held[holder] = HeldLayers(tuple(chain_ids), tuple(layer_digests))

    def release(self, holder: str) -> HeldLayers | None:
        return self._held.pop(holder, None)

    # -- who needs what (also read from executor threads: hence the copies of `_held`)

    def chain_used(self, chain_id: str) -> bool:
        """Whether an image or a container still stacks the snapshot `chain_id`."""
        return self._index.chain_in_use(chain_id, ignoring="") or any(
            chain_id in held.chain_ids for held in list(self._held.values())
        )

    def layer_blob_used(self, digest: str) -> bool:
        """Whether an image or a container still needs the layer blob `digest`."""
        return self._index.blob_in_use(digest, ignoring="") or any(
            digest in held.layer_digests for held in list(self._held.values())
        )

    def unused(self, held: HeldLayers) -> tuple[list[str], list[str]]:
        """The chain ids and layer blobs of `held` that nobody else uses."""
        chains = [c for c in held.chain_ids if not self.chain_used(c)]
        blobs = [b for b in held.layer_digests if b and not self.layer_blob_used(b)]
        return chains, blobs

    def left_by(self, image: Image, chain_ids: Sequence[str]) -> tuple[list[str], list[str]]:
        """Once `image` (stacking `chain_ids`) is out of the index: the chain ids and
        blobs (config, manifest, layers) that nobody uses any more."""
        # Containers keep the layers they stack (snapshots and blobs) when a forced delete
        # takes their image; `release_layers` drops them with the last such container.
        chains = [c for c in chain_ids if not self.chain_used(c)]
        blobs = [
            b
            for b in (image.id, image.manifest_digest)
            if b and not self._index.blob_in_use(b, ignoring="")
        ]
        blobs += [b for b in image.layer_digests if b and not self.layer_blob_used(b)]
        return chains, blobs

    # -- files (blocking)

    def remove(self, chains: list[str], blobs: list[str]) -> list[str]:
        """Remove these snapshots and blobs; the chain ids that were there."""
        removed = [chain for chain in chains if self._snapshots.remove(chain)]
        for blob in set(blobs):
            self._content.delete(blob)
        return removed

    def sweep(self) -> list[str]:
        """Remove every snapshot and blob on disk that nobody uses; the chain ids removed."""
        chains = [c for c in self._snapshots.chain_ids_on_disk() if not self.chain_used(c)]
        blobs = [b for b in self._content.digests() if not self.layer_blob_used(b)]
        return self.remove(chains, blobs)

    def mount(self, chains: list[str], digests: list[str], container_dir: Path) -> Path:
        """Mount `container_dir/rootfs` from the snapshots `chains` (bottom first), each
        unpacked again from its blob in `digests` if lost; returns the rootfs path."""
        for i, chain in enumerate(chains):
            if not self._snapshots.exists(chain):
                # Lost snapshot (disk trouble, manual cleanup): rebuild it from its blob.
                digest = digests[i] if i < len(digests) else ""
                if not digest or not self._content.has(digest):
                    raise SystemError_(
                        f"layer {chain} is missing: no snapshot, and no blob to unpack it from"
                    )
                self._snapshots.unpack(chain, self._content.path(digest))
        return mount_overlay(self._snapshots.lower_dirs(chains), container_dir)
