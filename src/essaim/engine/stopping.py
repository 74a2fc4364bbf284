"""Stopping a container's process: signal names as the API takes them, the signal and
grace period a stop uses, and the sequence (signal, wait, SIGKILL at the deadline).
"""

from __future__ import annotations

import asyncio
import signal as signals
from collections.abc import Callable

from essaim.engine.waiters import ExitStatus
from essaim.errors import InvalidParameter
from essaim.model.container import Container
from essaim.runtime.conmon import SIGNALS, send_signal

DEFAULT_STOP_TIMEOUT = 10
# A kill with one of these is a stop: the restart policy leaves the container down.
STOPPING_SIGNALS = (signals.SIGKILL, signals.SIGTERM, signals.SIGINT)


def parse_signal(value: str | int | None, default: int = signals.SIGKILL) -> int:
    """Signal names with or without SIG, or numbers; Docker's 400 otherwise."""
    if value is None or value == "":
        return default
    if isinstance(value, int) or value.isdigit():
        number = int(value)
        if 0 < number < 65:
            return number
    else:
        name = value.upper().removeprefix("SIG")
        if name in SIGNALS:
            return SIGNALS[name]
    raise InvalidParameter(f"Invalid signal: {value}")


def stop_signal(requested: str | None, container: Container) -> int:
    """The signal asked for, else the container's (`--stop-signal`, STOPSIGNAL), else TERM."""
    return parse_signal(requested or container.config.stop_signal or None, signals.SIGTERM)


def stop_grace(requested: int | None, container: Container) -> int:
    """Seconds before SIGKILL: as asked, else the container's `--stop-timeout`, else 10."""
    if requested is not None:
        return requested
    if container.config.stop_timeout is not None:
        return container.config.stop_timeout
    return DEFAULT_STOP_TIMEOUT


async def signal_until_exit(
    container: Container,
    exited: asyncio.Future[ExitStatus],
    *,
    signal: int,
    grace: int,
    signalled: Callable[[int], None],
) -> None:
    """Send `signal`, then SIGKILL if the process has not exited (`exited`, registered
    before) within `grace` seconds; a negative grace waits for the exit without one.
    `signalled` hears of each signal sent."""
    send_signal(container.state.pid, signal)
    signalled(signal)
    try:
        if grace < 0:
            await exited
        else:
            await asyncio.wait_for(asyncio.shield(exited), grace)
    except TimeoutError:
        send_signal(container.state.pid, signals.SIGKILL)
        signalled(int(signals.SIGKILL))
        await exited
