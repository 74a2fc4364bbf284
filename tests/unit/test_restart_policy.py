"""Docker's restart policies: which `create` accepts, which exits restart the container
(no, always, on-failure[:N], unless-stopped; never after a user's stop), and the back-off."""

from __future__ import annotations

import pytest

from essaim.engine.restart_policy import (
    RESTART_DELAY_MAX,
    restart_delay,
    should_restart,
    validate_restart_policy,
)
from essaim.errors import InvalidParameter
from essaim.model.container import ContainerState, RestartPolicy


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


def test_backoff_starts_at_100ms_and_doubles_per_restart() -> None:
    assert [restart_delay(n, ran_for=0.5) for n in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2]


def test_backoff_stops_at_a_minute() -> None:
    assert restart_delay(9, ran_for=0.5) == pytest.approx(51.2)
    assert restart_delay(10, ran_for=0.5) == RESTART_DELAY_MAX == 60.0
    assert restart_delay(30, ran_for=0.5) == 60.0


def test_backoff_survives_a_container_that_restarted_thousands_of_times() -> None:
    # 0.1 * 2**1024 does not fit a float: the delay must stay a minute, not raise.
    assert restart_delay(1024, ran_for=0.5) == 60.0
    assert restart_delay(100_000, ran_for=0.5) == 60.0


def test_a_run_of_more_than_ten_seconds_restarts_at_once() -> None:
    assert restart_delay(8, ran_for=10.5) == 0.0
