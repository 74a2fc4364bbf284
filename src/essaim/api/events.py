"""`GET /events`: past events between `since` and `until`, then live ones, one JSON
message per chunk, with dockerd's filters (type, event, container, image, label ...).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from essaim.api.filters import Filters
from essaim.api.request import Request
from essaim.api.responses import AnyResponse, StreamResponse
from essaim.api.router import Router
from essaim.errors import InvalidParameter
from essaim.store.events import Event, EventBus

# dockerd's accepted keys; any other is a 400.
EVENT_FILTERS = (
    "config", "container", "daemon", "event", "image", "label", "network", "node",
    "plugin", "scope", "secret", "service", "type", "volume",
)  # fmt: skip
# Filter keys that name an object of the same event type, by id or name prefix.
_NAMED_OBJECTS = (
    "config", "container", "daemon", "network", "node", "plugin", "secret", "service", "volume",
)  # fmt: skip


class EventsAPI:
    def __init__(self, events: EventBus) -> None:
        self.events = events

    def register(self, router: Router) -> None:
        router.get("/events", self.stream)

    async def stream(self, req: Request) -> AnyResponse:
        filters = Filters.parse(req.query.get("filters"))
        filters.validate(EVENT_FILTERS)
        since = req.query.get_unix_nano("since")
        until = req.query.get_unix_nano("until")
        if since is not None and until is not None and until < since:
            raise InvalidParameter(
                f"`since` time ({req.query.get('since')}) cannot be after "
                f"`until` time ({req.query.get('until')})"
            )
        now = time.time_ns()
        # As dockerd: `until` alone replays every kept event up to it. With neither, the
        # replay starts now, so an event published while the headers go out is not lost.
        replay_from = since if since is not None else (0 if until is not None else now)
        if until is not None and until <= now:
            past = [e for e in self.events.history(replay_from) if e.time_nano <= until]
            return StreamResponse(_encode(e for e in past if event_matches(e, filters)))
        return StreamResponse(self._follow(replay_from, until, filters))

    async def _follow(
        self, replay_from: int, until: int | None, filters: Filters
    ) -> AsyncIterator[bytes]:
        subscription = self.events.subscribe(replay_from)
        try:
            while True:
                if until is None:
                    event = await anext(subscription)
                else:
                    remaining = (until - time.time_ns()) / 1e9
                    if remaining <= 0:
                        return
                    try:
                        event = await asyncio.wait_for(anext(subscription), remaining)
                    except TimeoutError:
                        return
                    if event.time_nano > until:
                        return
                if event_matches(event, filters):
                    yield _line(event)
        finally:
            await subscription.aclose()  # type: ignore[attr-defined]


def _prefix_match(filters: Filters, key: str, *candidates: str) -> bool:
    """dockerd's FuzzyMatch: no filter, or a filter value that starts one of candidates."""
    wanted = filters.values(key)
    return not wanted or any(c.startswith(w) for w in wanted for c in candidates if c)


def _strip_tag(reference: str) -> str:
    name, _, _ = reference.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def event_matches(event: Event, filters: Filters) -> bool:
    attributes = event.attributes
    if not filters.match_one("type", event.type):
        return False
    if not filters.match_one("scope", event.scope):
        return False
    wanted_actions = filters.values("event")
    if wanted_actions and not any(
        event.action == w or event.action.startswith(w + ":") for w in wanted_actions
    ):
        return False
    for key in _NAMED_OBJECTS:
        if key in filters and (
            event.type != key
            or not _prefix_match(filters, key, event.actor_id, attributes.get("name", ""))
        ):
            return False
    if "image" in filters:
        name = attributes.get("name" if event.type == "image" else "image", "")
        if not any(
            filters.match_one("image", candidate)
            for candidate in {event.actor_id, name, _strip_tag(name)} - {""}
        ):
            return False
    return filters.match_labels(attributes)


def event_wire(event: Event) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "Type": event.type,
        "Action": event.action,
        "Actor": {"ID": event.actor_id, "Attributes": event.attributes},
        "scope": event.scope,
        "time": event.time_nano // 1_000_000_000,
        "timeNano": event.time_nano,
    }
    # The legacy fields older clients still read, for the two types dockerd fills them.
    if event.type in ("container", "image"):
        wire.update(status=event.action, id=event.actor_id)
    if event.type == "container":
        wire["from"] = event.attributes.get("image", "")
    return wire


def _line(event: Event) -> bytes:
    return json.dumps(event_wire(event), separators=(",", ":")).encode() + b"\n"


async def _encode(events: Iterable[Event]) -> AsyncIterator[bytes]:
    for event in events:
        yield _line(event)
