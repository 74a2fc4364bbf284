"""essaimd as a process: clean SIGTERM shutdown that leaves containers running and
re-adopts them, side-by-side instances, the data-root lock, per-daemon cgroup
subtrees, `--pidfile`, and repeated `-H`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from essaim.daemon import parse_args
from tests.integration.conftest import new_root, running
from tests.integration.daemon import VENV_BIN, EssaimDaemon
from tests.integration.test_api_server import RawClient

CGROUP_CONTROLLERS = ("memory", "pids", "cpu,cpuacct", "cpu", "devices", "freezer")


@dataclass
class ConfiguredDaemon(EssaimDaemon):
    """A test daemon started with a pidfile and a second `-H` unix socket."""

    @property
    def pidfile(self) -> Path:
        return self.root / "essaimd.pid"

    @property
    def second_socket(self) -> Path:
        return self.root / "second" / "api.sock"

    def command(self) -> list[str]:
        return [
            str(VENV_BIN / "essaimd"), "-H", self.host, "-H", f"unix://{self.second_socket}",
            "--data-root", str(self.data_root), "--exec-root", str(self.exec_root),
            "--cgroup-parent", self.cgroup_parent, "--pidfile", str(self.pidfile),
        ]  # fmt: skip


@pytest.fixture
def configured() -> Iterator[ConfiguredDaemon]:
    yield from running(ConfiguredDaemon(new_root()))


def ok(result: object) -> str:
    assert getattr(result, "returncode", 1) == 0, getattr(result, "stderr", result)
    return str(getattr(result, "stdout", ""))


def inspect(daemon: EssaimDaemon, ref: str) -> dict[str, object]:
    data: list[dict[str, object]] = json.loads(ok(daemon.docker("inspect", ref)))
    return data[0]


def pid_of(daemon: EssaimDaemon, ref: str) -> int:
    return int(ok(daemon.docker("inspect", "-f", "{{.State.Pid}}", ref)).strip())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not alive for our purpose.
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"


def cgroup_paths(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        out[controllers] = path
    return out


def run_essaimd(*args: str) -> subprocess.CompletedProcess[str]:
    """An essaimd expected to refuse to start: it must exit by itself, quickly."""
    return subprocess.run(
        [str(VENV_BIN / "essaimd"), *args], capture_output=True, text=True, timeout=20
    )


def wait_exit(proc: subprocess.Popen[bytes], timeout: float = 20) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("essaimd did not exit in time") from None


# ---- shutdown and re-adoption ----------------------------------------------------------


def test_sigterm_exits_zero_cleans_up_and_leaves_containers_running(
    configured: ConfiguredDaemon,
) -> None:
    d = configured
    assert d.pidfile.read_text().strip() == str(d.proc.pid if d.proc else -1)
    cid = ok(d.docker("run", "-d", "--name", "survivor", "busybox", "sleep", "1000")).strip()
    pid = pid_of(d, cid)
    assert alive(pid)

    # Clients in the middle of long requests must not hold the shutdown up.
    events, waiter = RawClient(d.socket), RawClient(d.second_socket)
    try:
        events.send("GET", "/events")
        assert events.read_head()[0] == 200
        waiter.send("POST", f"/v1.45/containers/{cid}/wait")
        assert waiter.read_head()[0] == 200

        assert d.proc is not None
        d.proc.send_signal(signal.SIGTERM)
        assert wait_exit(d.proc) == 0
        d.proc = None
        assert events.read_to_eof() == b"" and waiter.read_to_eof() == b""
    finally:
        events.close()
        waiter.close()

    assert not d.socket.exists() and not d.second_socket.exists()
    assert not d.pidfile.exists()
    assert alive(pid), "the container must outlive the daemon"

    d.start()
    assert ok(d.docker("ps", "-q", "--no-trunc")).split() == [cid]
    assert d.pidfile.read_text().strip() == str(d.proc.pid if d.proc else -1)
    state = inspect(d, cid)["State"]
    assert isinstance(state, dict)
    assert (state["Running"], state["Pid"]) == (True, pid)
    ok(d.docker("kill", cid))
    assert ok(d.docker("wait", cid)).strip() == "137"
    assert not alive(pid)


def test_every_H_socket_serves_the_same_daemon(configured: ConfiguredDaemon) -> None:
    d = configured
    second = f"unix://{d.second_socket}"
    cid = ok(d.docker("create", "--name", "via-first", "busybox", "true")).strip()
    assert ok(d.docker("-H", second, "inspect", "-f", "{{.Id}}", "via-first")).strip() == cid
    ok(d.docker("-H", second, "rm", "via-first"))
    assert d.docker("inspect", "via-first").returncode != 0
    with RawClient(d.second_socket) as client:
        assert client.call("GET", "/_ping").body == b"OK"


def test_second_daemon_on_the_same_data_root_is_refused(own_daemon: EssaimDaemon) -> None:
    d = own_daemon
    assert d.proc is not None
    ok(d.docker("create", "--name", "still-mine", "busybox", "true"))
    other_exec = d.root / "other-run"
    # Same data root and even the same socket: refused before it touches either.
    second = run_essaimd(
        "-H", d.host, "--data-root", str(d.data_root), "--exec-root", str(other_exec),
        "--cgroup-parent", d.cgroup_parent + "-x",
    )  # fmt: skip
    assert second.returncode == 1
    assert (
        f"essaimd: data root {d.data_root} is in use by a running essaimd (pid {d.proc.pid})"
        in second.stderr
    )
    assert d.proc.poll() is None
    assert d.socket.exists()
    assert ok(d.docker("ps", "-a", "--format", "{{.Names}}")).split() == ["still-mine"]


def test_a_live_socket_is_not_taken_over_by_another_daemon(own_daemon: EssaimDaemon) -> None:
    d = own_daemon
    other = new_root()
    try:
        second = run_essaimd(
            "-H", d.host, "--data-root", str(other / "data"), "--exec-root", str(other / "run"),
            "--pidfile", str(other / "pid"), "--cgroup-parent", d.cgroup_parent + "-y",
        )  # fmt: skip
        assert second.returncode == 1
        assert f"essaimd: {d.socket} is in use by another daemon" in second.stderr
        assert not (other / "pid").exists()
    finally:
        shutil.rmtree(other, ignore_errors=True)
    assert d.socket.exists()
    assert ok(d.docker("info", "--format", "{{.DockerRootDir}}")).strip() == str(d.data_root)


def test_a_pidfile_naming_a_live_process_is_refused() -> None:
    root = new_root()
    try:
        pidfile = root / "essaimd.pid"
        pidfile.write_text(f"{os.getpid()}\n")  # this test process: alive
        result = run_essaimd(
            "-H", f"unix://{root}/api.sock", "--data-root", str(root / "data"),
            "--exec-root", str(root / "run"), "--pidfile", str(pidfile),
        )  # fmt: skip
        assert result.returncode == 1
        assert f"pid file found, ensure essaimd is not running or delete {pidfile}" in (
            result.stderr
        )
        assert pidfile.read_text() == f"{os.getpid()}\n"
        assert not (root / "api.sock").exists()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_stale_socket_file_is_replaced(configured: ConfiguredDaemon) -> None:
    d = configured
    d.kill9()  # leaves both socket files behind, nobody listening
    assert d.socket.exists() and d.second_socket.exists()
    d.start()
    with RawClient(d.second_socket) as client:
        assert client.call("GET", "/_ping").body == b"OK"


# ---- side by side ---------------------------------------------------------------------------


def test_two_daemons_run_side_by_side_with_independent_state(
    daemon: EssaimDaemon, own_daemon: EssaimDaemon
) -> None:
    a, b = daemon, own_daemon
    assert len({a.socket, b.socket}) == 2 and a.data_root != b.data_root
    # The same name in each: no conflict, since nothing is shared.
    in_a = ok(a.docker("run", "-d", "--name", "twin", "busybox", "sleep", "1000")).strip()
    try:
        in_b = ok(b.docker("run", "-d", "--name", "twin", "busybox", "sleep", "1000")).strip()
        only_b = ok(b.docker("create", "--name", "only-in-b", "busybox", "true")).strip()
        assert in_a != in_b
        assert only_b not in ok(a.docker("ps", "-aq", "--no-trunc")).split()
        missing = a.docker("inspect", "only-in-b")
        assert missing.returncode != 0 and "No such object: only-in-b" in missing.stderr
        assert ok(a.docker("inspect", "-f", "{{.Id}}", "twin")).strip() == in_a
        assert ok(b.docker("inspect", "-f", "{{.Id}}", "twin")).strip() == in_b

        for d, cid in ((a, in_a), (b, in_b)):
            root = ok(d.docker("info", "--format", "{{.DockerRootDir}}")).strip()
            assert root == str(d.data_root)
            paths = cgroup_paths(pid_of(d, cid))
            assert paths["memory"] == f"/{d.cgroup_parent}/{cid}"
        # Stopping one daemon leaves the other serving.
        b.stop()
        assert ok(a.docker("inspect", "-f", "{{.State.Running}}", "twin")).strip() == "true"
    finally:
        a.docker("rm", "-f", in_a)


def test_containers_live_in_the_daemons_own_cgroup_subtree(daemon: EssaimDaemon) -> None:
    cid = ok(daemon.docker("run", "-d", "busybox", "sleep", "1000")).strip()
    try:
        paths = cgroup_paths(pid_of(daemon, cid))
        wanted = f"/{daemon.cgroup_parent}/{cid}"
        checked = [c for c in CGROUP_CONTROLLERS if c in paths]
        assert "memory" in checked and "pids" in checked, paths
        assert {c: paths[c] for c in checked} == dict.fromkeys(checked, wanted)
        assert Path("/sys/fs/cgroup/memory", wanted.lstrip("/")).is_dir()
    finally:
        ok(daemon.docker("rm", "-f", cid))
    assert not Path("/sys/fs/cgroup/memory", daemon.cgroup_parent, cid).exists()


def test_default_cgroup_parent_is_derived_from_the_data_root() -> None:
    assert parse_args([]).cgroup_parent == "essaim"
    one = parse_args(["--data-root", "/tmp/es-one/data"]).cgroup_parent
    two = parse_args(["--data-root", "/tmp/es-two/data"]).cgroup_parent
    assert one.startswith("essaim-") and two.startswith("essaim-") and one != two
    assert parse_args(["--cgroup-parent", "/mine/"]).cgroup_parent == "mine"
    hosts = parse_args(["-H", "unix:///tmp/a.sock", "-H", "unix:///tmp/b.sock"]).hosts
    assert hosts == ["unix:///tmp/a.sock", "unix:///tmp/b.sock"]


def test_start_up_sweeps_layers_nothing_uses(own_daemon: EssaimDaemon) -> None:
    """What a crash between a container's removal and the release of its layers would
    leave: a snapshot and a layer blob no image and no container uses."""
    d = own_daemon
    cid = d.docker("create", "busybox", "true").stdout.strip()
    d.stop()
    stray_chain = d.data_root / "snapshots" / ("ab" * 32)
    (stray_chain / "fs").mkdir(parents=True)
    (stray_chain / "size").write_text("0")
    stray_blob = d.data_root / "content" / "blobs" / "sha256" / ("cd" * 32)
    stray_blob.write_bytes(b"layer nobody uses")
    kept_snapshots = {p.name for p in (d.data_root / "snapshots").iterdir()} - {stray_chain.name}
    d.start()
    assert not stray_chain.exists() and not stray_blob.exists()
    assert {p.name for p in (d.data_root / "snapshots").iterdir()} == kept_snapshots
    assert d.docker("start", "-a", cid).returncode == 0  # busybox's layer is still there
    assert d.docker("run", "--rm", "busybox", "echo", "ok").stdout == "ok\n"
