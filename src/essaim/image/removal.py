"""The rules of `docker rmi` as moby applies them: which references a name or an id
takes away, and which conflicts keep an image. Pure: the image service does the I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from essaim.errors import Conflict
from essaim.image import reference
from essaim.image.reference import Reference

# For an image id: the containers using it, as (container id, running).
ContainerUsers = Callable[[str], Iterable[tuple[str, bool]]]


def short_id(value: str) -> str:
    """Docker's TruncateID: no algorithm prefix, 12 characters."""
    return value.split(":", 1)[-1][:12]


@dataclass(frozen=True, slots=True)
class ImageFacts:
    """What the rules need to know of one image at one moment: the references naming
    it, whether images are built on it, and the containers using it."""

    image_id: str
    references: tuple[Reference, ...] = ()
    has_children: bool = False
    users: tuple[tuple[str, bool], ...] = ()  # (container id, running)

    @property
    def dangling(self) -> bool:
        """Nothing names it and nothing is built on it."""
        return not self.references and not self.has_children


@dataclass(frozen=True, slots=True)
class DeleteConflict:
    """Why an image cannot go: `hard` ones even with force; `used` when a container
    is the reason."""

    image_id: str
    message: str
    hard: bool
    used: bool

    def error(self) -> Conflict:
        force = "cannot be forced" if self.hard else "must be forced"
        return Conflict(
            f"conflict: unable to delete {short_id(self.image_id)} ({force}) - {self.message}"
        )


@dataclass(frozen=True, slots=True)
class Untag:
    """References dropped together (one store transaction), each reported as
    `Untagged`; `announced` when each also publishes an `untag` event (moby publishes
    none for the digests a repository's last tag takes with it)."""

    references: tuple[Reference, ...]
    announced: bool


@dataclass(frozen=True, slots=True)
class RemovalPlan:
    """What `docker rmi <ref>` does before the image itself may go: the untags, in
    order; whether the image is deleted next; and whether a conflict then keeps the
    image quietly (a name was asked to go, and it went)."""

    untags: tuple[Untag, ...]
    delete: bool
    quiet: bool


def plan_removal(ref: str, facts: ImageFacts, *, force: bool) -> RemovalPlan:
    """moby's ImageDelete up to its delete helper, for the image `ref` resolved to.
    Raises the conflicts that stop it before anything is untagged."""
    refs = facts.references
    if not is_id_prefix(facts.image_id, ref):
        # A name was given: it goes first; the image only if nothing else names it.
        if not force and is_single_reference(refs) and facts.users:
            raise Conflict(
                f'conflict: unable to remove repository reference "{ref}" (must force)'
                f" - container {short_id(facts.users[0][0])} is using its referenced image "
                f"{short_id(facts.image_id)}"
            )
        named = reference.parse(ref).with_default_tag()
        untags = [Untag((named,), announced=True)]
        remaining = [r for r in refs if r.normalized() != named.normalized()]
        if named.digest is None and not any(
            r.digest is None and r.name == named.name for r in remaining
        ):
            # The last tag of a repository takes that repository's digests with it.
            same_repo_digests = tuple(
                r for r in remaining if r.digest is not None and r.name == named.name
            )
            if same_repo_digests:
                untags.append(Untag(same_repo_digests, announced=False))
                remaining = [r for r in remaining if r not in same_repo_digests]
        return RemovalPlan(tuple(untags), delete=not remaining, quiet=True)
    if is_single_reference(refs):
        # An id with at most one tag: untag it, then delete as usual.
        conflict = delete_conflict(facts, check_refs=False, check_stopped=not force)
        if conflict is not None:
            raise conflict.error()
        untags = [Untag(refs, announced=True)] if refs else []
        return RemovalPlan(tuple(untags), delete=True, quiet=False)
    return RemovalPlan((), delete=True, quiet=False)


def delete_conflict(
    facts: ImageFacts, *, check_refs: bool, check_stopped: bool
) -> DeleteConflict | None:
    """moby's checkImageDeleteConflict: the first conflict, hard ones (children,
    running containers) always checked, soft ones (other names, stopped containers)
    as asked."""
    image_id = facts.image_id
    if facts.has_children:
        return DeleteConflict(image_id, "image has dependent child images", True, False)
    running = [cid for cid, is_running in facts.users if is_running]
    if running:
        message = f"image is being used by running container {short_id(running[0])}"
        return DeleteConflict(image_id, message, True, True)
    if check_refs and facts.references:
        message = "image is referenced in multiple repositories"
        return DeleteConflict(image_id, message, False, False)
    stopped = [cid for cid, is_running in facts.users if not is_running]
    if check_stopped and stopped:
        message = f"image is being used by stopped container {short_id(stopped[0])}"
        return DeleteConflict(image_id, message, False, True)
    return None


def may_delete(facts: ImageFacts, *, force: bool, quiet: bool) -> bool:
    """moby's imageDeleteHelper, its first step: whether the image goes now. A conflict
    is an error, except when `quiet` (the untag alone was asked, or a parent is being
    pruned) and the image is still named, built on, or used: then it just stays."""
    conflict = delete_conflict(facts, check_refs=not force, check_stopped=not force)
    if conflict is None:
        return True
    if quiet and (not facts.dangling or conflict.used):
        return False
    raise conflict.error()


def is_id_prefix(image_id: str, ref: str) -> bool:
    """Whether `ref` is the start of the image's id, with or without `sha256:`."""
    return image_id.startswith(ref) or image_id.removeprefix("sha256:").startswith(ref)


def is_single_reference(refs: Sequence[Reference]) -> bool:
    """At least one reference, all in one repository, and at most one of them a tag
    (moby's isSingleReference)."""
    names = {r.name for r in refs}
    tags = [r for r in refs if r.digest is None]
    return len(names) == 1 and len(tags) <= 1
