"""`--init`, `--stop-signal` and `--stop-timeout`: a static tini as PID 1 running the
command as its child and passing signals and exit codes through; the stop settings."""

from __future__ import annotations

import json
import time

import pytest

from tests.integration.daemon import EssaimDaemon

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"{prefix}-{time.monotonic_ns()}"


def test_init_is_pid_1_and_runs_the_command_as_its_child(daemon: EssaimDaemon) -> None:
    result = daemon.docker(
        "run", "--rm", "--init", "busybox", "sh", "-c", "echo $$ $PPID; ps -o pid,comm"
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    own_pid, parent = lines[0].split()
    assert parent == "1" and own_pid != "1"
    processes = dict(line.split(None, 1) for line in lines[2:])
    assert processes["1"].strip() == "docker-init"


def test_without_init_the_command_is_pid_1(daemon: EssaimDaemon) -> None:
    result = daemon.docker("run", "--rm", "busybox", "sh", "-c", "echo $$")
    assert result.stdout.strip() == "1"


def test_init_passes_the_exit_code_through(daemon: EssaimDaemon) -> None:
    assert daemon.docker("run", "--rm", "--init", "busybox", "sh", "-c", "exit 7").returncode == 7


def test_init_hands_sigterm_to_the_command(daemon: EssaimDaemon) -> None:
    # `sleep` as PID 1 ignores SIGTERM (no handler, init protection); under tini it dies.
    name = unique("init-stop")
    result = daemon.docker("run", "-d", "--name", name, "--init", "busybox", "sleep", "600")
    assert result.returncode == 0, result.stderr
    started = time.monotonic()
    assert daemon.docker("stop", "-t", "20", name).returncode == 0
    assert time.monotonic() - started < 10
    assert daemon.docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip() == "143"


def test_inspect_keeps_the_command_as_asked(daemon: EssaimDaemon) -> None:
    name = unique("init-inspect")
    assert (
        daemon.docker("create", "--name", name, "--init", "busybox", "sleep", "1").returncode == 0
    )
    shown = json.loads(daemon.docker("inspect", name).stdout)[0]
    assert (shown["Path"], shown["Args"], shown["HostConfig"]["Init"]) == ("sleep", ["1"], True)


def test_info_names_the_init_binary(daemon: EssaimDaemon) -> None:
    client = daemon.client()
    try:
        info = client.info()
    finally:
        client.close()
    assert info["InitBinary"] in ("docker-init", "tini-static")
    assert info["InitCommit"]["ID"]


def test_stop_signal_is_what_stop_sends(daemon: EssaimDaemon) -> None:
    name = unique("stop-signal")
    script = 'trap "exit 42" USR1; while :; do sleep 0.1; done'
    run = daemon.docker(
        "run", "-d", "--name", name, "--stop-signal", "SIGUSR1", "busybox", "sh", "-c", script
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    time.sleep(0.3)  # the trap is set
    assert daemon.docker("stop", name).returncode == 0
    assert daemon.docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip() == "42"
    assert (
        daemon.docker("inspect", "-f", "{{.Config.StopSignal}}", name).stdout.strip() == "SIGUSR1"
    )


def test_stop_timeout_is_the_grace_before_sigkill(daemon: EssaimDaemon) -> None:
    name = unique("stop-timeout")
    script = 'trap "" TERM; while :; do sleep 0.1; done'
    run = daemon.docker(
        "run", "-d", "--name", name, "--stop-timeout", "1", "busybox", "sh", "-c", script
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    time.sleep(0.3)
    started = time.monotonic()
    assert daemon.docker("stop", name).returncode == 0
    took = time.monotonic() - started
    assert 0.9 <= took < 8  # 1 s of grace, not the default 10
    assert daemon.docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip() == "137"
    assert daemon.docker("inspect", "-f", "{{.Config.StopTimeout}}", name).stdout.strip() == "1"
