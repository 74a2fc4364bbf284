"""`docker container prune`: stopped containers go (running and paused ones stay), the
label, label! and until filters select, and the report and event say what went.
"""

from __future__ import annotations

import secrets
import time

import docker
import pytest

from tests.integration.daemon import EssaimDaemon, Result


def ok(result: Result) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def create(daemon: EssaimDaemon, *args: str, run: bool = False) -> str:
    name = f"prune-{secrets.token_hex(4)}"
    verb = ["run", "-d"] if run else ["create"]
    ok(daemon.docker(*verb, "--name", name, *args))
    return ok(daemon.docker("inspect", "-f", "{{.Id}}", name)).strip()


def existing(daemon: EssaimDaemon) -> set[str]:
    return set(ok(daemon.docker("ps", "-aq", "--no-trunc")).split())


def test_prune_removes_only_stopped_containers(own_daemon: EssaimDaemon) -> None:
    daemon = own_daemon
    created = create(daemon, "busybox", "true")
    exited = create(daemon, "busybox", "sh", "-c", "echo x > /written", run=True)
    ok(daemon.docker("wait", exited))
    running = create(daemon, "busybox", "sleep", "300", run=True)
    paused = create(daemon, "busybox", "sleep", "300", run=True)
    ok(daemon.docker("pause", paused))
    since = str(time.time() - 1)
    out = ok(daemon.docker("container", "prune", "-f"))
    assert "Deleted Containers:" in out
    assert created in out and exited in out
    assert "Total reclaimed space:" in out
    assert existing(daemon) == {running, paused}
    until = str(time.time() + 0.5)
    events = ok(
        daemon.docker("events", "--since", since, "--until", until, "--filter", "event=prune")
    )
    assert "reclaimed=" in events.splitlines()[-1]
    empty = daemon.client().containers.prune()
    assert empty == {"ContainersDeleted": None, "SpaceReclaimed": 0}


def test_prune_filters(own_daemon: EssaimDaemon) -> None:
    daemon = own_daemon
    keep = create(daemon, "--label", "keep=yes", "busybox", "true")
    tier_db = create(daemon, "--label", "tier=db", "busybox", "true")
    tier_web = create(daemon, "--label", "tier=web", "busybox", "true")
    ok(daemon.docker("container", "prune", "-f", "--filter", "label=tier=db"))
    assert existing(daemon) == {keep, tier_web}
    ok(daemon.docker("container", "prune", "-f", "--filter", "label!=keep"))
    assert existing(daemon) == {keep}
    ok(daemon.docker("container", "prune", "-f", "--filter", "until=1h"))
    assert existing(daemon) == {keep}
    assert tier_db not in existing(daemon)
    client = daemon.client()
    report = client.containers.prune(filters={"until": str(int(time.time()) + 60)})
    assert report["ContainersDeleted"] == [keep]
    assert report["SpaceReclaimed"] >= 0


def test_prune_refuses_unknown_filters(daemon: EssaimDaemon) -> None:
    bad = daemon.docker("container", "prune", "-f", "--filter", "status=exited")
    assert bad.returncode != 0
    assert "invalid filter 'status'" in bad.stderr
    with pytest.raises(docker.errors.APIError) as refused:
        daemon.client().containers.prune(filters={"until": "yesterday-ish"})
    assert refused.value.status_code == 400
