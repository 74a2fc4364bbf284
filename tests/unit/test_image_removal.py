"""The rules of `docker rmi` without a store: which references a name or an id takes
away, which conflicts stop it, and when a conflict just keeps the image quietly."""

from __future__ import annotations

import pytest

from essaim.errors import Conflict
from essaim.image.reference import Reference, parse
from essaim.image.removal import (
    ImageFacts,
    RemovalPlan,
    Untag,
    delete_conflict,
    is_id_prefix,
    is_single_reference,
    may_delete,
    plan_removal,
    short_id,
)

IMAGE_ID = "sha256:" + "ab12" * 16
DIGEST = "sha256:" + "cd" * 32
OTHER_DIGEST = "sha256:" + "ef" * 32
CONTAINER = "c0ffee" * 10
STOPPED = (CONTAINER, False)
RUNNING = (CONTAINER, True)


def refs(*texts: str) -> tuple[Reference, ...]:
    return tuple(parse(t) for t in texts)


def facts(
    *names: str, children: bool = False, users: tuple[tuple[str, bool], ...] = ()
) -> ImageFacts:
    return ImageFacts(IMAGE_ID, refs(*names), has_children=children, users=users)


def familiar(plan: RemovalPlan) -> list[list[str]]:
    return [[r.familiar() for r in untag.references] for untag in plan.untags]


# -- by name


def test_a_name_among_others_is_only_untagged() -> None:
    plan = plan_removal("me/app:v1", facts("me/app:v1", "me/app:v2"), force=False)
    assert plan == RemovalPlan((Untag(refs("me/app:v1"), announced=True),), False, True)


def test_a_bare_name_means_latest() -> None:
    plan = plan_removal("busybox", facts("busybox:latest", "busybox:1"), force=False)
    assert familiar(plan) == [["busybox:latest"]]


def test_the_last_name_untags_then_deletes_quietly() -> None:
    plan = plan_removal("me/app:v1", facts("me/app:v1"), force=False)
    assert plan == RemovalPlan((Untag(refs("me/app:v1"), announced=True),), True, True)


def test_the_last_tag_of_a_repository_takes_its_digests_unannounced() -> None:
    names = ("me/app:v1", f"me/app@{DIGEST}", f"me/app@{OTHER_DIGEST}", "other:v1")
    plan = plan_removal("me/app:v1", facts(*names), force=False)
    assert plan.untags == (
        Untag(refs("me/app:v1"), announced=True),
        Untag(refs(f"me/app@{DIGEST}", f"me/app@{OTHER_DIGEST}"), announced=False),
    )
    assert not plan.delete  # other:v1 still names it


def test_digests_stay_while_their_repository_keeps_a_tag() -> None:
    plan = plan_removal(
        "me/app:v1", facts("me/app:v1", "me/app:v2", f"me/app@{DIGEST}"), force=False
    )
    assert familiar(plan) == [["me/app:v1"]]
    assert not plan.delete


def test_removing_a_digest_leaves_the_tags_of_its_repository() -> None:
    plan = plan_removal(f"me/app@{DIGEST}", facts("me/app:v1", f"me/app@{DIGEST}"), force=False)
    assert familiar(plan) == [[f"me/app@{DIGEST}"]]
    assert not plan.delete


def test_the_last_tag_and_its_digests_then_delete() -> None:
    plan = plan_removal("me/app:v1", facts("me/app:v1", f"me/app@{DIGEST}"), force=False)
    assert familiar(plan) == [["me/app:v1"], [f"me/app@{DIGEST}"]]
    assert plan.delete and plan.quiet


def test_the_only_name_of_a_used_image_needs_force() -> None:
    with pytest.raises(Conflict) as info:
        plan_removal("me/app:v1", facts("me/app:v1", users=(STOPPED,)), force=False)
    assert str(info.value) == (
        'conflict: unable to remove repository reference "me/app:v1" (must force) - '
        f"container {CONTAINER[:12]} is using its referenced image {IMAGE_ID[7:19]}"
    )


def test_the_only_name_of_a_used_image_goes_with_force() -> None:
    plan = plan_removal("me/app:v1", facts("me/app:v1", users=(RUNNING,)), force=True)
    assert familiar(plan) == [["me/app:v1"]]
    assert plan.delete and plan.quiet


def test_one_of_several_names_of_a_used_image_goes_without_force() -> None:
    plan = plan_removal(
        "me/app:v1", facts("me/app:v1", "you/app:v1", users=(RUNNING,)), force=False
    )
    assert familiar(plan) == [["me/app:v1"]]


# -- by id


def test_an_id_with_one_tag_untags_it_announced_then_deletes() -> None:
    names = ("me/app:v1", f"me/app@{DIGEST}")
    plan = plan_removal(IMAGE_ID[7:19], facts(*names), force=False)
    assert plan == RemovalPlan((Untag(refs(*names), announced=True),), True, False)


def test_an_unnamed_image_by_id_is_deleted_directly() -> None:
    assert plan_removal(IMAGE_ID, facts(), force=False) == RemovalPlan((), True, False)


def test_an_id_named_in_several_repositories_leaves_the_names_to_the_delete() -> None:
    plan = plan_removal(IMAGE_ID[7:17], facts("me/app:v1", "you/app:v1"), force=False)
    assert plan == RemovalPlan((), True, False)
    with pytest.raises(Conflict, match="image is referenced in multiple repositories"):
        may_delete(facts("me/app:v1", "you/app:v1"), force=False, quiet=plan.quiet)


def test_an_id_with_two_tags_of_one_repository_is_not_single() -> None:
    assert plan_removal(IMAGE_ID, facts("me/app:v1", "me/app:v2"), force=True).untags == ()


def test_an_id_used_by_a_stopped_container_must_be_forced() -> None:
    with pytest.raises(Conflict) as info:
        plan_removal(IMAGE_ID[7:19], facts("me/app:v1", users=(STOPPED,)), force=False)
    assert str(info.value) == (
        f"conflict: unable to delete {IMAGE_ID[7:19]} (must be forced) - "
        f"image is being used by stopped container {CONTAINER[:12]}"
    )
    assert plan_removal(IMAGE_ID[7:19], facts("me/app:v1", users=(STOPPED,)), force=True).delete


def test_an_id_used_by_a_running_container_cannot_be_forced() -> None:
    with pytest.raises(Conflict) as info:
        plan_removal(IMAGE_ID[7:19], facts("me/app:v1", users=(RUNNING,)), force=True)
    assert str(info.value) == (
        f"conflict: unable to delete {IMAGE_ID[7:19]} (cannot be forced) - "
        f"image is being used by running container {CONTAINER[:12]}"
    )


def test_an_id_with_children_cannot_be_forced() -> None:
    with pytest.raises(Conflict, match=r"\(cannot be forced\) - image has dependent child"):
        plan_removal(IMAGE_ID, facts("me/app:v1", children=True), force=True)


# -- the conflicts, in moby's order


def test_children_come_before_running_containers() -> None:
    conflict = delete_conflict(
        facts(children=True, users=(RUNNING,)), check_refs=True, check_stopped=True
    )
    assert conflict is not None
    assert (conflict.message, conflict.hard, conflict.used) == (
        "image has dependent child images",
        True,
        False,
    )


def test_soft_conflicts_only_when_asked() -> None:
    named_and_stopped = facts("me/app:v1", users=(STOPPED,))
    assert delete_conflict(named_and_stopped, check_refs=False, check_stopped=False) is None
    by_refs = delete_conflict(named_and_stopped, check_refs=True, check_stopped=True)
    assert by_refs is not None and not by_refs.hard and not by_refs.used
    by_user = delete_conflict(named_and_stopped, check_refs=False, check_stopped=True)
    assert by_user is not None and not by_user.hard and by_user.used


def test_no_conflict_for_a_free_image() -> None:
    assert delete_conflict(facts(), check_refs=True, check_stopped=True) is None


# -- the delete step


def test_a_free_image_may_go() -> None:
    assert may_delete(facts(), force=False, quiet=False)


def test_quiet_keeps_an_image_still_built_on() -> None:
    assert not may_delete(facts(children=True), force=False, quiet=True)


def test_quiet_keeps_a_dangling_image_a_container_uses() -> None:
    assert not may_delete(facts(users=(STOPPED,)), force=False, quiet=True)


def test_not_quiet_a_conflict_is_an_error() -> None:
    with pytest.raises(Conflict, match="dependent child images"):
        may_delete(facts(children=True), force=True, quiet=False)


def test_force_passes_stopped_containers_not_running_ones() -> None:
    assert may_delete(facts(users=(STOPPED,)), force=True, quiet=False)
    with pytest.raises(Conflict, match="running container"):
        may_delete(facts(users=(RUNNING,)), force=True, quiet=False)


# -- small rules


@pytest.mark.parametrize("ref", [IMAGE_ID, IMAGE_ID[7:], IMAGE_ID[:12], IMAGE_ID[7:10]])
def test_id_prefixes(ref: str) -> None:
    assert is_id_prefix(IMAGE_ID, ref)


@pytest.mark.parametrize("ref", ["me/app:v1", "ab13", "sha256:ab13"])
def test_not_id_prefixes(ref: str) -> None:
    assert not is_id_prefix(IMAGE_ID, ref)


@pytest.mark.parametrize(
    ("names", "single"),
    [
        ((), False),
        (("me/app:v1",), True),
        (("me/app:v1", f"me/app@{DIGEST}", f"me/app@{OTHER_DIGEST}"), True),
        ((f"me/app@{DIGEST}", f"me/app@{OTHER_DIGEST}"), True),
        (("me/app:v1", "me/app:v2"), False),
        (("me/app:v1", f"you/app@{DIGEST}"), False),
    ],
)
def test_single_reference(names: tuple[str, ...], single: bool) -> None:
    assert is_single_reference(refs(*names)) is single


def test_short_id_drops_the_algorithm() -> None:
    assert short_id(IMAGE_ID) == "ab12ab12ab12"
    assert short_id(CONTAINER) == CONTAINER[:12]
