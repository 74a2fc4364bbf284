"""`docker image prune` by moby's rules: which images its filters select and which of
their names each removal goes through. Pure: the image service does the removing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from essaim.image import oci
from essaim.image.listing import labels_match
from essaim.image.reference import Reference
from essaim.model.image import Image
from essaim.model.rfc3339 import rfc3339_nano


@dataclass(frozen=True, slots=True)
class PruneQuery:
    """The filters of `POST /images/prune`, decoded."""

    dangling_only: bool = True  # `dangling=false` (the CLI's -a) makes it every image
    until_nano: int | None = None  # only images created at or before this time
    labels: Sequence[str] = ()  # `label`: all must hold
    not_labels: Sequence[str] = ()  # `label!`: an image matching all of them is kept


def selected(image: Image, query: PruneQuery) -> bool:
    """moby's filters: `until` (an image without a creation time is kept), `label`, and
    `label!` (which, like moby's MatchKVList, keeps an image only if all its terms hold)."""
    if query.until_nano is not None:
        created = rfc3339_nano(image.created)
        if created is None or created > query.until_nano:
            return False
    if not labels_match(image.config.labels, query.labels):
        return False
    return not (query.not_labels and labels_match(image.config.labels, query.not_labels))


def removal_names(
    images: Sequence[Image],
    refs_by_image: Mapping[str, Sequence[Reference]],
    has_children: Callable[[str], bool],
    query: PruneQuery,
) -> list[list[str]]:
    """For each image to prune, the names `rmi` (without force, pruning parents) is
    asked to remove, one call each: its references when it has some, else its id.
    Dangling only: images nothing is built on, and of those the ones without a tag (a
    digest alone does not keep an image). With `-a`: every image, except unnamed ones
    that others are built on (they go with their last child). Images that containers
    use refuse their removal, and are kept."""
    out: list[list[str]] = []
    for image in sorted(images, key=lambda i: i.id):
        refs = refs_by_image.get(image.id, [])
        children = has_children(image.id)
        if query.dangling_only and children:
            continue
        if not refs and children:
            continue
        if not selected(image, query):
            continue
        if refs:
            if query.dangling_only and any(ref.digest is None for ref in refs):
                continue
            out.append([ref.normalized() for ref in refs])
        else:
            out.append([image.id.removeprefix("sha256:")])
    return out


def layer_sizes(images: Sequence[Image]) -> dict[str, int]:
    """The unpacked size of every layer, by chain id: what its removal frees."""
    sizes: dict[str, int] = {}
    for image in images:
        for chain, size in zip(oci.chain_ids(image.diff_ids), image.layer_sizes, strict=False):
            sizes[chain] = size
    return sizes
