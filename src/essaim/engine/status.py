"""Human status text for `docker ps` ("Up 2 seconds", "Exited (0) 3 minutes ago"),
following Docker's go-units HumanDuration wording.
"""

from __future__ import annotations

from essaim.model.container import (
    CREATED,
    DEAD,
    EXITED,
    PAUSED,
    REMOVING,
    RESTARTING,
    RUNNING,
    Container,
)  # fmt: skip
from essaim.model.health import STARTING
from essaim.model.rfc3339 import unix_seconds


def human_duration(seconds: float) -> str:
    if seconds < 1:
        return "Less than a second"
    if seconds < 2:
        return "1 second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    minutes = seconds / 60
    if round(minutes) == 1:
        return "About a minute"
    if minutes < 60:
        return f"{int(minutes)} minutes"
    hours = round(seconds / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def status_text(container: Container, now: float) -> str:
    state = container.state
    if state.status in (RUNNING, PAUSED):
        text = "Up " + human_duration(now - unix_seconds(state.started_at))
        if state.status == PAUSED:
            return text + " (Paused)"
        if state.health is not None:
            shown = "health: starting" if state.health.status == STARTING else state.health.status
            return f"{text} ({shown})"
        return text
    if state.status == RESTARTING:
        ago = human_duration(now - unix_seconds(state.finished_at))
        return f"Restarting ({state.exit_code}) {ago} ago"
    if state.status == REMOVING:
        return "Removal In Progress"
    if state.status == DEAD:
        return "Dead"
    if state.status == CREATED:
        return "Created"
    if state.status == EXITED:
        ago = human_duration(now - unix_seconds(state.finished_at))
        return f"Exited ({state.exit_code}) {ago} ago"
    return state.status
