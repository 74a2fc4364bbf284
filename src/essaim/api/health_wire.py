"""Health checks on the wire: `Healthcheck` in a create body and in `Config`, and
`State.Health` in inspect, with Docker's field names and nanosecond durations.
"""

from __future__ import annotations

from typing import Any

from essaim.errors import InvalidParameter
from essaim.model.container import Container
from essaim.model.health import HealthState
from essaim.model.image import HealthConfig

_DURATIONS = ("Interval", "Timeout", "StartPeriod", "StartInterval")
# dockerd refuses durations under a millisecond (except 0, "inherit").
_MIN_DURATION = 10**6


def parse_healthcheck(value: Any) -> HealthConfig | None:
    """A create body's `Healthcheck`, validated as dockerd does."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidParameter("json: cannot unmarshal Healthcheck: expected an object")
    test = value.get("Test") or []
    if not isinstance(test, list) or not all(isinstance(t, str) for t in test):
        raise InvalidParameter("json: cannot unmarshal Healthcheck.Test: expected strings")
    numbers: dict[str, int] = {}
    for name in (*_DURATIONS, "Retries"):
        raw = value.get(name) or 0
        if not isinstance(raw, int) or raw < 0:
            what = "Retries" if name == "Retries" else name
            raise InvalidParameter(f"{what} in Healthcheck cannot be negative")
        if name in _DURATIONS and 0 < raw < _MIN_DURATION:
            raise InvalidParameter(f"{name} in Healthcheck cannot be less than 1ms")
        numbers[name] = raw
    return HealthConfig(
        test=list(test),
        interval=numbers["Interval"],
        timeout=numbers["Timeout"],
        start_period=numbers["StartPeriod"],
        start_interval=numbers["StartInterval"],
        retries=numbers["Retries"],
    )


def healthcheck_wire(config: HealthConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"Test": list(config.test)}
    for name, number in (
        ("Interval", config.interval),
        ("Timeout", config.timeout),
        ("StartPeriod", config.start_period),
        ("StartInterval", config.start_interval),
        ("Retries", config.retries),
    ):
        if number:
            out[name] = number
    return out


def health_state_wire(health: HealthState) -> dict[str, Any]:
    return {
        "Status": health.status,
        "FailingStreak": health.failing_streak,
        "Log": [
            {"Start": e.start, "End": e.end, "ExitCode": e.exit_code, "Output": e.output}
            for e in health.log
        ],
    }


def inspect_health(container: Container) -> dict[str, Any]:
    """`State.Health`, present only for a container that has a health check."""
    health = container.state.health
    return {} if health is None else {"Health": health_state_wire(health)}


def config_healthcheck(container: Container) -> dict[str, Any]:
    """`Config.Healthcheck`, present only when set (at create or from the image)."""
    config = container.config.healthcheck
    return {} if config is None else {"Healthcheck": healthcheck_wire(config)}


def health_filter_value(container: Container) -> str:
    """What `docker ps --filter health=` compares: starting, healthy, unhealthy or none."""
    health = container.state.health
    return "none" if health is None else health.status
