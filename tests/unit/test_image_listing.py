"""`docker images` without a daemon: which images each filter keeps, which names it
shows them with, and the newest-first order."""

from __future__ import annotations

from collections.abc import Sequence

from essaim.image.listing import ImageListing, ListQuery, labels_match, list_images
from essaim.image.reference import Reference, parse
from essaim.model.image import Image, ImageConfig


def image(n: int, *, parent: str = "", labels: dict[str, str] | None = None) -> Image:
    return Image(
        id=f"sha256:{n:064x}",
        parent=parent,
        created=f"2024-01-0{n}T00:00:00.{n}Z",
        config=ImageConfig(labels=labels or {}),
    )


BASE = image(1)
CHILD = image(2, parent=BASE.id, labels={"tier": "web", "team": "a"})
LONE = image(3)
NEWEST = image(4, labels={"tier": "db"})
IMAGES = [BASE, CHILD, LONE, NEWEST]
NAMES: dict[str, list[Reference]] = {
    CHILD.id: [parse("me/app:v1"), parse("me/app@sha256:" + "d" * 64)],
    NEWEST.id: [parse("busybox:latest"), parse("me/db:v1")],
}


def ids(listings: Sequence[ImageListing]) -> list[str]:
    return [listing.image.id for listing in listings]


def listed(query: ListQuery, **limits: Sequence[Image]) -> list[str]:
    return ids(list_images(IMAGES, NAMES, query, **limits))


def test_newest_first_and_intermediate_images_hidden() -> None:
    assert listed(ListQuery()) == [NEWEST.id, LONE.id, CHILD.id]


def test_show_all_includes_intermediate_images() -> None:
    assert listed(ListQuery(show_all=True)) == [NEWEST.id, LONE.id, CHILD.id, BASE.id]


def test_names_are_shown_normalised_tags_and_digests_apart() -> None:
    (listing,) = [x for x in list_images(IMAGES, NAMES, ListQuery()) if x.image.id == CHILD.id]
    assert listing.repo_tags == ["docker.io/me/app:v1"]
    assert listing.repo_digests == ["docker.io/me/app@sha256:" + "d" * 64]


def test_dangling_means_no_tag_and_no_child() -> None:
    assert listed(ListQuery(dangling=True)) == [LONE.id]
    assert listed(ListQuery(dangling=False)) == [NEWEST.id, CHILD.id]


def test_dangling_allows_digests() -> None:
    names = {**NAMES, LONE.id: [parse("me/lone@sha256:" + "e" * 64)]}
    assert ids(list_images(IMAGES, names, ListQuery(dangling=True))) == [LONE.id]


def test_reference_filter_trims_names_and_drops_the_nameless() -> None:
    listings = list_images(IMAGES, NAMES, ListQuery(references=["me/*"]))
    assert ids(listings) == [NEWEST.id, CHILD.id]
    assert listings[0].repo_tags == ["docker.io/me/db:v1"]


def test_reference_filter_matches_the_name_alone() -> None:
    assert listed(ListQuery(references=["busybox"])) == [NEWEST.id]


def test_labels_all_must_hold() -> None:
    assert listed(ListQuery(labels=["tier"])) == [NEWEST.id, CHILD.id]
    assert listed(ListQuery(labels=["tier=web", "team"])) == [CHILD.id]
    assert listed(ListQuery(labels=["tier=web", "team=b"])) == []


def test_before_and_since_are_strict_and_narrow() -> None:
    everything = ListQuery(show_all=True)
    assert listed(everything, before=[NEWEST]) == [LONE.id, CHILD.id, BASE.id]
    assert listed(everything, before=[NEWEST, LONE]) == [CHILD.id, BASE.id]
    assert listed(everything, since=[BASE]) == [NEWEST.id, LONE.id, CHILD.id]
    assert listed(everything, since=[BASE, CHILD]) == [NEWEST.id, LONE.id]
    assert listed(everything, before=[NEWEST], since=[BASE]) == [LONE.id, CHILD.id]


def test_until_is_a_time_bound_like_before() -> None:
    until = 1_704_240_000 * 1_000_000_000  # 2024-01-03T00:00:00Z
    assert listed(ListQuery(show_all=True, until_nano=until)) == [CHILD.id, BASE.id]


def test_an_unreadable_created_time_fails_every_time_bound() -> None:
    odd = Image(id="sha256:" + "f" * 64, created="yesterday")
    assert ids(list_images([odd], {}, ListQuery(), since=[BASE])) == []
    assert ids(list_images([odd], {}, ListQuery(), before=[NEWEST])) == []
    assert ids(list_images([odd], {}, ListQuery())) == [odd.id]


def test_labels_match_like_docker() -> None:
    labels = {"a": "1", "b": ""}
    assert labels_match(labels, ["a", "a=1", "b", "b="])
    assert not labels_match(labels, ["a=2"])
    assert not labels_match(labels, ["c"])
