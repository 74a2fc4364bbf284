"""The everyday lifecycle through the docker CLI: ps, logs, stop, restart, kill, rm,
and Docker's errors for bad input, leaving nothing half-created behind.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.integration.daemon import EssaimDaemon


@pytest.fixture
def web(daemon: EssaimDaemon) -> str:
    name = f"web-{time.monotonic_ns()}"
    script = "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.2; done"
    result = daemon.docker("run", "-d", "--name", name, "busybox", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    yield name
    daemon.docker("rm", "-f", name)


def test_ps_lists_running_container_with_status(daemon: EssaimDaemon, web: str) -> None:
    result = daemon.docker("ps", "--format", "{{.Names}}|{{.Status}}|{{.Image}}")
    rows = [line.split("|") for line in result.stdout.splitlines()]
    row = next(r for r in rows if r[0] == web)
    assert row[1].startswith("Up ")
    assert row[2] == "busybox"


def test_ps_filters_by_name_status_and_label(daemon: EssaimDaemon) -> None:
    name = f"labelled-{time.monotonic_ns()}"
    assert (
        daemon.docker("create", "--name", name, "--label", "tier=db", "busybox", "true").returncode
        == 0
    )
    try:
        by_label = daemon.docker("ps", "-a", "--filter", "label=tier=db", "--format", "{{.Names}}")
        assert by_label.stdout.split() == [name]
        by_status = daemon.docker(
            "ps", "-a", "--filter", "status=created", "--format", "{{.Names}}"
        )
        assert name in by_status.stdout.split()
        running = daemon.docker("ps", "--filter", f"name={name}", "--format", "{{.Names}}")
        assert running.stdout.strip() == ""
        bad = daemon.docker("ps", "--filter", "status=sleeping")
        assert bad.returncode != 0
        assert "Invalid filter 'status=sleeping'" in bad.stderr
    finally:
        daemon.docker("rm", name)


def test_logs_follow_streams_new_lines(daemon: EssaimDaemon, web: str) -> None:
    proc = subprocess.Popen(
        ["docker", "logs", "-f", web], env=daemon.env(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        seen = [proc.stdout.readline() for _ in range(8)]
    finally:
        proc.kill()
        proc.wait()
    numbers = [int(line.split()[1]) for line in seen]
    assert numbers == list(range(numbers[0], numbers[0] + 8))


def test_logs_tail_and_timestamps(daemon: EssaimDaemon, web: str) -> None:
    time.sleep(0.7)
    result = daemon.docker("logs", "--tail", "2", "-t", web)
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    stamp, text = lines[0].split(" ", 1)
    assert stamp.endswith("Z") and "T" in stamp
    assert text.startswith("line ")


def test_logs_since_and_until_select_a_window(daemon: EssaimDaemon) -> None:
    script = "echo early; sleep 1.2; echo late"
    cid = daemon.docker("run", "-d", "busybox", "sh", "-c", script).stdout.strip()
    try:
        assert daemon.docker("wait", cid).stdout.strip() == "0"
        stamped = daemon.docker("logs", "-t", cid).stdout.splitlines()
        assert [line.split(" ", 1)[1] for line in stamped] == ["early", "late"]
        late_at = stamped[1].split(" ", 1)[0]
        since = daemon.docker("logs", "--since", late_at, cid)
        assert since.stdout == "late\n"
        until = daemon.docker("logs", "--until", late_at, cid)
        assert until.stdout == "early\nlate\n"  # until is inclusive, as in Docker
        # A relative duration: the CLI turns it into now minus that, in whole seconds.
        assert daemon.docker("logs", "--until", "1h", cid).stdout == ""
        assert daemon.docker("logs", "--since", "1h", cid).stdout == "early\nlate\n"
    finally:
        daemon.docker("rm", "-f", cid)


def test_ps_filters_by_id_prefix(daemon: EssaimDaemon) -> None:
    cid = daemon.docker("create", "busybox", "true").stdout.strip()
    try:
        found = daemon.docker("ps", "-aq", "--no-trunc", "--filter", f"id={cid[:10]}")
        assert found.stdout.split() == [cid]
        none = daemon.docker("ps", "-aq", "--filter", "id=ffffffffffff0000")
        assert none.stdout.strip() == ""
    finally:
        daemon.docker("rm", cid)


def test_stop_ends_within_timeout_and_rm_removes_every_file(daemon: EssaimDaemon) -> None:
    name = f"stopper-{time.monotonic_ns()}"
    # `sleep` as pid 1 ignores SIGTERM: stop must fall back to SIGKILL after -t.
    cid = daemon.docker("run", "-d", "--name", name, "busybox", "sleep", "1000").stdout.strip()
    started = time.monotonic()
    result = daemon.docker("stop", "-t", "1", name)
    elapsed = time.monotonic() - started
    assert result.returncode == 0 and result.stdout.strip() == name
    assert elapsed < 5
    state = daemon.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name)
    assert state.stdout.strip() == "exited 137"
    assert (daemon.data_root / "containers" / cid).is_dir()
    assert daemon.docker("rm", name).returncode == 0
    assert not (daemon.data_root / "containers" / cid).exists()
    assert daemon.docker("inspect", name).returncode != 0


def test_restart_and_kill_with_signal_names(daemon: EssaimDaemon) -> None:
    name = f"restarter-{time.monotonic_ns()}"
    script = "trap 'echo got-hup' HUP; while true; do sleep 0.1; done"
    assert daemon.docker("run", "-d", "--name", name, "busybox", "sh", "-c", script).returncode == 0
    try:
        assert daemon.docker("kill", "-s", "WINCH", name).returncode == 0
        # Signals do not queue: wait for each trap to run before sending the next.
        for signal_arg in (["-s", "HUP"], ["--signal", "1"]):
            seen = daemon.docker("logs", name).stdout.count("got-hup")
            assert daemon.docker("kill", *signal_arg, name).returncode == 0
            deadline = time.monotonic() + 5
            while (
                daemon.docker("logs", name).stdout.count("got-hup") == seen
                and time.monotonic() < deadline
            ):
                time.sleep(0.05)
        assert daemon.docker("logs", name).stdout.count("got-hup") == 2
        first = daemon.docker("inspect", "-f", "{{.State.StartedAt}}", name).stdout
        assert daemon.docker("restart", "-t", "0", name).returncode == 0
        second = daemon.docker(
            "inspect", "-f", "{{.State.StartedAt}} {{.State.Running}}", name
        ).stdout
        assert second.split()[0] != first.strip() and second.split()[1] == "true"
        bad = daemon.docker("kill", "-s", "NOSUCH", name)
        assert bad.returncode != 0 and "Invalid signal: NOSUCH" in bad.stderr
    finally:
        daemon.docker("rm", "-f", name)


def test_wait_prints_the_exit_code(daemon: EssaimDaemon) -> None:
    cid = daemon.docker("run", "-d", "busybox", "sh", "-c", "sleep 0.3; exit 7").stdout.strip()
    result = daemon.docker("wait", cid)
    assert result.stdout.strip() == "7"
    daemon.docker("rm", cid)


def test_unknown_container_is_404_with_dockers_message(daemon: EssaimDaemon) -> None:
    result = daemon.docker("logs", "nosuchcontainer")
    assert result.returncode == 1
    assert "No such container: nosuchcontainer" in result.stderr


def test_name_conflict_is_409_and_creates_nothing(daemon: EssaimDaemon) -> None:
    name = f"taken-{time.monotonic_ns()}"
    assert daemon.docker("create", "--name", name, "busybox", "true").returncode == 0
    try:
        before = daemon.docker("ps", "-aq").stdout
        result = daemon.docker("create", "--name", name, "busybox", "true")
        assert result.returncode != 0
        assert f'Conflict. The container name "/{name}" is already in use' in result.stderr
        assert daemon.docker("ps", "-aq").stdout == before
    finally:
        daemon.docker("rm", name)


def test_rm_running_without_force_is_refused(daemon: EssaimDaemon, web: str) -> None:
    result = daemon.docker("rm", web)
    assert result.returncode != 0
    assert f'cannot remove container "/{web}": container is running' in result.stderr
    assert daemon.docker("inspect", "-f", "{{.State.Running}}", web).stdout.strip() == "true"
    assert daemon.docker("rm", "-f", web).returncode == 0
