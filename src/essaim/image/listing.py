"""What `docker images` shows: the local images its filters keep, with the names the
reference filter leaves them, newest first, by moby's rules. Pure: no store, no index.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from essaim.image import reference
from essaim.image.reference import Reference
from essaim.model.image import Image
from essaim.model.rfc3339 import rfc3339_nano


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
    repo_tags: list[str]
    repo_digests: list[str]


def list_images(
    images: Sequence[Image],
    names: Mapping[str, Sequence[Reference]],
    query: ListQuery,
    *,
    before: Sequence[Image] = (),
    since: Sequence[Image] = (),
) -> list[ImageListing]:
    """`docker images` over `images`, named by `names` (references by image id), with
    `before` and `since` the images `query.before` and `query.since` resolved to.
    Without `show_all`, an unnamed image that others are built on is left out (a named
    one stays); `dangling` means no tag (digests allowed) and no child; a reference
    filter also trims the names shown, and leaves out the images it leaves nameless."""
    # Several values narrow the range: the oldest `before`, the newest `since`.
    limits = [rfc3339_nano(i.created) for i in before]
    if query.until_nano is not None:
        limits.append(query.until_nano)
    before_nano = min((n for n in limits if n is not None), default=None)
    since_nano = max(
        (n for n in (rfc3339_nano(i.created) for i in since) if n is not None), default=None
    )
    parents = {image.parent for image in images if image.parent}
    out: list[ImageListing] = []
    for image in images:
        if query.dangling and image.id in parents:
            continue
        created = rfc3339_nano(image.created)
        if before_nano is not None and (created is None or created >= before_nano):
            continue
        if since_nano is not None and (created is None or created <= since_nano):
            continue
        if query.labels and not labels_match(image.config.labels, query.labels):
            continue
        tags: list[str] = []
        digests: list[str] = []
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
    out.sort(key=lambda listing: newest_first(listing.image))
    return out


def labels_match(labels: Mapping[str, str], wanted: Sequence[str]) -> bool:
    """Docker's MatchKVList: every `key` present, every `key=value` equal."""
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def newest_first(image: Image) -> tuple[int, str]:
    """The sort key of listings: newest first, then by id."""
    return (-(rfc3339_nano(image.created) or 0), image.id)
