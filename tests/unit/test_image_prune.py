"""Which images `docker image prune` removes, and through which names, by moby's rules."""

from __future__ import annotations

from essaim.image import oci_layout, reference
from essaim.image.prune import PruneQuery, removal_names
from essaim.model.image import Image, ImageConfig

T0 = "2024-01-01T00:00:00Z"
T1 = "2024-06-01T00:00:00Z"


def image(n: int, *, created: str = T0, parent: str = "", **labels: str) -> Image:
    return Image(
        id=f"sha256:{n:064x}", created=created, parent=parent, config=ImageConfig(labels=labels)
    )


TAGGED = image(1)
DIGEST_ONLY = image(2)
DANGLING = image(3, created=T1, keep="yes")
INTERMEDIATE = image(4)
CHILD = image(5, parent=INTERMEDIATE.id)
ALL = [TAGGED, DIGEST_ONLY, DANGLING, INTERMEDIATE, CHILD]
REFS = {
    TAGGED.id: [reference.parse("docker.io/library/a:1"), reference.parse("docker.io/me/b:2")],
    DIGEST_ONLY.id: [reference.parse("docker.io/library/c@sha256:" + "c" * 64)],
    CHILD.id: [reference.parse("docker.io/library/child:1")],
}


def names(query: PruneQuery) -> list[list[str]]:
    parents = {i.parent for i in ALL}
    return removal_names(ALL, REFS, lambda i: i in parents, query)


def test_dangling_only_removes_untagged_leaves_by_id_or_digest() -> None:
    assert names(PruneQuery()) == [
        ["docker.io/library/c@sha256:" + "c" * 64],
        [DANGLING.id[7:]],
    ]


def test_all_removes_every_named_image_through_each_name_but_not_intermediates() -> None:
    assert names(PruneQuery(dangling_only=False)) == [
        ["docker.io/library/a:1", "docker.io/me/b:2"],
        ["docker.io/library/c@sha256:" + "c" * 64],
        [DANGLING.id[7:]],
        ["docker.io/library/child:1"],
    ]


def test_until_and_labels_narrow_the_choice() -> None:
    until = 1_710_000_000 * 10**9  # between T0 and T1
    assert [DANGLING.id[7:]] not in names(PruneQuery(until_nano=until))
    assert names(PruneQuery(labels=["keep=yes"])) == [[DANGLING.id[7:]]]
    assert [DANGLING.id[7:]] not in names(PruneQuery(not_labels=["keep"]))
    # label! keeps only images matching all its terms, as moby's MatchKVList.
    assert [DANGLING.id[7:]] in names(PruneQuery(not_labels=["keep", "other"]))


def test_loaded_names_follow_moby_containerd_rules() -> None:
    name = oci_layout.image_name
    assert name({oci_layout.ANNOTATION_IMAGE_NAME: "docker.io/library/bb:1"}) == reference.parse(
        "bb:1"
    )
    assert name({oci_layout.ANNOTATION_REF_NAME: "localhost/x:v1"}) == reference.parse(
        "localhost/x:v1"
    )
    assert name({oci_layout.ANNOTATION_REF_NAME: "latest"}) == reference.parse("latest:latest")
    assert name({oci_layout.ANNOTATION_REF_NAME: "Not/Valid"}) is None
    assert name({}) is None
