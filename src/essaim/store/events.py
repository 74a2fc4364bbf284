"""The daemon's event bus: what `GET /events` streams (container start, image tag ...).

Recent events are kept in a bounded ring so `since=` can replay them, as dockerd does.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator

import msgspec

HISTORY = 1024


class Event(msgspec.Struct, frozen=True):
    type: str  # container, image, network, volume, daemon ...
    action: str  # create, start, die, destroy, tag, untag, delete, import ...
    actor_id: str
    attributes: dict[str, str]
    time_nano: int
    scope: str = "local"


class EventBus:
    def __init__(self) -> None:
        self._history: deque[Event] = deque(maxlen=HISTORY)
        self._subscribers: set[asyncio.Queue[Event]] = set()

    def publish(
        self, type_: str, action: str, actor_id: str, attributes: dict[str, str] | None = None
    ) -> Event:
        event = Event(type_, action, actor_id, dict(attributes or {}), time.time_ns())
        self._history.append(event)
        for queue in self._subscribers:
            queue.put_nowait(event)
        return event

    def history(self, since_nano: int) -> list[Event]:
        return [e for e in self._history if e.time_nano >= since_nano]

    async def subscribe(self, since_nano: int | None = None) -> AsyncIterator[Event]:
        """Past events from `since_nano` (if given), then live ones, without a gap."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            if since_nano is not None:
                for event in self.history(since_nano):
                    yield event
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)
