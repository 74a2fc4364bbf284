"""The rules of health checks: the probe command, intervals, streaks and statuses, and
how a create's HEALTHCHECK merges with the image's."""

import pytest

from essaim.engine.image_defaults import merge_healthcheck
from essaim.model.health import (
    HEALTHY,
    STARTING,
    UNHEALTHY,
    HealthLogEntry,
    HealthState,
    interval_ns,
    probe_command,
    record_probe,
)  # fmt: skip
from essaim.model.image import HealthConfig

pytestmark = pytest.mark.unit


def entry(code: int) -> HealthLogEntry:
    return HealthLogEntry(start="s", end="e", exit_code=code, output=str(code))


def test_probe_command_forms() -> None:
    assert probe_command(HealthConfig(test=["CMD", "curl", "-f", "x"])) == ["curl", "-f", "x"]
    assert probe_command(HealthConfig(test=["CMD-SHELL", "exit 1"])) == ["/bin/sh", "-c", "exit 1"]
    assert probe_command(HealthConfig(test=["NONE"])) is None
    assert probe_command(HealthConfig(test=[])) is None
    assert probe_command(None) is None


def test_success_is_healthy_and_resets_the_streak() -> None:
    health = HealthState(failing_streak=2)
    assert record_probe(health, entry(0), retries=3, in_start_period=False)
    assert (health.status, health.failing_streak) == (HEALTHY, 0)
    assert not record_probe(health, entry(0), retries=3, in_start_period=False)


def test_unhealthy_after_retries_failures_in_a_row() -> None:
    health = HealthState(status=HEALTHY)
    assert not record_probe(health, entry(1), retries=3, in_start_period=False)
    assert not record_probe(health, entry(1), retries=3, in_start_period=False)
    assert record_probe(health, entry(1), retries=3, in_start_period=False)
    assert (health.status, health.failing_streak) == (UNHEALTHY, 3)


def test_failures_in_the_start_period_do_not_count() -> None:
    health = HealthState()
    for _ in range(5):
        record_probe(health, entry(1), retries=1, in_start_period=True)
    assert (health.status, health.failing_streak) == (STARTING, 0)
    assert record_probe(health, entry(1), retries=1, in_start_period=False)
    assert health.status == UNHEALTHY


def test_the_log_keeps_the_last_five() -> None:
    health = HealthState()
    for code in range(8):
        record_probe(health, entry(code), retries=100, in_start_period=False)
    assert [e.exit_code for e in health.log] == [3, 4, 5, 6, 7]


def test_intervals_and_their_defaults() -> None:
    config = HealthConfig(test=["CMD", "true"], interval=2 * 10**9, start_interval=10**8)
    assert interval_ns(config, HealthState(), in_start_period=True) == 10**8
    assert interval_ns(config, HealthState(status=HEALTHY), in_start_period=True) == 2 * 10**9
    assert interval_ns(HealthConfig(), HealthState(), in_start_period=False) == 30 * 10**9
    assert interval_ns(HealthConfig(), HealthState(), in_start_period=True) == 5 * 10**9


def test_create_fields_left_at_zero_come_from_the_image() -> None:
    image = HealthConfig(test=["CMD", "true"], interval=5, timeout=6, retries=7)
    given = HealthConfig(interval=1)
    merged = merge_healthcheck(image, given)
    assert merged == HealthConfig(test=["CMD", "true"], interval=1, timeout=6, retries=7)
    assert merge_healthcheck(image, None) == image
    none = HealthConfig(test=["NONE"])
    assert merge_healthcheck(image, none) is not None
    assert probe_command(merge_healthcheck(image, none)) is None
