"""Containers outlive essaimd: kill -9 the daemon, start it again, and find the
containers running, their logs complete and `wait` answering with exit codes.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.integration.daemon import EssaimDaemon


def test_kill9_restart_readopts_three_containers(own_daemon: EssaimDaemon) -> None:
    d = own_daemon
    ticker = "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"
    ids = {
        "ticker": d.docker("run", "-d", "--name", "ticker", "busybox", "sh", "-c", ticker),
        "sleeper": d.docker("run", "-d", "--name", "sleeper", "busybox", "sleep", "1000"),
        "quitter": d.docker("run", "-d", "--name", "quitter", "busybox", "sh", "-c",
                            "sleep 1; echo bye; exit 4"),
    }  # fmt: skip
    for name, result in ids.items():
        assert result.returncode == 0, (name, result.stderr)

    d.kill9()
    time.sleep(1.5)  # the quitter exits and the ticker writes while no daemon runs
    d.start()

    running = d.docker("ps", "--format", "{{.Names}}").stdout.split()
    assert sorted(running) == ["sleeper", "ticker"]
    assert d.docker("wait", "quitter").stdout.strip() == "4"
    assert d.docker("logs", "quitter").stdout == "bye\n"

    ticks = [int(line.split()[1]) for line in d.docker("logs", "ticker").stdout.splitlines()]
    assert ticks == list(range(len(ticks)))
    assert len(ticks) >= 15  # written before, during and after the daemon's absence

    assert d.docker("kill", "ticker").returncode == 0
    assert d.docker("wait", "ticker").stdout.strip() == "137"
    assert d.docker("stop", "-t", "1", "sleeper").returncode == 0
    assert d.docker("inspect", "-f", "{{.State.ExitCode}}", "sleeper").stdout.strip() == "137"


def test_auto_removed_container_that_ended_meanwhile_is_removed_at_start(
    own_daemon: EssaimDaemon,
) -> None:
    d = own_daemon
    run = d.docker("run", "-d", "--rm", "busybox", "sh", "-c", "sleep 1; exit 3")
    assert run.returncode == 0, run.stderr
    cid = run.stdout.strip()
    d.kill9()
    time.sleep(1.5)  # it exits while no daemon watches
    d.start()
    deadline = time.monotonic() + 10
    while d.docker("ps", "-aq", "--no-trunc").stdout.split() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert d.docker("ps", "-aq", "--no-trunc").stdout.split() == []
    assert not (d.data_root / "containers" / cid).exists()


def runc_state_ids(d: EssaimDaemon) -> list[str]:
    listed = subprocess.run(
        ["runc", "--root", str(d.exec_root / "runtimes" / "runc"), "list", "-q"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return listed.stdout.split()


def wait_until(predicate: Callable[[], bool], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def test_auto_removed_container_leaves_no_runtime_state(own_daemon: EssaimDaemon) -> None:
    d = own_daemon
    run = d.docker("run", "--rm", "busybox", "true")
    assert run.returncode == 0, run.stderr
    # The runtime's state goes after the answer; it goes all the same.
    assert wait_until(lambda: runc_state_ids(d) == [])
    assert d.docker("ps", "-aq").stdout.split() == []


def test_runtime_state_without_a_record_is_deleted_at_start(
    own_daemon: EssaimDaemon, tmp_path: Path
) -> None:
    """What a crash between a removal and its runtime cleanup leaves behind: the runtime
    knows a container the daemon has no record of."""
    d = own_daemon
    d.stop()
    bundle = tmp_path / "bundle"
    (bundle / "rootfs" / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", bundle / "rootfs" / "bin" / "sh")
    subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["terminal"] = False
    cid = secrets.token_hex(32)
    config["linux"]["cgroupsPath"] = f"/{d.cgroup_parent}/{cid}"
    (bundle / "config.json").write_text(json.dumps(config))
    runc_root = str(d.exec_root / "runtimes" / "runc")
    subprocess.run(
        ["runc", "--root", runc_root, "create", "--bundle", str(bundle), cid],
        check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    assert runc_state_ids(d) == [cid]
    d.start()
    assert runc_state_ids(d) == []
