"""`docker exec` through essaimd with the real CLI and the SDK: output and exit codes,
user, working directory, environment, stdin, a terminal, detached runs and refusals.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.integration.daemon import EssaimDaemon


@pytest.fixture(scope="module")
def box(daemon: EssaimDaemon) -> Iterator[str]:
    name = f"exec-box-{time.monotonic_ns()}"
    run = daemon.docker("run", "-d", "--name", name, "-e", "FROM_RUN=1", "busybox", "sleep", "1000")
    assert run.returncode == 0, run.stderr
    yield name
    daemon.docker("rm", "-f", name)


def test_exec_prints_output_and_passes_the_exit_code(daemon: EssaimDaemon, box: str) -> None:
    done = daemon.docker("exec", box, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert done.returncode == 3
    assert done.stdout == "out\n"
    assert done.stderr == "err\n"


def test_exec_runs_in_the_container(daemon: EssaimDaemon, box: str) -> None:
    assert daemon.docker("exec", box, "sh", "-c", "echo hi > /tmp/mark").returncode == 0
    assert daemon.docker("exec", box, "cat", "/tmp/mark").stdout == "hi\n"
    # The same pid namespace: the container's sleep is pid 1.
    assert daemon.docker("exec", box, "cat", "/proc/1/cmdline").stdout == "sleep\x001000\x00"


def test_exec_user_workdir_and_env(daemon: EssaimDaemon, box: str) -> None:
    done = daemon.docker(
        "exec", "-u", "nobody", "-w", "/tmp", "-e", "FOO=bar", box,
        "sh", "-c", 'id -u; pwd; echo "$FOO $FROM_RUN"',
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == ["65534", "/tmp", "bar 1"]


def test_exec_stdin_reaches_the_process(daemon: EssaimDaemon, box: str) -> None:
    done = daemon.docker("exec", "-i", box, "sh", "-c", "cat; echo end", input="one\ntwo\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "one\ntwo\nend\n"


def test_exec_unknown_command_is_127_with_the_runtime_message(
    daemon: EssaimDaemon, box: str
) -> None:
    done = daemon.docker("exec", box, "no-such-command")
    assert done.returncode == 127
    assert 'exec: "no-such-command": executable file not found in $PATH' in done.stdout


def test_exec_tty_gets_a_terminal_of_the_client_size(daemon: EssaimDaemon, box: str) -> None:
    inner = f"stty rows 33 cols 111; docker exec -it {box} sh -c 'tty; stty size; exit 5'"
    done = subprocess.run(
        ["script", "-qec", inner, "/dev/null"],
        env=daemon.env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 5, done.stdout
    assert "/dev/pts/" in done.stdout
    assert "33 111" in done.stdout


def test_exec_detached_runs_in_the_background(daemon: EssaimDaemon, box: str) -> None:
    done = daemon.docker("exec", "-d", box, "sh", "-c", "sleep 0.2; echo late > /tmp/late")
    assert done.returncode == 0 and done.stdout == ""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if daemon.docker("exec", box, "cat", "/tmp/late").stdout == "late\n":
            break
        time.sleep(0.1)
    assert daemon.docker("exec", box, "cat", "/tmp/late").stdout == "late\n"


def test_exec_privileged_gets_every_capability(daemon: EssaimDaemon, box: str) -> None:
    plain = daemon.docker("exec", box, "grep", "CapEff", "/proc/self/status").stdout.split()[1]
    full = daemon.docker(
        "exec", "--privileged", box, "grep", "CapEff", "/proc/self/status"
    ).stdout.split()[1]
    assert int(full, 16) > int(plain, 16)
    assert int(full, 16) & (1 << 21)  # CAP_SYS_ADMIN, not in Docker's default set
    assert not int(plain, 16) & (1 << 21)


def test_exec_in_a_stopped_container_is_409(daemon: EssaimDaemon) -> None:
    cid = daemon.docker("create", "busybox", "true").stdout.strip()
    done = daemon.docker("exec", cid, "true")
    assert done.returncode == 1
    assert f"container {cid} is not running" in done.stderr
    client = daemon.client()
    with pytest.raises(Exception, match="409"):
        client.api.exec_create(cid, "true")
    daemon.docker("rm", cid)


def test_sdk_exec_run_inspect_and_demux(daemon: EssaimDaemon, box: str) -> None:
    client = daemon.client()
    container = client.containers.get(box)
    result = container.exec_run(["sh", "-c", "echo a; echo b >&2; exit 2"], demux=True)
    assert result.exit_code == 2
    assert result.output == (b"a\n", b"b\n")
    created = client.api.exec_create(box, ["sleep", "0.3"])
    client.api.exec_start(created["Id"], detach=True)
    info = client.api.exec_inspect(created["Id"])
    assert info["Running"] is True and info["ExitCode"] is None and info["Pid"] > 0
    deadline = time.monotonic() + 10
    while client.api.exec_inspect(created["Id"])["Running"] and time.monotonic() < deadline:
        time.sleep(0.05)
    info = client.api.exec_inspect(created["Id"])
    assert info["Running"] is False and info["ExitCode"] == 0
    assert info["ProcessConfig"] == {
        "tty": False, "entrypoint": "sleep", "arguments": ["0.3"],
        "privileged": False, "user": "",
    }  # fmt: skip
    with pytest.raises(Exception, match="404"):
        client.api.exec_inspect("0" * 64)


def test_exec_start_twice_is_409(daemon: EssaimDaemon, box: str) -> None:
    client = daemon.client()
    created = client.api.exec_create(box, "true")
    client.api.exec_start(created["Id"])
    with pytest.raises(Exception, match="409"):
        client.api.exec_start(created["Id"])


def test_exec_events(daemon: EssaimDaemon, box: str) -> None:
    since = str(time.time() - 1)
    assert daemon.docker("exec", box, "true").returncode == 0
    events = daemon.docker(
        "events", "--since", since, "--until", str(time.time() + 1),
        "--filter", f"container={box}", "--format", "{{.Action}}",
    ).stdout.splitlines()  # fmt: skip
    assert "exec_create: true" in events
    assert "exec_start: true" in events
    assert "exec_die" in events
