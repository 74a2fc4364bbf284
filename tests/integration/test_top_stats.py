"""`docker top` (the container's processes from the host's `ps`, nothing else) and
`docker stats` (one-shot, two-sample and streamed figures from its cgroups).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator

import docker
import pytest

from tests.integration.daemon import EssaimDaemon, Result


def ok(result: Result) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def sleeper(daemon: EssaimDaemon) -> Iterator[str]:
    name = f"sleeper-{secrets.token_hex(4)}"
    ok(daemon.docker("run", "-d", "--name", name, "busybox", "sleep", "300"))
    yield name
    daemon.docker("rm", "-f", name)


def test_top_lists_only_the_containers_processes(daemon: EssaimDaemon, sleeper: str) -> None:
    lines = ok(daemon.docker("top", sleeper)).splitlines()
    titles = lines[0].split()
    assert titles[:2] == ["UID", "PID"]
    assert titles[-1] == "CMD"
    rows = lines[1:]
    assert len(rows) == 1
    assert rows[0].split()[-2:] == ["sleep", "300"]
    pid = int(rows[0].split()[1])
    assert pid != os.getpid()
    state = json.loads(ok(daemon.docker("inspect", "-f", "{{json .State}}", sleeper)))
    assert pid == state["Pid"]


def test_top_with_ps_args_and_sdk(daemon: EssaimDaemon, sleeper: str) -> None:
    lines = ok(daemon.docker("top", sleeper, "-o", "pid,comm")).splitlines()
    assert lines[0].split() == ["PID", "COMMAND"]
    assert [line.split()[1] for line in lines[1:]] == ["sleep"]
    # `aux` (BSD style) and forest listings, which `ps` refuses with -q.
    aux = ok(daemon.docker("top", sleeper, "aux")).splitlines()
    assert "%CPU" in aux[0].split() and len(aux) == 2
    forest = ok(daemon.docker("top", sleeper, "-ef", "f")).splitlines()
    assert len(forest) == 2 and "sleep 300" in forest[1]
    result = daemon.client().containers.get(sleeper).top()
    assert result["Titles"][1] == "PID"
    assert [p[-1] for p in result["Processes"]] == ["sleep 300"]


def test_top_errors(daemon: EssaimDaemon) -> None:
    name = f"idle-{secrets.token_hex(4)}"
    ok(daemon.docker("create", "--name", name, "busybox", "true"))
    try:
        cid = ok(daemon.docker("inspect", "-f", "{{.Id}}", name)).strip()
        stopped = daemon.docker("top", name)
        assert stopped.returncode != 0
        assert f"container {cid} is not running" in stopped.stderr
        with pytest.raises(docker.errors.APIError) as conflict:
            daemon.client().containers.get(name).top()
        assert conflict.value.status_code == 409
    finally:
        daemon.docker("rm", name)
    missing = daemon.docker("top", "no-such-container-y")
    assert "No such container: no-such-container-y" in missing.stderr


def test_stats_no_stream_row(daemon: EssaimDaemon, sleeper: str) -> None:
    fmt = "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.MemPerc}}|{{.NetIO}}|{{.BlockIO}}|{{.PIDs}}"
    row = ok(daemon.docker("stats", "--no-stream", "--format", fmt, sleeper)).strip()
    name, cpu, mem, mem_perc, net, block, pids = row.split("|")
    assert name == sleeper
    assert cpu.endswith("%") and mem_perc.endswith("%")
    usage, limit = mem.split(" / ")
    assert usage.endswith("B") and limit.endswith("B")
    assert limit not in ("0B", "--")
    assert " / " in net and " / " in block
    assert pids == "1"


def test_stats_respects_memory_limit(daemon: EssaimDaemon) -> None:
    name = f"capped-{secrets.token_hex(4)}"
    ok(daemon.docker("run", "-d", "--name", name, "--memory", "64m", "busybox", "sleep", "300"))
    try:
        row = ok(daemon.docker("stats", "--no-stream", "--format", "{{.MemUsage}}", name))
        assert row.strip().endswith("/ 64MiB")
    finally:
        daemon.docker("rm", "-f", name)


def test_sdk_stats_fields(daemon: EssaimDaemon, sleeper: str) -> None:
    container = daemon.client().containers.get(sleeper)
    stats = container.stats(stream=False)
    assert stats["id"] == container.id
    assert stats["name"] == "/" + sleeper
    assert stats["read"] != "0001-01-01T00:00:00Z"
    assert stats["preread"] != "0001-01-01T00:00:00Z"  # two samples, a second apart
    cpu = stats["cpu_stats"]
    assert cpu["cpu_usage"]["total_usage"] > 0
    assert cpu["system_cpu_usage"] > stats["precpu_stats"]["system_cpu_usage"] > 0
    assert cpu["online_cpus"] >= 1
    assert {"periods", "throttled_periods", "throttled_time"} <= cpu["throttling_data"].keys()
    memory = stats["memory_stats"]
    assert 0 < memory["usage"] < memory["limit"]
    assert "inactive_file" in memory["stats"]
    assert stats["pids_stats"]["current"] == 1
    assert "io_service_bytes_recursive" in stats["blkio_stats"]
    one_shot = container.stats(stream=False, one_shot=True)
    assert one_shot["preread"] == "0001-01-01T00:00:00Z"
    assert one_shot["precpu_stats"]["cpu_usage"]["total_usage"] == 0


def test_sdk_stats_stream_one_per_second(daemon: EssaimDaemon, sleeper: str) -> None:
    container = daemon.client().containers.get(sleeper)
    stream = container.stats(stream=True, decode=True)
    first, second = next(stream), next(stream)
    stream.close()  # type: ignore[attr-defined]
    assert second["preread"] == first["read"]
    assert second["precpu_stats"] == first["cpu_stats"]


def test_stats_of_stopped_container_is_empty(daemon: EssaimDaemon) -> None:
    name = f"done-{secrets.token_hex(4)}"
    ok(daemon.docker("create", "--name", name, "busybox", "true"))
    try:
        stats = daemon.client().containers.get(name).stats(stream=False)
        assert stats["read"] == "0001-01-01T00:00:00Z"
        assert stats["memory_stats"] == {} and stats["pids_stats"] == {}
        row = ok(daemon.docker("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", name))
        assert row.split() == [name, "0"]
    finally:
        daemon.docker("rm", name)


def test_stats_cli_stream_shows_rows(daemon: EssaimDaemon, sleeper: str) -> None:
    proc = subprocess.Popen(
        ["docker", "stats", "--format", "{{.Name}} {{.PIDs}}", sleeper],
        env=daemon.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(2.5)
    finally:
        # The CLI's display loop outlives a first SIGINT/SIGTERM (it only cancels the
        # requests), as with dockerd.
        proc.kill()
        out, _ = proc.communicate(timeout=10)
    assert f"{sleeper} 1" in out
