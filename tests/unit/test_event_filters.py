"""Which events `GET /events` filters let through: moby's events.Filter.Include."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from essaim.api.events import event_matches
from essaim.api.filters import Filters
from essaim.store.events import Event

START = Event("container", "start", "abc123", {"name": "web", "image": "busybox", "k": "v"}, 1)
EXEC = Event(
    "container", "exec_start: sh -c true", "abc123", {"name": "web", "image": "busybox"}, 2
)
HEALTH = Event("container", "health_status: healthy", "abc123", {"name": "web"}, 3)
VOLUME = Event("volume", "create", "webdata", {"driver": "local"}, 4)
TAG = Event("image", "tag", "sha256:" + "f" * 64, {"name": "me/app:v1"}, 5)


def f(**values: list[str]) -> Filters:
    return Filters.parse(json.dumps(values))


def test_no_filter_lets_everything_through() -> None:
    assert all(event_matches(e, f()) for e in (START, EXEC, HEALTH, VOLUME, TAG))


def test_event_values_are_exact_unless_a_detailed_action_is_named() -> None:
    assert event_matches(START, f(event=["start"]))
    assert not event_matches(EXEC, f(event=["exec"]))
    assert event_matches(EXEC, f(event=["exec_start"]))
    assert event_matches(HEALTH, f(event=["health_status"]))
    assert event_matches(EXEC, f(event=["exec_start: sh -c true"]))
    # moby's prefix mode covers every value once one of the three is there.
    assert event_matches(START, f(event=["st", "exec_create"]))
    assert not event_matches(START, f(event=["st"]))


def test_object_filters_match_id_or_name_prefix_whatever_the_type() -> None:
    assert event_matches(START, f(container=["web"]))
    assert event_matches(START, f(container=["abc"]))
    assert not event_matches(START, f(container=["db"]))
    assert not event_matches(TAG, f(container=["web"]))
    # moby does not look at the type: a volume named web... passes a container filter.
    assert event_matches(VOLUME, f(container=["web"]))
    assert event_matches(VOLUME, f(volume=["webd"]))
    assert not event_matches(START, f(network=["web2"]))


def test_image_matches_id_name_and_name_without_tag() -> None:
    assert event_matches(START, f(image=["busybox"]))
    assert event_matches(TAG, f(image=["me/app:v1"]))
    assert event_matches(TAG, f(image=["me/app"]))
    assert event_matches(TAG, f(image=[TAG.actor_id]))
    assert not event_matches(TAG, f(image=["me/app:v2"]))
    assert not event_matches(VOLUME, f(image=["busybox"]))


def test_keys_are_anded_values_ored() -> None:
    assert event_matches(START, f(type=["image", "container"], event=["start"]))
    assert not event_matches(START, f(type=["container"], event=["die"]))
    assert event_matches(START, f(label=["k", "k=v"], scope=["local"]))
    assert not event_matches(START, f(label=["k=w"]))
    assert not event_matches(START, f(scope=["swarm"]))


@given(st.text(min_size=1), st.text())
def test_a_container_filter_is_a_prefix_of_id_or_name(value: str, suffix: str) -> None:
    event = Event("container", "start", value + suffix, {"name": "x" + suffix}, 1)
    assert event_matches(event, f(container=[value]))
