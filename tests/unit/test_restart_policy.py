"""Docker's restart policies: which `create` accepts, which exits restart the container
(no, always, on-failure[:N], unless-stopped; never after a user's stop), and the back-off."""

from __future__ import annotations

import pytest

from essaim.engine.restart_policy import (
    RESTART_DELAY_MAX,
    next_restart_delay,
    should_restart,
    validate_restart_policy,
)
from essaim.errors import InvalidParameter
from essaim.model.container import ContainerState, RestartPolicy

pytestmark = pytest.mark.unit


def exited(code: int, *, restarts: int = 0, stopped_by_user: bool = False) -> ContainerState:
    return ContainerState(
        status="exited", exit_code=code, restart_count=restarts, stopped_by_user=stopped_by_user
    )


@pytest.mark.parametrize("name", ["", "no", "always", "unless-stopped", "on-failure"])
def test_create_accepts_dockers_policies(name: str) -> None:
    validate_restart_policy(RestartPolicy(name=name), auto_remove=False)


def test_create_refuses_an_unknown_policy_with_dockers_message() -> None:
    with pytest.raises(InvalidParameter, match="unknown policy 'sometimes'; use one of 'no'"):
        validate_restart_policy(RestartPolicy(name="sometimes"), auto_remove=False)


@pytest.mark.parametrize("name", ["always", "unless-stopped", "on-failure"])
def test_auto_remove_refuses_a_restart_policy(name: str) -> None:
    with pytest.raises(InvalidParameter, match="can't create 'AutoRemove' container"):
        validate_restart_policy(RestartPolicy(name=name), auto_remove=True)


@pytest.mark.parametrize("name", ["", "no"])
def test_auto_remove_goes_with_no_policy(name: str) -> None:
    validate_restart_policy(RestartPolicy(name=name), auto_remove=True)


@pytest.mark.parametrize("name", ["", "no"])
@pytest.mark.parametrize("code", [0, 1, 137])
def test_no_never_restarts(name: str, code: int) -> None:
    assert not should_restart(RestartPolicy(name=name), exited(code))


@pytest.mark.parametrize("name", ["always", "unless-stopped"])
@pytest.mark.parametrize("code", [0, 1, 137])
def test_always_and_unless_stopped_restart_whatever_the_exit_code(name: str, code: int) -> None:
    assert should_restart(RestartPolicy(name=name), exited(code, restarts=50))


@pytest.mark.parametrize("name", ["always", "unless-stopped", "on-failure"])
def test_no_policy_revives_a_container_the_user_stopped(name: str) -> None:
    assert not should_restart(RestartPolicy(name=name), exited(1, stopped_by_user=True))


def test_on_failure_restarts_on_a_non_zero_exit_only() -> None:
    policy = RestartPolicy(name="on-failure")
    assert should_restart(policy, exited(1))
    assert should_restart(policy, exited(1, restarts=1000))  # no maximum
    assert not should_restart(policy, exited(0))


def test_on_failure_with_a_maximum_stops_after_that_many_restarts() -> None:
    policy = RestartPolicy(name="on-failure", maximum_retry_count=3)
    assert [should_restart(policy, exited(2, restarts=n)) for n in range(5)] == [
        True,
        True,
        True,
        False,
        False,
    ]


def test_create_refuses_a_retry_count_without_on_failure() -> None:
    with pytest.raises(InvalidParameter, match="can only be used with 'on-failure'"):
        validate_restart_policy(RestartPolicy("always", 3), auto_remove=False)


def test_create_refuses_a_negative_retry_count() -> None:
    with pytest.raises(InvalidParameter, match="maximum retry count cannot be negative"):
        validate_restart_policy(RestartPolicy("on-failure", -1), auto_remove=False)


@pytest.mark.parametrize("name", ["always", "on-failure"])
def test_a_daemon_start_forgets_the_users_stop_except_for_unless_stopped(name: str) -> None:
    stopped = exited(143, stopped_by_user=True)
    assert should_restart(RestartPolicy(name=name), stopped, at_boot=True)
    assert not should_restart(RestartPolicy(name="unless-stopped"), stopped, at_boot=True)


def test_a_daemon_start_restarts_unless_stopped_that_nobody_stopped() -> None:
    assert should_restart(RestartPolicy(name="unless-stopped"), exited(0), at_boot=True)


def test_a_daemon_start_respects_on_failure_retries_and_exit_code() -> None:
    policy = RestartPolicy(name="on-failure", maximum_retry_count=2)
    assert should_restart(policy, exited(1, restarts=1), at_boot=True)
    assert not should_restart(policy, exited(1, restarts=2), at_boot=True)
    assert not should_restart(policy, exited(0), at_boot=True)
    assert not should_restart(RestartPolicy(name="no"), exited(1), at_boot=True)


def delays(runs: list[float]) -> list[float]:
    """The delay before each restart, for runs lasting `runs` seconds."""
    out: list[float] = []
    previous = 0.0
    for ran_for in runs:
        previous = next_restart_delay(previous, ran_for)
        out.append(previous)
    return out


def test_backoff_starts_at_100ms_and_doubles_per_restart() -> None:
    assert delays([0.5] * 6) == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2]


def test_backoff_stops_at_a_minute() -> None:
    sequence = delays([0.5] * 14)
    assert sequence[9] == pytest.approx(51.2)
    assert sequence[10:] == [RESTART_DELAY_MAX] * 4 == [60.0] * 4


def test_backoff_stays_a_minute_for_ever() -> None:
    assert next_restart_delay(60.0, 0.5) == 60.0
    assert delays([0.0] * 5000)[-1] == 60.0


def test_a_run_of_ten_seconds_or_more_starts_again_at_100ms_not_at_once() -> None:
    assert delays([0.5, 0.5, 0.5, 10.0, 0.5, 0.5, 12.0]) == [0.1, 0.2, 0.4, 0.1, 0.2, 0.4, 0.1]


def test_a_run_just_under_ten_seconds_keeps_doubling() -> None:
    assert delays([0.5, 9.99]) == [0.1, 0.2]


def test_the_backoff_does_not_depend_on_the_restart_count() -> None:
    # A container restarted 500 times, with long runs between, waits 100 ms, not a minute.
    assert next_restart_delay(0.0, 30.0) == 0.1
    assert next_restart_delay(60.0, 30.0) == 0.1
