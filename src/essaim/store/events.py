"""The daemon's event bus: what `GET /events` streams (container start, image tag ...).

Recent events are kept in a bounded ring so `since=` can replay them, as dockerd does.
"""

from __future__ import annotations

import asyncio
import time
import weakref
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


class _Subscription:
    """One subscriber's queue, registered when `subscribe` returns (not at its first
    read, which may come later): nothing published in between is missed."""

    def __init__(self, bus: EventBus, backlog: list[Event]) -> None:
        self._bus = bus
        # None: closed, wakes a reader waiting on an idle bus.
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        for event in backlog:
            self._queue.put_nowait(event)
        self._closed = False

    def deliver(self, event: Event) -> None:
        self._queue.put_nowait(event)

    def __aiter__(self) -> _Subscription:
        return self

    async def __anext__(self) -> Event:
        event = None if self._closed else await self._queue.get()
        if event is None:
            self._closed = True
            raise StopAsyncIteration
        return event

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._bus.unsubscribe(self)
            self._queue.put_nowait(None)


class EventBus:
    def __init__(self) -> None:
        self._history: deque[Event] = deque(maxlen=HISTORY)
        # Weak: a subscription its reader dropped without closing stops collecting.
        self._subscribers: weakref.WeakSet[_Subscription] = weakref.WeakSet()

    def publish(
        self, type_: str, action: str, actor_id: str, attributes: dict[str, str] | None = None
    ) -> Event:
        event = Event(type_, action, actor_id, dict(attributes or {}), time.time_ns())
        self._history.append(event)
        for subscriber in list(self._subscribers):
            subscriber.deliver(event)
        return event

    def listeners(self) -> int:
        """Open subscriptions (`docker info`'s NEventsListener)."""
        return len(self._subscribers)

    def unsubscribe(self, subscription: _Subscription) -> None:
        self._subscribers.discard(subscription)

    def history(self, since_nano: int) -> list[Event]:
        return [e for e in self._history if e.time_nano >= since_nano]

    def subscribe(self, since_nano: int | None = None) -> AsyncIterator[Event]:
        """Past events from `since_nano` (if given), then live ones, without a gap or a
        repeat; live ones count from this call. Close it with `aclose()`."""
        backlog = self.history(since_nano) if since_nano is not None else []
        subscription = _Subscription(self, backlog)
        self._subscribers.add(subscription)
        return subscription
