"""Docker's restart policies (`no`, `always`, `on-failure[:N]`, `unless-stopped`): which
are accepted, whether an exit (or a daemon start) restarts a container, after what delay.
"""

from __future__ import annotations

from essaim.errors import InvalidParameter
from essaim.model.container import ContainerState, RestartPolicy

POLICIES = ("", "no", "always", "unless-stopped", "on-failure")
# moby's restartmanager: 100 ms, doubled after each restart, at most a minute, and back
# to 100 ms after a run of at least 10 s.
RESTART_DELAY_MIN = 0.1
RESTART_DELAY_MAX = 60.0
RESET_AFTER = 10.0


def validate_restart_policy(policy: RestartPolicy, *, auto_remove: bool) -> None:
    """Docker's 400s for a policy `create` cannot take."""
    if policy.name not in POLICIES:
        raise InvalidParameter(
            f"invalid restart policy: unknown policy '{policy.name}'; "
            "use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
        )
    if policy.maximum_retry_count < 0:
        raise InvalidParameter("invalid restart policy: maximum retry count cannot be negative")
    if policy.maximum_retry_count and policy.name != "on-failure":
        raise InvalidParameter(
            "invalid restart policy: maximum retry count can only be used with 'on-failure'"
        )
    if auto_remove and policy.name not in ("", "no"):
        raise InvalidParameter("can't create 'AutoRemove' container with restart policy")


def should_restart(policy: RestartPolicy, state: ContainerState, *, at_boot: bool = False) -> bool:
    """Whether the run that ended (`state` holds its exit) starts again.

    When a run ends, a container the user stopped stays down whatever its policy (dockerd
    cancels its restart manager). At a daemon start dockerd asks afresh, and only
    `unless-stopped` remembers the user's stop. `on-failure` counts the restarts since the
    last start by the user against its maximum (0: no maximum)."""
    if state.stopped_by_user and not at_boot:
        return False
    if policy.name == "always":
        return True
    if policy.name == "unless-stopped":
        return not state.stopped_by_user
    if policy.name == "on-failure" and state.exit_code != 0:
        return policy.maximum_retry_count == 0 or state.restart_count < policy.maximum_retry_count
    return False


def next_restart_delay(previous: float, ran_for: float) -> float:
    """Seconds to wait before the next restart, given the delay before the previous one
    (0 for none since the user started it) and how long the run that ended lasted."""
    if ran_for >= RESET_AFTER:
        previous = 0.0
    if previous <= 0:
        return RESTART_DELAY_MIN
    return min(previous * 2, RESTART_DELAY_MAX)
