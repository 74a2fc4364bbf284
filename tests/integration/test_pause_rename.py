"""`docker pause`/`unpause` (the container freezes and thaws, its state and events say
so, stop and kill still work) and `docker rename` (the new name at once, Docker's errors).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator

import docker
import pytest

from tests.integration.daemon import EssaimDaemon, Result

TICKER = "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"


def ok(result: Result) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@pytest.fixture
def ticker(daemon: EssaimDaemon) -> Iterator[str]:
    name = unique("ticker")
    ok(daemon.docker("run", "-d", "--name", name, "busybox", "sh", "-c", TICKER))
    yield name
    daemon.docker("rm", "-f", name)


def inspect(daemon: EssaimDaemon, ref: str) -> dict[str, object]:
    data = json.loads(ok(daemon.docker("inspect", ref)))
    assert isinstance(data, list)
    found: dict[str, object] = data[0]
    return found


def past_events(daemon: EssaimDaemon, since: str, filters: list[str], fmt: str) -> str:
    args = ["events", "--since", since, "--until", str(time.time() + 0.5), "--format", fmt]
    for item in filters:
        args += ["--filter", item]
    return ok(daemon.docker(*args))


def log_lines(daemon: EssaimDaemon, ref: str) -> int:
    return len(ok(daemon.docker("logs", ref)).splitlines())


def test_pause_freezes_and_unpause_resumes(daemon: EssaimDaemon, ticker: str) -> None:
    assert ok(daemon.docker("pause", ticker)).strip() == ticker
    state = inspect(daemon, ticker)["State"]
    assert isinstance(state, dict)
    assert (state["Status"], state["Paused"], state["Running"]) == ("paused", True, True)
    ps = ok(daemon.docker("ps", "--filter", f"name={ticker}", "--format", "{{.Status}}"))
    assert ps.strip().endswith("(Paused)")
    frozen = log_lines(daemon, ticker)
    time.sleep(0.6)
    assert log_lines(daemon, ticker) == frozen
    assert ok(daemon.docker("unpause", ticker)).strip() == ticker
    state = inspect(daemon, ticker)["State"]
    assert isinstance(state, dict)
    assert (state["Status"], state["Paused"]) == ("running", False)
    deadline = time.monotonic() + 5
    while log_lines(daemon, ticker) <= frozen:
        assert time.monotonic() < deadline, "the log did not grow after unpause"
        time.sleep(0.1)


def test_pause_errors_in_dockers_words(daemon: EssaimDaemon, ticker: str) -> None:
    cid = inspect(daemon, ticker)["Id"]
    ok(daemon.docker("pause", ticker))
    again = daemon.docker("pause", ticker)
    assert again.returncode != 0
    assert f"container {cid} is already paused" in again.stderr
    start = daemon.docker("start", ticker)
    assert "cannot start a paused container, try unpause instead" in start.stderr
    rm = daemon.docker("rm", ticker)
    assert "container is paused and must be unpaused first" in rm.stderr
    ok(daemon.docker("unpause", ticker))
    not_paused = daemon.docker("unpause", ticker)
    assert f"Container {cid} is not paused" in not_paused.stderr
    stopped = unique("stopped")
    ok(daemon.docker("create", "--name", stopped, "busybox", "true"))
    try:
        refused = daemon.docker("pause", stopped)
        assert refused.returncode != 0
        assert "is not running" in refused.stderr
    finally:
        daemon.docker("rm", stopped)


def test_pause_status_codes_through_sdk(daemon: EssaimDaemon) -> None:
    client = daemon.client()
    container = client.containers.create("busybox", ["sleep", "30"])
    try:
        with pytest.raises(docker.errors.APIError) as not_running:
            container.pause()
        assert not_running.value.status_code == 409
        container.start()
        container.pause()
        with pytest.raises(docker.errors.APIError) as already:
            container.pause()
        assert already.value.status_code == 409
        container.unpause()
        with pytest.raises(docker.errors.APIError) as not_paused:
            container.unpause()
        assert not_paused.value.status_code == 409
    finally:
        container.remove(force=True)


def test_stop_and_kill_a_paused_container(daemon: EssaimDaemon) -> None:
    names = [unique("frozen"), unique("frozen")]
    for name in names:
        ok(daemon.docker("run", "-d", "--name", name, "busybox", "sleep", "300"))
        ok(daemon.docker("pause", name))
    try:
        ok(daemon.docker("stop", "-t", "1", names[0]))
        ok(daemon.docker("kill", names[1]))
        ok(daemon.docker("wait", names[1]))
        for name in names:
            state = inspect(daemon, name)["State"]
            assert isinstance(state, dict)
            assert (state["Status"], state["Paused"]) == ("exited", False)
        paused = unique("frozen")
        ok(daemon.docker("run", "-d", "--name", paused, "busybox", "sleep", "300"))
        ok(daemon.docker("pause", paused))
        ok(daemon.docker("rm", "-f", paused))
    finally:
        daemon.docker("rm", "-f", *names)


def test_pause_and_unpause_events(daemon: EssaimDaemon, ticker: str) -> None:
    since = str(time.time() - 1)
    ok(daemon.docker("pause", ticker))
    ok(daemon.docker("unpause", ticker))
    filters = [f"container={ticker}", "event=pause", "event=unpause"]
    events = past_events(daemon, since, filters, "{{.Action}}")
    assert events.split() == ["pause", "unpause"]


def test_rename_running_container(daemon: EssaimDaemon, ticker: str) -> None:
    cid = inspect(daemon, ticker)["Id"]
    new = unique("renamed")
    since = str(time.time() - 1)
    assert ok(daemon.docker("rename", ticker, new)) == ""
    try:
        assert inspect(daemon, new)["Id"] == cid
        assert inspect(daemon, new)["Name"] == "/" + new
        assert daemon.docker("inspect", ticker).returncode != 0
        # The old name is free at once.
        ok(daemon.docker("create", "--name", ticker, "busybox", "true"))
        daemon.docker("rm", ticker)
        events = past_events(daemon, since, ["event=rename"], "{{json .Actor.Attributes}}")
        attributes = json.loads(events.splitlines()[-1])
        assert attributes["name"] == new
        assert attributes["oldName"] == "/" + ticker
    finally:
        daemon.docker("rm", "-f", new)


def test_rename_errors(daemon: EssaimDaemon, ticker: str) -> None:
    other = unique("other")
    ok(daemon.docker("create", "--name", other, "busybox", "true"))
    try:
        other_id = inspect(daemon, other)["Id"]
        taken = daemon.docker("rename", ticker, other)
        assert taken.returncode != 0
        assert (
            f'Conflict. The container name "/{other}" is already in use by container "{other_id}"'
        ) in taken.stderr
        bad = daemon.docker("rename", ticker, "no/slashes")
        assert "Invalid container name (no/slashes)" in bad.stderr
        same = daemon.docker("rename", ticker, ticker)
        assert "Renaming a container with the same name as its current name" in same.stderr
        missing = daemon.docker("rename", "no-such-container-x", "whatever")
        assert "No such container: no-such-container-x" in missing.stderr
    finally:
        daemon.docker("rm", other)


def test_rename_status_codes_through_sdk(daemon: EssaimDaemon) -> None:
    client = daemon.client()
    first = client.containers.create("busybox", ["true"], name=unique("first"))
    second = client.containers.create("busybox", ["true"], name=unique("second"))
    try:
        with pytest.raises(docker.errors.APIError) as conflict:
            first.rename(second.name)
        assert conflict.value.status_code == 409
        with pytest.raises(docker.errors.APIError) as invalid:
            first.rename("bad name")
        assert invalid.value.status_code == 400
        renamed = unique("third")
        first.rename(renamed)
        assert client.containers.get(renamed).id == first.id
    finally:
        first.remove(force=True)
        second.remove(force=True)


def test_rename_survives_a_daemon_restart(own_daemon: EssaimDaemon) -> None:
    name, new = unique("before"), unique("after")
    ok(own_daemon.docker("create", "--name", name, "busybox", "true"))
    ok(own_daemon.docker("rename", name, new))
    own_daemon.stop()
    own_daemon.start()
    assert inspect(own_daemon, new)["Name"] == "/" + new
    assert own_daemon.docker("inspect", name).returncode != 0
