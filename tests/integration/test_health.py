"""Health checks with the real CLI: --health-* flags, an image HEALTHCHECK, --no-healthcheck,
timeouts; statuses in inspect and ps, the ps filter and the health_status events."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from tests.integration.daemon import EssaimDaemon


def wait_for(predicate: Callable[[], bool], seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.1)
    return predicate()


def health(d: EssaimDaemon, name: str) -> dict[str, object] | None:
    shown = d.docker("inspect", "-f", "{{json .State.Health}}", name).stdout.strip()
    value = json.loads(shown)
    return value if isinstance(value, dict) else None


def status_of(d: EssaimDaemon, name: str) -> str:
    return str((health(d, name) or {}).get("Status"))


def test_health_follows_the_probe_results(daemon: EssaimDaemon) -> None:
    name = f"health-{time.monotonic_ns()}"
    since = str(time.time() - 1)
    script = "sleep 1; touch /tmp/ok; sleep 3; rm /tmp/ok; sleep 1000"
    run = daemon.docker(
        "run", "-d", "--name", name, "--health-cmd", "test -e /tmp/ok && echo fine",
        "--health-interval", "200ms", "--health-retries", "2", "busybox", "sh", "-c", script,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "(health: starting)" in daemon.docker("ps", "--format", "{{.Status}}", "-f",
                                                 f"name={name}").stdout  # fmt: skip
    assert wait_for(lambda: status_of(daemon, name) == "healthy")
    listed = daemon.docker("ps", "--filter", "health=healthy", "--format", "{{.Names}}")
    assert name in listed.stdout.split()
    assert (
        "(healthy)" in daemon.docker("ps", "-f", f"name={name}", "--format", "{{.Status}}").stdout
    )
    state = health(daemon, name)
    assert state is not None and state["FailingStreak"] == 0
    log = state["Log"]
    assert isinstance(log, list) and log[-1]["ExitCode"] == 0 and log[-1]["Output"] == "fine\n"
    assert wait_for(lambda: status_of(daemon, name) == "unhealthy")
    state = health(daemon, name)
    assert state is not None and int(str(state["FailingStreak"])) >= 2
    events = daemon.docker(
        "events", "--since", since, "--until", str(time.time()),
        "--filter", f"container={name}", "--filter", "event=health_status",
        "--format", "{{.Action}}",
    ).stdout.splitlines()  # fmt: skip
    assert "health_status: healthy" in events
    assert events[-1] == "health_status: unhealthy"
    probes = daemon.docker(
        "events", "--since", since, "--until", str(time.time()),
        "--filter", f"container={name}", "--filter", "event=exec_create",
        "--filter", "event=exec_start", "--filter", "event=exec_die",
        "--format", "{{.Action}} {{.Actor.Attributes.execID}}",
    ).stdout.splitlines()  # fmt: skip
    # Each probe is an exec to dockerd: created, started and ended, under one id.
    first = probes[0].split()[-1]
    assert probes[:3] == [
        f"exec_create: /bin/sh -c test -e /tmp/ok && echo fine {first}",
        f"exec_start: /bin/sh -c test -e /tmp/ok && echo fine {first}",
        f"exec_die {first}",
    ]
    inspect = json.loads(daemon.docker("inspect", name).stdout)[0]
    assert inspect["Config"]["Healthcheck"]["Test"] == ["CMD-SHELL", "test -e /tmp/ok && echo fine"]
    assert inspect["Config"]["Healthcheck"]["Interval"] == 200_000_000
    daemon.docker("rm", "-f", name)


def test_a_probe_past_its_timeout_fails(daemon: EssaimDaemon) -> None:
    name = f"slow-{time.monotonic_ns()}"
    run = daemon.docker(
        "run", "-d", "--name", name, "--health-cmd", "sleep 10", "--health-interval", "100ms",
        "--health-timeout", "300ms", "--health-retries", "1", "busybox", "sleep", "1000",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert wait_for(lambda: status_of(daemon, name) == "unhealthy")
    state = health(daemon, name)
    assert state is not None
    last = state["Log"][-1]  # type: ignore[index]
    assert last["ExitCode"] == -1
    assert "Health check exceeded timeout" in last["Output"]
    daemon.docker("rm", "-f", name)


def test_image_healthcheck_and_no_healthcheck(daemon: EssaimDaemon, tmp_path: Path) -> None:
    from essaim.image.busybox import build_busybox_layer

    layer = tmp_path / "layer.tar"
    build_busybox_layer(layer)
    tag = f"hc-{time.monotonic_ns()}:1"
    imported = daemon.docker(
        "import", "--change", "HEALTHCHECK --interval=200ms CMD true",
        "--change", 'CMD ["sleep", "1000"]', str(layer), tag,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    with_check = daemon.docker("run", "-d", tag).stdout.strip()
    without = daemon.docker("run", "-d", "--no-healthcheck", tag).stdout.strip()
    assert wait_for(lambda: status_of(daemon, with_check) == "healthy")
    assert health(daemon, without) is None
    status = daemon.docker("inspect", "-f", "{{.State.Status}}", without).stdout.strip()
    assert status == "running"
    listed = daemon.docker("ps", "-q", "--no-trunc", "--filter", "health=none").stdout.split()
    assert without in listed and with_check not in listed
    daemon.docker("rm", "-f", with_check, without)
    daemon.docker("rmi", tag)
