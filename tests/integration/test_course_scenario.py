"""The containers chapter of a Docker course, walked through end to end on one essaimd:
each test is one bullet of the chapter, done with the real docker CLI as a student types
it and checked through the SDK, files on disk and cgroup values.

The detailed behaviour of each command has its own test module; this one proves that the
pieces work together on one daemon, in the order a course uses them.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.integration.daemon import EssaimDaemon

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def ok(daemon: EssaimDaemon, *args: str, input: str | None = None) -> str:
    result = daemon.docker(*args, input=input)
    assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}"
    return result.stdout


def inspect(daemon: EssaimDaemon, ref: str) -> dict[str, object]:
    found: list[dict[str, object]] = json.loads(ok(daemon, "inspect", ref))
    return found[0]


def cgroup(daemon: EssaimDaemon, controller: str, cid: str, name: str) -> str:
    path = Path("/sys/fs/cgroup") / controller / daemon.cgroup_parent / cid / name
    return path.read_text().strip()


def unique(prefix: str) -> str:
    return f"{prefix}-{time.monotonic_ns()}"


@pytest.fixture(scope="module")
def sdk(daemon: EssaimDaemon) -> Iterator[docker.DockerClient]:
    client = daemon.client()
    yield client
    client.close()


@pytest.fixture
def web(daemon: EssaimDaemon) -> Iterator[str]:
    """A long-running container named like the course's: `web`, with a label."""
    name = unique("web")
    ok(daemon, "run", "-d", "--name", name, "--label", "tier=front", "busybox", "sleep", "600")
    yield name
    daemon.docker("rm", "-f", name)


def test_exec_runs_commands_in_a_running_container(
    daemon: EssaimDaemon, sdk: docker.DockerClient, web: str
) -> None:
    out = ok(daemon, "exec", "-u", "1000", "-w", "/tmp", "-e", "A=b", web, "sh", "-c",
             'id -u; pwd; echo "$A"')  # fmt: skip
    assert out == "1000\n/tmp\nb\n"
    ok(daemon, "exec", "-d", web, "sh", "-c", "echo detached > /tmp/flag")
    deadline = time.monotonic() + 5
    while daemon.docker("exec", web, "test", "-e", "/tmp/flag").returncode != 0:
        assert time.monotonic() < deadline, "the detached exec never ran"
        time.sleep(0.05)
    assert daemon.docker("exec", web, "sh", "-c", "exit 3").returncode == 3
    privileged = ok(daemon, "exec", "--privileged", web, "grep", "CapEff", "/proc/self/status")
    # Privileged means every capability the host itself has (this one may lack some).
    host_bounding = next(
        line.split()[1]
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("CapBnd:")
    )
    assert privileged.split()[1] == host_bounding
    code, output = sdk.containers.get(web).exec_run(["sh", "-c", "echo $HOME"], tty=True)
    assert (code, output) == (0, b"/root\r\n")


def test_observing_a_container(daemon: EssaimDaemon, sdk: docker.DockerClient) -> None:
    since = str(int(time.time()) - 1)
    name = unique("obs")
    ok(daemon, "run", "-d", "--name", name, "-m", "64m", "busybox", "sh", "-c",
       "echo first; echo second >&2; touch /made; rm /bin/true; exec sleep 600")  # fmt: skip
    top = ok(daemon, "top", name, "-o", "pid,comm")
    assert top.splitlines()[0].split() == ["PID", "COMMAND"]
    assert "sleep" in top
    stats = sdk.containers.get(name).stats(stream=False)
    assert stats["memory_stats"]["limit"] == 64 * MiB
    assert stats["pids_stats"]["current"] == 1
    row = ok(daemon, "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}} {{.PIDs}}", name)
    assert row.split()[0] == name and row.split()[-1] == "1" and "64MiB" in row
    deadline = time.monotonic() + 5
    while ok(daemon, "logs", name).strip() != "first":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    both = daemon.docker("logs", "--timestamps", name)
    assert both.stdout.split()[1:] == ["first"] and both.stderr.split()[1:] == ["second"]
    assert ok(daemon, "logs", "--until", since, name) == ""
    diff = ok(daemon, "diff", name).splitlines()
    assert "A /made" in diff and "D /bin/true" in diff and "C /bin" in diff
    sized = json.loads(ok(daemon, "inspect", "--size", "-f", "{{json .}}", name))
    assert sized["SizeRw"] >= 0 and sized["SizeRootFs"] > sized["SizeRw"]
    df = ok(daemon, "system", "df", "--format", "{{.Type}} {{.TotalCount}}")
    assert "Containers" in df and "Images" in df and "Local Volumes" in df
    ok(daemon, "rm", "-f", name)
    events = ok(daemon, "events", "--since", since, "--until", str(int(time.time()) + 1),
                "--filter", f"container={name}", "--format", "{{.Action}}")  # fmt: skip
    actions = events.split()
    for action in ("create", "start", "kill", "die", "destroy"):
        assert action in actions
    assert actions.index("create") < actions.index("start") < actions.index("die")
    died = ok(daemon, "events", "--since", since, "--until", str(int(time.time()) + 1),
              "--filter", "type=container", "--filter", "event=die", "--filter", "image=busybox",
              "--filter", f"container={name}",
              "--format", "{{.Actor.Attributes.exitCode}}")  # fmt: skip
    assert died.split() == ["137"]


def test_copying_files_both_ways_never_escapes(
    daemon: EssaimDaemon, web: str, tmp_path: Path
) -> None:
    (tmp_path / "page.html").write_text("<h1>hi</h1>\n")
    ok(daemon, "cp", str(tmp_path / "page.html"), f"{web}:/tmp/")
    ok(daemon, "cp", f"{web}:/tmp/page.html", str(tmp_path / "back.html"))
    assert (tmp_path / "back.html").read_text() == "<h1>hi</h1>\n"
    planted = tmp_path / "outside"
    planted.mkdir()
    hostile = io.BytesIO()
    with tarfile.open(fileobj=hostile, mode="w") as tar:
        for name, kind, link in (
            ("../../../../../../" + str(planted)[1:] + "/evil", tarfile.REGTYPE, ""),
            ("escape", tarfile.SYMTYPE, str(planted)),
            ("escape/evil", tarfile.REGTYPE, ""),
        ):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, link
            info.size = 4 if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(b"evil") if kind == tarfile.REGTYPE else None)
    subprocess.run(["docker", "cp", "-", f"{web}:/tmp"], env=daemon.env(),
                   input=hostile.getvalue(), capture_output=True, timeout=60)  # fmt: skip
    assert list(planted.iterdir()) == []


def test_lifecycle_commands(daemon: EssaimDaemon, sdk: docker.DockerClient, tmp_path: Path) -> None:
    name = unique("life")
    ok(daemon, "run", "-d", "--name", name, "--init", "--stop-signal", "SIGUSR1",
       "--stop-timeout", "2", "busybox", "sleep", "600")  # fmt: skip
    cid = inspect(daemon, name)["Id"]
    assert isinstance(cid, str)
    assert ok(daemon, "exec", name, "cat", "/proc/1/comm").strip() in ("tini", "docker-init")
    ok(daemon, "pause", name)
    assert cgroup(daemon, "freezer", cid, "freezer.state") == "FROZEN"
    assert ok(daemon, "inspect", "-f", "{{.State.Status}}", name).strip() == "paused"
    ok(daemon, "unpause", name)
    assert cgroup(daemon, "freezer", cid, "freezer.state") == "THAWED"
    renamed = unique("renamed")
    ok(daemon, "rename", name, renamed)
    ok(daemon, "update", "--memory", "48m", "--memory-swap", "96m", "--cpus", "0.25",
       "--restart", "on-failure:2", renamed)  # fmt: skip
    assert cgroup(daemon, "memory", cid, "memory.limit_in_bytes") == str(48 * MiB)
    assert cgroup(daemon, "cpu", cid, "cpu.cfs_quota_us") == "25000"
    assert sdk.containers.get(renamed).attrs["HostConfig"]["RestartPolicy"] == {
        "Name": "on-failure", "MaximumRetryCount": 2,
    }  # fmt: skip
    started = inspect(daemon, renamed)["State"]
    ok(daemon, "restart", "-t", "1", renamed)
    assert inspect(daemon, renamed)["State"] != started
    ok(daemon, "exec", renamed, "sh", "-c", "echo kept > /kept")
    image = unique("snapshot")
    ok(daemon, "commit", "-m", "with kept", "-a", "student", "-c", 'CMD ["cat", "/kept"]',
       "-c", "ENV STAGE=committed", renamed, f"{image}:v1")  # fmt: skip
    assert ok(daemon, "run", "--rm", f"{image}:v1") == "kept\n"
    committed = sdk.images.get(f"{image}:v1").attrs
    assert (committed["Comment"], committed["Author"]) == ("with kept", "student")
    assert "STAGE=committed" in committed["Config"]["Env"]
    ok(daemon, "rmi", f"{image}:v1")
    export = tmp_path / "fs.tar"
    ok(daemon, "export", "-o", str(export), renamed)
    with tarfile.open(export) as tar:
        kept = tar.extractfile("kept")
        assert kept is not None and kept.read() == b"kept\n"
    # The init forwards SIGUSR1 to sleep, which dies of it at once: well inside the
    # two-second stop timeout, so no SIGKILL is needed.
    before = time.monotonic()
    ok(daemon, "stop", renamed)
    assert time.monotonic() - before < 2
    assert inspect(daemon, renamed)["State"]["ExitCode"] == 128 + 10  # type: ignore[index]
    ok(daemon, "rm", renamed)
    assert ok(daemon, "run", "--rm", "busybox", "echo", "gone") == "gone\n"
    assert ok(daemon, "ps", "-aq", "--filter", "ancestor=busybox", "--filter", "status=exited",
              "--filter", "name=^/gone$") == ""  # fmt: skip


def test_restart_policies_back_off(daemon: EssaimDaemon) -> None:
    name = unique("flaky")
    ok(daemon, "run", "-d", "--name", name, "--restart", "on-failure:2", "busybox", "false")
    deadline = time.monotonic() + 10
    while True:
        state = inspect(daemon, name)
        if state["RestartCount"] == 2 and state["State"]["Status"] == "exited":  # type: ignore[index]
            break
        assert time.monotonic() < deadline, state
        time.sleep(0.1)
    assert state["State"]["ExitCode"] == 1  # type: ignore[index]
    ok(daemon, "rm", name)


def test_resources_are_enforced_by_cgroups(daemon: EssaimDaemon, sdk: docker.DockerClient) -> None:
    hog = daemon.docker("run", "--name", unique("hog"), "-m", "32m", "busybox", "tail", "/dev/zero")
    assert hog.returncode == 137
    # The subshell forks until the kernel refuses; the sleeps it left behind stay.
    bomb = ok(daemon, "run", "-d", "--pids-limit", "20", "busybox", "sh", "-c",
              "(for i in $(seq 40); do sleep 60 & done); sleep 60").strip()  # fmt: skip
    deadline = time.monotonic() + 10
    while cgroup(daemon, "pids", bomb, "pids.events").split() == ["max", "0"]:
        assert time.monotonic() < deadline, "the fork bomb never reached the limit"
        time.sleep(0.05)
    assert int(cgroup(daemon, "pids", bomb, "pids.current")) <= 20
    assert cgroup(daemon, "pids", bomb, "pids.max") == "20"
    ok(daemon, "rm", "-f", bomb)
    box = sdk.containers.run(
        "busybox", ["sleep", "600"], detach=True, nano_cpus=500_000_000, mem_limit="64m",
        mem_reservation="32m", cpu_shares=512, cpuset_cpus="0", shm_size="16m",
        ulimits=[docker.types.Ulimit(name="nofile", soft=512, hard=1024)],
    )  # fmt: skip
    try:
        assert cgroup(daemon, "cpu", box.id, "cpu.cfs_quota_us") == "50000"
        assert cgroup(daemon, "cpu", box.id, "cpu.cfs_period_us") == "100000"
        assert cgroup(daemon, "cpu", box.id, "cpu.shares") == "512"
        assert cgroup(daemon, "cpuset", box.id, "cpuset.cpus") == "0"
        assert cgroup(daemon, "memory", box.id, "memory.soft_limit_in_bytes") == str(32 * MiB)
        assert box.exec_run(["sh", "-c", "ulimit -n; ulimit -Hn"]).output == b"512\n1024\n"
        shm = box.exec_run(["df", "-k", "/dev/shm"]).output.decode().splitlines()[-1]
        assert shm.split()[1] == "16384"
    finally:
        box.remove(force=True)


def test_storage_volumes_binds_and_tmpfs(
    daemon: EssaimDaemon, sdk: docker.DockerClient, tmp_path: Path
) -> None:
    volume = unique("data")
    ok(daemon, "volume", "create", "--label", "course=yes", volume)
    assert volume in ok(daemon, "volume", "ls", "-q", "--filter", "label=course=yes").split()
    ok(daemon, "run", "--rm", "-v", f"{volume}:/data", "busybox", "sh", "-c", "echo v > /data/f")
    assert ok(daemon, "run", "--rm", "--mount", f"source={volume},target=/d,readonly",
              "busybox", "cat", "/d/f") == "v\n"  # fmt: skip
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("bound\n")
    assert ok(daemon, "run", "--rm", "-v", f"{tmp_path / 'site'}:/www:ro", "busybox", "cat",
              "/www/index.html") == "bound\n"  # fmt: skip
    refused = daemon.docker("run", "--rm", "-v", f"{tmp_path / 'site'}:/www:ro", "busybox",
                            "touch", "/www/x")  # fmt: skip
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr
    script = "touch /scratch/ok && ! touch /nope 2>/dev/null && echo fine"
    assert ok(daemon, "run", "--rm", "--read-only", "--tmpfs", "/scratch:size=1m", "busybox",
              "sh", "-c", script) == "fine\n"  # fmt: skip
    holder = unique("holder")
    ok(daemon, "create", "--name", holder, "-v", f"{volume}:/shared", "busybox")
    assert ok(daemon, "run", "--rm", "--volumes-from", holder, "busybox", "cat",
              "/shared/f") == "v\n"  # fmt: skip
    in_use = daemon.docker("volume", "rm", volume)
    assert in_use.returncode == 1 and "volume is in use" in in_use.stderr
    ok(daemon, "rm", holder)
    assert sdk.volumes.get(volume).attrs["Labels"] == {"course": "yes"}
    ok(daemon, "volume", "rm", volume)


def test_identity_and_security_flags(
    daemon: EssaimDaemon, sdk: docker.DockerClient, tmp_path: Path
) -> None:
    (tmp_path / "app.env").write_text("GREETING=hello\n# a comment\nMODE=course\n")
    (tmp_path / "app.labels").write_text("owner=student\n")
    name = unique("who")
    ok(daemon, "run", "-d", "--name", name, "--hostname", "box", "--add-host", "db:10.1.2.3",
       "--env-file", str(tmp_path / "app.env"), "--label-file", str(tmp_path / "app.labels"),
       "--cap-drop", "ALL", "--cap-add", "NET_ADMIN", "--group-add", "wheel",
       "--device", "/dev/zero:/dev/myzero", "--security-opt", "no-new-privileges",
       "busybox", "sleep", "600")  # fmt: skip
    assert ok(daemon, "exec", name, "hostname") == "box\n"
    assert "10.1.2.3\tdb" in ok(daemon, "exec", name, "cat", "/etc/hosts")
    env = ok(daemon, "exec", name, "env").splitlines()
    assert "GREETING=hello" in env and "MODE=course" in env
    assert name in ok(daemon, "ps", "--filter", "label=owner=student", "--format", "{{.Names}}")
    status = dict(
        line.split(":\t", 1)
        for line in ok(daemon, "exec", name, "cat", "/proc/1/status").splitlines()
        if ":\t" in line
    )
    assert int(status["CapEff"], 16) == 1 << 12  # CAP_NET_ADMIN alone
    assert status["NoNewPrivs"].strip() == "1"
    assert "10" in ok(daemon, "exec", name, "id", "-G").split()  # wheel
    assert ok(daemon, "exec", name, "sh", "-c", "head -c 4 /dev/myzero | wc -c").strip() == "4"
    devices = sdk.containers.get(name).attrs["HostConfig"]["Devices"]
    assert devices == [{"PathOnHost": "/dev/zero", "PathInContainer": "/dev/myzero",
                        "CgroupPermissions": "rwm"}]  # fmt: skip
    ok(daemon, "rm", "-f", name)


def test_health_checks_show_in_ps_and_inspect(daemon: EssaimDaemon) -> None:
    name = unique("healthy")
    ok(daemon, "run", "-d", "--name", name, "--health-cmd", "test -e /tmp/up",
       "--health-interval", "200ms", "--health-retries", "1", "busybox", "sh", "-c",
       "sleep 1; touch /tmp/up; exec sleep 600")  # fmt: skip
    assert "(health: starting)" in ok(daemon, "ps", "--filter", f"name={name}")
    deadline = time.monotonic() + 10
    while "(healthy)" not in ok(daemon, "ps", "--filter", f"name={name}"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert name in ok(daemon, "ps", "--filter", "health=healthy", "--format", "{{.Names}}")
    ok(daemon, "exec", name, "rm", "/tmp/up")
    deadline = time.monotonic() + 10
    while ok(daemon, "inspect", "-f", "{{.State.Health.Status}}", name).strip() != "unhealthy":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    ok(daemon, "rm", "-f", name)


def test_logging_rotates_and_the_none_driver_keeps_nothing(
    daemon: EssaimDaemon, sdk: docker.DockerClient
) -> None:
    name = unique("chatty")
    # 3000 lines of 100 bytes, paced so the rotation check keeps up.
    script = ("i=0; while [ $i -lt 3000 ]; do printf 'line %05d %s\\n' $i "
              "..........................................................................; "
              "i=$((i+1)); [ $((i % 50)) -eq 0 ] && sleep 0.05; done")  # fmt: skip
    ok(daemon, "run", "-d", "--name", name, "--log-opt", "max-size=100k", "--log-opt",
       "max-file=5", "--log-opt", "labels=tier", "--label", "tier=back", "busybox", "sh", "-c",
       script)  # fmt: skip
    assert daemon.docker("wait", name, timeout=120).returncode == 0
    cid = inspect(daemon, name)["Id"]
    container_dir = daemon.data_root / "containers" / str(cid)
    files = sorted(p.name for p in container_dir.glob("container.log*"))
    assert "container.log.1" in files and len(files) <= 5
    lines = ok(daemon, "logs", name).splitlines()
    assert lines[-1].startswith("line 02999") and len(lines) > 1000
    numbers = [int(line.split()[1]) for line in lines]
    assert numbers == list(range(numbers[0], 3000))  # the oldest gone, nothing else
    assert ok(daemon, "logs", "--tail", "2", name).splitlines() == lines[-2:]
    assert ok(daemon, "logs", "--details", "--tail", "1", name).startswith("tier=back line 02999")
    ok(daemon, "rm", name)
    quiet = unique("quiet")
    attached = ok(daemon, "run", "--name", quiet, "--log-driver", "none", "busybox", "echo", "hi")
    assert attached == "hi\n"
    refused = daemon.docker("logs", quiet)
    assert "configured logging driver does not support reading" in refused.stderr
    log_config = sdk.containers.get(quiet).attrs["HostConfig"]["LogConfig"]
    assert log_config == {"Type": "none", "Config": {}}
    ok(daemon, "rm", quiet)


def test_housekeeping_prune_filters_and_sizes(daemon: EssaimDaemon) -> None:
    label = unique("sweep")
    for _ in range(2):
        ok(daemon, "run", "--label", f"batch={label}", "busybox", "true")
    exited = ok(daemon, "ps", "-aq", "--filter", f"label=batch={label}",
                "--filter", "exited=0").split()  # fmt: skip
    assert len(exited) == 2
    sized = ok(daemon, "ps", "-a", "-s", "--filter", f"label=batch={label}",
               "--format", "{{.Size}}").splitlines()  # fmt: skip
    assert len(sized) == 2 and all("virtual" in row for row in sized)
    fields = "|".join(("{{.ID}}", "{{.Image}}", "{{.Command}}", "{{.Status}}", "{{.Names}}",
                       '{{.Label "batch"}}', "{{.Networks}}"))  # fmt: skip
    rows = ok(daemon, "ps", "-a", "--no-trunc", "--filter", f"label=batch={label}",
              "--filter", "network=bridge", "--format", fields).splitlines()  # fmt: skip
    assert len(rows) == 2
    for row in rows:
        cid, image, command, status, _names, batch, networks = row.split("|")
        assert cid in exited or cid[:12] in exited
        assert (image, command, batch, networks) == ("busybox", '"true"', label, "bridge")
        assert status.startswith("Exited (0)")
    pruned = ok(daemon, "container", "prune", "-f", "--filter", f"label=batch={label}")
    assert all(cid in pruned for cid in exited)
    assert ok(daemon, "ps", "-aq", "--filter", f"label=batch={label}") == ""
