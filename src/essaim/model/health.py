"""A container's health as Docker reports it (`State.Health`), and the pure rules that move
it: probe results kept (the last five), failing streaks, starting/healthy/unhealthy.
"""

from __future__ import annotations

import msgspec

from essaim.model.image import HealthConfig

STARTING = "starting"
HEALTHY = "healthy"
UNHEALTHY = "unhealthy"

# Docker's defaults when the HEALTHCHECK leaves a value at zero.
DEFAULT_INTERVAL = 30 * 10**9
DEFAULT_TIMEOUT = 30 * 10**9
DEFAULT_START_INTERVAL = 5 * 10**9
DEFAULT_RETRIES = 3
# What dockerd keeps of the probes: the last five, 4 KiB of output each.
MAX_LOG_ENTRIES = 5
MAX_OUTPUT = 4096


class HealthLogEntry(msgspec.Struct, kw_only=True):
    start: str  # RFC 3339 with nanoseconds
    end: str
    exit_code: int
    output: str


class HealthState(msgspec.Struct, kw_only=True):
    status: str = STARTING
    failing_streak: int = 0
    log: list[HealthLogEntry] = []


def probe_command(config: HealthConfig | None) -> list[str] | None:
    """The argv a probe runs, or None when the container has no health check."""
    if config is None or not config.test or config.test[0] == "NONE":
        return None
    kind, rest = config.test[0], config.test[1:]
    if kind == "CMD" and rest:
        return rest
    if kind == "CMD-SHELL" and rest:
        return ["/bin/sh", "-c", " ".join(rest)]
    return None


def interval_ns(config: HealthConfig, health: HealthState, *, in_start_period: bool) -> int:
    """The wait before the next probe: the start interval while still starting within
    the start period, the interval otherwise."""
    if in_start_period and health.status == STARTING:
        return config.start_interval or DEFAULT_START_INTERVAL
    return config.interval or DEFAULT_INTERVAL


def record_probe(
    health: HealthState, entry: HealthLogEntry, *, retries: int, in_start_period: bool
) -> bool:
    """Fold one probe result into `health`; True when its status changed. Failures while
    still starting within the start period do not count, as in Docker."""
    before = health.status
    health.log = [*health.log, entry][-MAX_LOG_ENTRIES:]
    if entry.exit_code == 0:
        health.failing_streak = 0
        health.status = HEALTHY
    elif not (health.status == STARTING and in_start_period):
        health.failing_streak += 1
        if health.failing_streak >= (retries or DEFAULT_RETRIES):
            health.status = UNHEALTHY
    return health.status != before
