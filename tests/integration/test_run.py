"""`docker run` through essaimd with the real docker CLI: output, exit codes, errors."""

from __future__ import annotations

import os
import shutil
import socket

import pytest

from tests.integration.daemon import EssaimDaemon


def test_run_rm_echo_prints_and_exits_zero(daemon: EssaimDaemon) -> None:
    result = daemon.docker("run", "--rm", "busybox", "echo", "hello")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello\n"


def test_run_exit_code_is_the_container_exit_code(daemon: EssaimDaemon) -> None:
    result = daemon.docker("run", "--rm", "busybox", "sh", "-c", "exit 3")
    assert result.returncode == 3


def test_run_separates_stdout_and_stderr(daemon: EssaimDaemon) -> None:
    result = daemon.docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"


def test_run_unknown_image_exits_125_with_dockers_message(daemon: EssaimDaemon) -> None:
    # A registry on loopback where nothing listens: tests never reach outside this host.
    result = daemon.docker("run", "--rm", "127.0.0.1:1/nosuchimage:v1", "true")
    assert result.returncode == 125
    assert "Unable to find image '127.0.0.1:1/nosuchimage:v1' locally" in result.stderr
    assert (
        'Error response from daemon: Get "http://127.0.0.1:1/v2/": '
        "dial tcp 127.0.0.1:1: connect: connection refused"
    ) in result.stderr


def test_run_unknown_command_exits_127(daemon: EssaimDaemon) -> None:
    result = daemon.docker("run", "--rm", "busybox", "nosuchcmd")
    assert result.returncode == 127
    assert 'exec: "nosuchcmd": executable file not found in $PATH' in result.stderr


def test_run_not_executable_exits_126(daemon: EssaimDaemon) -> None:
    result = daemon.docker("run", "--rm", "busybox", "/etc/passwd")
    assert result.returncode == 126
    assert "permission denied" in result.stderr


def test_run_rm_leaves_no_container_behind(daemon: EssaimDaemon) -> None:
    before = set(daemon.docker("ps", "-aq", "--no-trunc").stdout.split())
    assert daemon.docker("run", "--rm", "busybox", "true").returncode == 0
    assert daemon.docker("run", "--rm", "busybox", "nosuchcmd").returncode == 127
    after = set(daemon.docker("ps", "-aq", "--no-trunc").stdout.split())
    assert after == before
    dirs = {p.name for p in (daemon.data_root / "containers").iterdir()}
    assert dirs == before


def test_stdin_is_piped_and_closed(daemon: EssaimDaemon) -> None:
    result = daemon.docker("run", "-i", "--rm", "busybox", "cat", input="hi\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hi\n"


def test_env_workdir_and_user_reach_the_process(daemon: EssaimDaemon) -> None:
    result = daemon.docker(
        "run", "--rm", "-e", "GREETING=bonjour", "-w", "/tmp", "-u", "65534:65534",
        "busybox", "sh", "-c", 'echo "$GREETING $(pwd) $(id -u):$(id -g)"',
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "bonjour /tmp 65534:65534\n"


def test_default_security_drops_capabilities_and_masks_paths(daemon: EssaimDaemon) -> None:
    script = (
        "grep CapBnd /proc/self/status; grep Seccomp: /proc/self/status; cat /proc/kcore | wc -c"
    )
    result = daemon.docker("run", "--rm", "busybox", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    # Docker's default set: 0x00000000a80425fb.
    assert lines[0].split()[1] == "00000000a80425fb"
    assert lines[1].split()[1] == "2"
    assert lines[2].strip() == "0"


def test_detached_run_prints_the_id(daemon: EssaimDaemon) -> None:
    result = daemon.docker("run", "-d", "busybox", "sleep", "1000")
    assert result.returncode == 0, result.stderr
    cid = result.stdout.strip()
    assert len(cid) == 64
    inspect = daemon.docker("inspect", "-f", "{{.State.Status}} {{.State.Running}}", cid)
    assert inspect.stdout.strip() == "running true"
    assert daemon.docker("rm", "-f", cid).returncode == 0


def test_unknown_runtime_is_refused_and_creates_nothing(daemon: EssaimDaemon) -> None:
    before = daemon.docker("ps", "-aq").stdout
    result = daemon.docker("run", "--rm", "--runtime", "nosuch", "busybox", "true")
    assert result.returncode == 125
    assert "unknown or invalid runtime name: nosuch" in result.stderr
    assert daemon.docker("ps", "-aq").stdout == before


def test_crun_is_offered_and_runs_or_reports_its_own_error(daemon: EssaimDaemon) -> None:
    """Debian's crun 1.8 refuses hosts with cgroup v1 plus a v2 hierarchy holding a
    controller; where the host allows it, the container runs under crun."""
    if shutil.which("crun") is None:
        pytest.skip("crun is not installed")
    runtimes = daemon.docker("info", "-f", "{{json .Runtimes}}").stdout
    assert '"crun"' in runtimes and '"runc"' in runtimes
    before = daemon.docker("ps", "-aq").stdout
    result = daemon.docker("run", "--rm", "--runtime", "crun", "busybox", "echo", "hi")
    if result.returncode == 0:
        assert result.stdout == "hi\n"
    else:
        assert result.returncode == 125
        assert "OCI runtime create failed" in result.stderr
    assert daemon.docker("ps", "-aq").stdout == before


def _netns_inside(daemon: EssaimDaemon, *args: str) -> str:
    result = daemon.docker("run", "--rm", *args, "busybox", "readlink", "/proc/self/ns/net")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_network_none_default_host_and_container(daemon: EssaimDaemon) -> None:
    host_ns = os.readlink("/proc/self/ns/net")
    assert _netns_inside(daemon, "--network", "host") == host_ns
    hostname = daemon.docker("run", "--rm", "--network", "host", "busybox", "hostname")
    assert hostname.stdout.strip() == socket.gethostname()
    for mode in ("none", "default", "bridge"):
        assert _netns_inside(daemon, "--network", mode) != host_ns
    links = daemon.docker("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link")
    assert [line.split(":")[1].strip() for line in links.stdout.splitlines()] == ["lo"]
    holder = daemon.docker("run", "-d", "busybox", "sleep", "100").stdout.strip()
    try:
        pid = daemon.docker("inspect", "-f", "{{.State.Pid}}", holder).stdout.strip()
        assert _netns_inside(daemon, "--network", f"container:{holder[:12]}") == os.readlink(
            f"/proc/{pid}/ns/net"
        )
    finally:
        daemon.docker("rm", "-f", holder)


def test_network_errors_are_dockers(daemon: EssaimDaemon) -> None:
    before = daemon.docker("ps", "-aq").stdout
    missing = daemon.docker("run", "--rm", "--network", "nosuchnet", "busybox", "true")
    assert missing.returncode == 125
    assert "network nosuchnet not found" in missing.stderr
    stopped = daemon.docker("create", "busybox", "true").stdout.strip()
    try:
        joined = daemon.docker(
            "run", "--rm", "--network", f"container:{stopped}", "busybox", "true"
        )
        assert joined.returncode == 125
        assert f"cannot join network of a non running container: {stopped}" in joined.stderr
    finally:
        daemon.docker("rm", stopped)
    assert daemon.docker("ps", "-aq").stdout == before


def test_pull_of_a_local_image_says_no_registry_was_asked(daemon: EssaimDaemon) -> None:
    result = daemon.docker("pull", "busybox")
    assert result.returncode == 0, result.stderr
    assert "Using the local image busybox:latest" in result.stdout
