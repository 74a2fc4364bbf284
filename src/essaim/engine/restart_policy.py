"""Docker's restart policies (`no`, `always`, `on-failure[:N]`, `unless-stopped`): which
are accepted at create, whether an exit restarts the container, and after what delay.
"""

from __future__ import annotations

import math

from essaim.errors import InvalidParameter
from essaim.model.container import ContainerState, RestartPolicy

POLICIES = ("", "no", "always", "unless-stopped", "on-failure")
# Restart policy back-off, as dockerd: 100 ms doubling, reset after 10 s of running.
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
    if auto_remove and policy.name not in ("", "no"):
        raise InvalidParameter("can't create 'AutoRemove' container with restart policy")


def should_restart(policy: RestartPolicy, state: ContainerState) -> bool:
    """Whether the run that just ended (`state` holds its exit) starts again. A container
    the user stopped or killed stays down whatever its policy; `on-failure` counts the
    restarts so far against its maximum (0: no maximum)."""
    if state.stopped_by_user:
        return False
    if policy.name in ("always", "unless-stopped"):
        return True
    if policy.name == "on-failure" and state.exit_code != 0:
        return policy.maximum_retry_count == 0 or state.restart_count < policy.maximum_retry_count
    return False


def restart_delay(restart_count: int, ran_for: float) -> float:
    """Seconds to wait before the next start: none after a run of more than 10 s,
    otherwise 100 ms doubled per restart so far, at most a minute."""
    if ran_for > RESET_AFTER:
        return 0.0
    # The exponent stops where the maximum is reached: 0.1 * 2**1024 overflows a float.
    doublings = min(restart_count, _DOUBLINGS_TO_MAX)
    return min(RESTART_DELAY_MIN * 2.0**doublings, RESTART_DELAY_MAX)


_DOUBLINGS_TO_MAX = math.ceil(math.log2(RESTART_DELAY_MAX / RESTART_DELAY_MIN))
