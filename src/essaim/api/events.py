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
from essaim.image.reference import familiar_name
from essaim.store.events import Event, EventBus

# dockerd's accepted keys; any other is a 400.
EVENT_FILTERS = (
    "config", "container", "daemon", "event", "image", "label", "network", "node",
    "plugin", "scope", "secret", "service", "type", "volume",
)  # fmt: skip
# Filter keys that name an object by its id or name, or a prefix of either.
_NAMED_OBJECTS = (
    "config", "container", "daemon", "network", "node", "plugin", "secret", "service", "volume",
)  # fmt: skip
_ACTIONS_WITH_DETAIL = frozenset(("health_status", "exec_create", "exec_start"))


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


def _exact(filters: Filters, key: str, value: str) -> bool:
    """moby's ExactMatch: no filter on `key`, or `value` is one of its values."""
    wanted = filters.values(key)
    return not wanted or value in wanted


def _fuzzy(filters: Filters, key: str, value: str) -> bool:
    """moby's FuzzyMatch: no filter on `key`, or one of its values starts `value`."""
    wanted = filters.values(key)
    return not wanted or any(value.startswith(w) for w in wanted)


def _action_matches(filters: Filters, action: str) -> bool:
    # As moby (#25798): a bare `health_status`, `exec_create` or `exec_start` among the
    # values turns every `event` value into a prefix, so it matches `exec_start: sh`.
    if set(filters.values("event")) & _ACTIONS_WITH_DETAIL:
        return _fuzzy(filters, "event", action)
    return _exact(filters, "event", action)


def _image_matches(filters: Filters, event: Event) -> bool:
    """The image's id or name (an image event's actor, a container event's `image`),
    as given or as its familiar name without tag or digest."""
    name = event.attributes.get("name" if event.type == "image" else "image", "")
    return any(
        _exact(filters, "image", candidate)
        for candidate in (event.actor_id, name, familiar_name(event.actor_id), familiar_name(name))
    )


def event_matches(event: Event, filters: Filters) -> bool:
    """moby's events.Filter.Include: values of one key OR'ed, different keys AND'ed."""
    name = event.attributes.get("name", "")
    return (
        _action_matches(filters, event.action)
        and _exact(filters, "type", event.type)
        and _exact(filters, "scope", event.scope)
        # An object filter does not look at the event type: `container=web` also lets
        # through a volume event whose volume name starts with `web`, as in moby.
        and all(
            _fuzzy(filters, key, event.actor_id) or _fuzzy(filters, key, name)
            for key in _NAMED_OBJECTS
        )
        and ("image" not in filters or _image_matches(filters, event))
        and filters.match_labels(event.attributes)
    )


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
