"""The event bus: publish, the bounded history that `since` replays, and subscriptions
that miss nothing published after they were taken."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable
from typing import TypeVar

import pytest

from essaim.store.events import HISTORY, Event, EventBus

T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await asyncio.wait_for(coro, 5)

    return asyncio.run(main())


async def next_event(subscription: object, within: float = 1.0) -> Event:
    return await asyncio.wait_for(anext(subscription), within)  # type: ignore[call-overload]


def test_publish_returns_the_event_with_a_copy_of_its_attributes() -> None:
    bus = EventBus()
    attributes = {"name": "web"}
    event = bus.publish("container", "start", "abc", attributes)
    attributes["name"] = "changed"
    assert (event.type, event.action, event.actor_id) == ("container", "start", "abc")
    assert event.attributes == {"name": "web"}
    assert event.scope == "local"
    assert event.time_nano > 0


def test_history_since_is_inclusive_and_ordered() -> None:
    bus = EventBus()
    events = [bus.publish("image", "tag", str(i)) for i in range(5)]
    assert bus.history(0) == events
    assert bus.history(events[2].time_nano)[0].time_nano == events[2].time_nano
    assert bus.history(events[-1].time_nano + 1) == []


def test_history_keeps_only_the_newest() -> None:
    bus = EventBus()
    for i in range(HISTORY + 10):
        bus.publish("image", "tag", str(i))
    kept = bus.history(0)
    assert len(kept) == HISTORY
    assert kept[0].actor_id == "10"
    assert kept[-1].actor_id == str(HISTORY + 9)


def test_an_event_published_right_after_subscribing_is_delivered() -> None:
    async def body() -> Event:
        bus = EventBus()
        subscription = bus.subscribe()
        # Published before the subscriber's first read: still its event.
        bus.publish("container", "create", "c1")
        try:
            return await next_event(subscription)
        finally:
            await subscription.aclose()  # type: ignore[attr-defined]

    assert run(body()).action == "create"


def test_live_subscription_starts_at_the_call() -> None:
    async def body() -> list[str]:
        bus = EventBus()
        bus.publish("container", "old", "c")
        subscription = bus.subscribe()
        bus.publish("container", "new", "c")
        try:
            return [(await next_event(subscription)).action]
        finally:
            await subscription.aclose()  # type: ignore[attr-defined]

    assert run(body()) == ["new"]


def test_since_replays_history_then_live_without_gap_or_repeat() -> None:
    async def body() -> list[str]:
        bus = EventBus()
        bus.publish("container", "a", "c")
        second = bus.publish("container", "b", "c")
        subscription = bus.subscribe(second.time_nano)
        bus.publish("container", "c", "c")
        got = [(await next_event(subscription)).action for _ in range(2)]
        bus.publish("container", "d", "c")
        got.append((await next_event(subscription)).action)
        with pytest.raises(TimeoutError):
            await next_event(subscription, within=0.05)
        await subscription.aclose()  # type: ignore[attr-defined]
        return got

    assert run(body()) == ["b", "c", "d"]


def test_every_subscriber_gets_every_event() -> None:
    async def body() -> list[list[str]]:
        bus = EventBus()
        subscriptions = [bus.subscribe() for _ in range(3)]
        for action in ("x", "y"):
            bus.publish("network", action, "n")
        result = [[(await next_event(s)).action for _ in range(2)] for s in subscriptions]
        for s in subscriptions:
            await s.aclose()  # type: ignore[attr-defined]
        return result

    assert run(body()) == [["x", "y"]] * 3


def test_closing_ends_the_iteration_and_wakes_a_waiting_reader() -> None:
    async def body() -> list[Event]:
        bus = EventBus()
        subscription = bus.subscribe()
        received: list[Event] = []

        async def read() -> None:
            async for event in subscription:
                received.append(event)

        reader = asyncio.create_task(read())
        await asyncio.sleep(0)  # the reader now waits on an idle bus
        await subscription.aclose()  # type: ignore[attr-defined]
        await asyncio.wait_for(reader, 1)
        bus.publish("volume", "create", "v")  # nobody listens any more
        return received

    assert run(body()) == []


def test_a_closed_subscription_stops_collecting() -> None:
    async def body() -> None:
        bus = EventBus()
        subscription = bus.subscribe()
        await subscription.aclose()  # type: ignore[attr-defined]
        bus.publish("volume", "create", "v")
        with pytest.raises(StopAsyncIteration):
            await anext(subscription)

    run(body())


def test_a_dropped_subscription_is_forgotten() -> None:
    bus = EventBus()
    subscription = bus.subscribe()
    assert len(bus._subscribers) == 1
    del subscription
    gc.collect()
    assert len(bus._subscribers) == 0
    bus.publish("volume", "create", "v")
