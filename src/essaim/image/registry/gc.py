"""Garbage collection of a registry root, like the reference registry's
`garbage-collect`: mark every blob a kept manifest references (following indexes to
their children, configs, layers and subjects), then sweep the rest.

With `delete_untagged`, manifests no tag reaches (directly, through an index, or as a
referrer of a kept manifest) are removed first. Run it with the server stopped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from essaim.image.registry import manifests
from essaim.image.registry.errors import RegistryError
from essaim.image.registry.storage import RegistryStorage

log = logging.getLogger(__name__)


@dataclass
class GcReport:
    marked: set[str] = field(default_factory=set)
    deleted_blobs: list[str] = field(default_factory=list)
    deleted_manifests: list[tuple[str, str]] = field(default_factory=list)  # (repo, digest)


def _kept_manifests(storage: RegistryStorage, name: str, delete_untagged: bool) -> set[str]:
    """The manifests of a repository that survive: all of them, or those reachable
    from its tags through index children, subjects and referrers."""
    revisions = set(storage.revisions(name))
    if not delete_untagged:
        return revisions
    parsed: dict[str, manifests.ParsedManifest | None] = {}

    def parse(digest: str) -> manifests.ParsedManifest | None:
        if digest not in parsed:
            found = storage.manifest(name, digest)
            try:
                parsed[digest] = manifests.parse(*found) if found else None
            except RegistryError:
                parsed[digest] = None
        return parsed[digest]

    kept: set[str] = set()
    todo = [d for d in storage.tags(name).values() if d in revisions]
    while todo:
        digest = todo.pop()
        if digest in kept:
            continue
        kept.add(digest)
        manifest = parse(digest)
        if manifest is not None:
            todo.extend(c for c in manifest.children if c in revisions)
            if manifest.subject in revisions:
                todo.append(manifest.subject)
        # Artifacts attached to a kept manifest (signatures, SBOMs) stay with it.
        todo.extend(r for r in storage.referrers(name, digest) if r in revisions)
    return kept


def collect(storage: RegistryStorage, delete_untagged: bool, dry_run: bool) -> GcReport:
    """Blocks: run it from a thread, or as the offline command it is."""
    report = GcReport()
    for name in storage.repository_names():
        kept = _kept_manifests(storage, name, delete_untagged)
        for digest in storage.revisions(name):
            if digest not in kept:
                report.deleted_manifests.append((name, digest))
                if not dry_run:
                    storage.delete_manifest(name, digest)
                continue
            report.marked.add(digest)
            found = storage.manifest(name, digest)
            if found is None:
                continue
            try:
                manifest = manifests.parse(*found)
            except RegistryError:
                log.warning("%s@%s: unreadable manifest, its blobs are kept", name, digest)
                report.marked.update(storage.layer_links(name))
                continue
            report.marked.update(manifest.references)
    for digest in storage.all_blobs():
        if digest not in report.marked:
            report.deleted_blobs.append(digest)
    if not dry_run:
        for digest in report.deleted_blobs:
            storage.remove_blob(digest)
        # Links to swept blobs would name content that is gone.
        swept = set(report.deleted_blobs)
        for name in storage.repository_names():
            for digest in storage.layer_links(name):
                if digest in swept:
                    storage.unlink_blob(name, digest)
    return report
