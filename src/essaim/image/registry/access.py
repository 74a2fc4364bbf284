"""Access in Docker's token vocabulary: `repository:<name>:pull,push`, one resource and
its actions; what a request needs, what a token grants, and the scope strings between.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Access:
    type: str  # "repository" or "registry"
    name: str
    action: str


CATALOG = Access("registry", "catalog", "*")


def repository(name: str, *actions: str) -> list[Access]:
    return [Access("repository", name, action) for action in actions]


def scope_string(accesses: Iterable[Access]) -> str:
    """`repository:a:pull,push repository:b:pull`, resources in first-seen order."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for access in accesses:
        actions = grouped.setdefault((access.type, access.name), [])
        if access.action not in actions:
            actions.append(access.action)
    return " ".join(f"{t}:{n}:{','.join(actions)}" for (t, n), actions in grouped.items())


def parse_scopes(values: Iterable[str]) -> list[Access]:
    """Scopes from `scope=` parameters (each may hold several, space-separated). A
    resource name may hold a colon (a port), so type and actions are the outer parts."""
    out: list[Access] = []
    for value in values:
        for scope in value.split():
            kind, sep, rest = scope.partition(":")
            name, sep2, actions = rest.rpartition(":")
            if not (sep and sep2 and kind and name):
                continue
            out.extend(Access(kind, name, a) for a in actions.split(",") if a)
    return out


def allows(granted: Iterable[Access], needed: Access) -> bool:
    return any(
        a.type == needed.type and a.name == needed.name and a.action in (needed.action, "*")
        for a in granted
    )
