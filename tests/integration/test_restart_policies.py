"""Restart policies as dockerd applies them: the 100 ms back-off doubling per restart,
`on-failure:N`, a user's stop, `docker restart`, and the policies at a daemon start,
including one after a simulated host reboot (every container process gone)."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import time
from collections.abc import Callable

import docker
import pytest

from tests.integration.daemon import EssaimDaemon

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"{prefix}-{time.monotonic_ns()}"


def inspect(daemon: EssaimDaemon, ref: str, template: str) -> str:
    result = daemon.docker("inspect", "-f", template, ref)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def restart_count(daemon: EssaimDaemon, ref: str) -> int:
    return int(inspect(daemon, ref, "{{.RestartCount}}"))


def wait_until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def events(daemon: EssaimDaemon, cid: str, since: float) -> list[tuple[str, float]]:
    """(action, seconds) of the container's events from `since` until now."""
    result = daemon.docker(
        "events", "--since", f"{since:.3f}", "--until", f"{time.time():.3f}",
        "--filter", f"container={cid}", "--format", "{{json .}}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = []
    for line in result.stdout.splitlines():
        event = json.loads(line)
        out.append((event["Action"], event["timeNano"] / 1e9))
    return out


def test_always_backs_off_from_100ms_doubling_and_shows_restarting(
    daemon: EssaimDaemon,
) -> None:
    since = time.time() - 1
    run = daemon.docker("run", "-d", "--restart", "always", "busybox", "sh", "-c", "exit 3")
    cid = run.stdout.strip()
    assert run.returncode == 0, run.stderr
    # After the 5th exit the delay is 1.6 s: long enough to see it waiting.
    wait_until(lambda: restart_count(daemon, cid) >= 5)
    shown = daemon.docker("ps", "--filter", f"id={cid}", "--format", "{{.Status}}")
    assert shown.stdout.startswith("Restarting (3)"), shown.stdout
    state = json.loads(inspect(daemon, cid, "{{json .State}}"))
    assert state["Restarting"] and state["Running"] and state["ExitCode"] == 3

    seen = events(daemon, cid, since)
    actions = [action for action, _ in seen]
    assert "restart" not in actions  # dockerd: die then start, `restart` is the command's
    # The wait between each `die` and the `start` after it: 100, 200, 400, 800 ms
    # plus the time a start takes. Orderings and generous bounds only.
    gaps = [
        start - die
        for (a, die), (b, start) in itertools.pairwise(seen)
        if a == "die" and b == "start"
    ]
    assert len(gaps) >= 4, seen
    assert gaps[0] >= 0.09 and gaps[2] >= 0.39 and gaps[3] >= 0.79
    assert gaps[3] > gaps[1] and gaps[2] > gaps[0]
    assert gaps[0] < 5

    assert daemon.docker("stop", cid).returncode == 0
    count = restart_count(daemon, cid)
    time.sleep(2)  # longer than the 1.6 s or 3.2 s it would have waited
    assert inspect(daemon, cid, "{{.State.Status}}") == "exited"
    assert restart_count(daemon, cid) == count
    daemon.docker("rm", "-f", cid)


def test_rm_force_of_a_restarting_container_removes_it(daemon: EssaimDaemon) -> None:
    cid = daemon.docker("run", "-d", "--restart", "always", "busybox", "false").stdout.strip()
    wait_until(lambda: restart_count(daemon, cid) >= 4)
    wait_until(lambda: inspect(daemon, cid, "{{.State.Status}}") == "restarting")
    refused = daemon.docker("rm", cid)
    assert refused.returncode != 0
    assert "container is restarting: stop the container before removing" in refused.stderr
    assert daemon.docker("rm", "-f", cid).returncode == 0
    assert daemon.docker("version").returncode == 0  # the daemon is unharmed
    assert daemon.docker("inspect", cid).returncode != 0


def test_on_failure_retries_as_many_times_as_asked(daemon: EssaimDaemon) -> None:
    name = unique("retry")
    run = daemon.docker(
        "run", "-d", "--name", name, "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 4"
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    wait_until(lambda: inspect(daemon, name, "{{.State.Status}}") == "exited"
               and restart_count(daemon, name) == 2)  # fmt: skip
    time.sleep(1)  # a third restart would have come after 400 ms
    assert restart_count(daemon, name) == 2
    assert inspect(daemon, name, "{{.State.ExitCode}}") == "4"
    policy = json.loads(inspect(daemon, name, "{{json .HostConfig.RestartPolicy}}"))
    assert policy == {"Name": "on-failure", "MaximumRetryCount": 2}


def test_on_failure_leaves_a_clean_exit_alone(daemon: EssaimDaemon) -> None:
    name = unique("clean")
    daemon.docker("run", "--name", name, "--restart", "on-failure", "busybox", "true")
    time.sleep(0.5)
    assert inspect(daemon, name, "{{.State.Status}} {{.RestartCount}}") == "exited 0"


def test_a_start_by_the_user_resets_the_retries(daemon: EssaimDaemon) -> None:
    name = unique("reset")
    daemon.docker("run", "-d", "--name", name, "--restart", "on-failure:1", "busybox", "false")
    wait_until(lambda: inspect(daemon, name, "{{.State.Status}}") == "exited"
               and restart_count(daemon, name) == 1)  # fmt: skip
    cid = inspect(daemon, name, "{{.Id}}")
    since = time.time()
    assert daemon.docker("start", name).returncode == 0
    # The count starts again from 0: one more restart by the policy after this start.
    wait_until(lambda: [a for a, _ in events(daemon, cid, since)].count("start") == 2)
    wait_until(lambda: inspect(daemon, name, "{{.State.Status}}") == "exited")
    assert restart_count(daemon, name) == 1


def test_the_daemon_refuses_a_restart_policy_with_auto_remove(daemon: EssaimDaemon) -> None:
    # The CLI refuses `--rm --restart` itself; other clients hear it from the daemon.
    client = daemon.client()
    try:
        host_config = client.api.create_host_config(
            auto_remove=True, restart_policy={"Name": "always"}
        )
        with pytest.raises(docker.errors.APIError) as refused:
            client.api.create_container("busybox", ["true"], host_config=host_config)
    finally:
        client.close()
    assert refused.value.status_code == 400
    assert "can't create 'AutoRemove' container with restart policy" in str(refused.value)


def container_processes(daemon: EssaimDaemon, ref: str) -> list[int]:
    """What a host reboot takes from one container: its conmon and its process."""
    cid = inspect(daemon, ref, "{{.Id}}")
    conmon = daemon.data_root / "containers" / cid / "conmon.pid"
    return [int(conmon.read_text().strip()), int(inspect(daemon, cid, "{{.State.Pid}}"))]


def test_policies_at_a_daemon_start_after_a_simulated_reboot(own_daemon: EssaimDaemon) -> None:
    d = own_daemon

    def run(name: str, policy: str) -> None:
        argv = ["run", "-d", "--name", name, "--restart", policy, "busybox", "sleep", "600"]
        result = d.docker(*argv)
        assert result.returncode == 0, result.stderr

    run("always-stopped", "always")
    run("unless-stopped-stopped", "unless-stopped")
    run("unless-stopped-up", "unless-stopped")
    run("on-failure-up", "on-failure:3")
    run("no-up", "no")
    for name in ("always-stopped", "unless-stopped-stopped"):
        assert d.docker("stop", "-t", "0", name).returncode == 0
    up = ("unless-stopped-up", "on-failure-up", "no-up")
    victims = [pid for name in up for pid in container_processes(d, name)]

    d.kill9()
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    d.start()

    def status(name: str) -> str:
        return inspect(d, name, "{{.State.Status}}")

    for name in ("always-stopped", "unless-stopped-up", "on-failure-up"):
        wait_until(lambda name=name: status(name) == "running")  # type: ignore[misc]
    assert status("unless-stopped-stopped") == "exited"
    assert status("no-up") == "exited"
    for name in ("unless-stopped-up", "on-failure-up"):
        pid = int(inspect(d, name, "{{.State.Pid}}"))
        assert pid > 0 and os.path.exists(f"/proc/{pid}")

    # A daemon start without a reboot leaves running ones running and stopped ones down.
    d.stop()
    d.start()
    assert status("unless-stopped-stopped") == "exited"
    assert status("unless-stopped-up") == "running"
