"""How a stop chooses its signal and grace period: as asked, else the container's own
(`--stop-signal`/STOPSIGNAL, `--stop-timeout`), else Docker's SIGTERM and 10 seconds."""

from __future__ import annotations

import signal

from essaim.engine.stopping import STOPPING_SIGNALS, stop_grace, stop_signal
from essaim.model.container import Container, ContainerConfig, HostConfig


def container(stop_signal: str = "", stop_timeout: int | None = None) -> Container:
    return Container(
        id="d" * 64,
        name="svc",
        created="2026-01-01T00:00:00.000000000Z",
        image_id="sha256:" + "0" * 64,
        config=ContainerConfig(image="busybox", stop_signal=stop_signal, stop_timeout=stop_timeout),
        host_config=HostConfig(),
        path="sleep",
        args=["60"],
    )


def test_stop_signal_as_asked_else_the_containers_else_term() -> None:
    assert stop_signal("HUP", container(stop_signal="SIGQUIT")) == signal.SIGHUP
    assert stop_signal(None, container(stop_signal="SIGQUIT")) == signal.SIGQUIT
    assert stop_signal("", container(stop_signal="usr1")) == signal.SIGUSR1
    assert stop_signal(None, container()) == signal.SIGTERM


def test_grace_as_asked_else_the_containers_else_ten_seconds() -> None:
    assert stop_grace(3, container(stop_timeout=30)) == 3
    assert stop_grace(0, container(stop_timeout=30)) == 0
    assert stop_grace(-1, container()) == -1
    assert stop_grace(None, container(stop_timeout=30)) == 30
    assert stop_grace(None, container()) == 10


def test_kill_with_term_int_or_kill_counts_as_a_stop() -> None:
    assert set(STOPPING_SIGNALS) == {signal.SIGTERM, signal.SIGINT, signal.SIGKILL}
    assert signal.SIGHUP not in STOPPING_SIGNALS
