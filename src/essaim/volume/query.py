"""Which volumes a `volume ls` or `volume prune` takes: filters by name (a pattern, as
dockerd's filter Match), driver, labels present, equal or absent, and use by containers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from essaim.model.volume import Volume


@dataclass(frozen=True)
class VolumeQuery:
    names: list[str] = field(default_factory=list)
    drivers: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # "k" or "k=v": all must hold
    not_labels: list[str] = field(default_factory=list)  # "k" or "k=v": none may hold
    dangling: bool | None = None  # True: only unused ones; False: only used ones


def _name_matches(pattern: str, name: str) -> bool:
    if pattern == name:
        return True
    try:
        return re.search(pattern, name) is not None
    except re.error:
        return False


def _label_holds(item: str, labels: Mapping[str, str]) -> bool:
    key, sep, value = item.partition("=")
    return key in labels and (not sep or labels[key] == value)


def matches(query: VolumeQuery, volume: Volume, *, in_use: bool) -> bool:
    if query.names and not any(_name_matches(p, volume.name) for p in query.names):
        return False
    if query.drivers and volume.driver not in query.drivers:
        return False
    if not all(_label_holds(item, volume.labels) for item in query.labels):
        return False
    if any(_label_holds(item, volume.labels) for item in query.not_labels):
        return False
    return query.dangling is None or query.dangling != in_use
