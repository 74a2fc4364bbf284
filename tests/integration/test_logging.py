"""Container logs with the real docker CLI and SDK: LogConfig in inspect and its errors,
max-size/max-file rotation (files on disk, compression, truncation, across a daemon
restart), `docker logs` across rotated files, follow with nothing lost, the none driver,
the local driver and `--details`.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import docker
import pytest
from docker.types import LogConfig

from tests.integration.daemon import EssaimDaemon

# One line of about 100 bytes in the log file per number, `count` of them, paced so that
# the rotation check sees each file reach max-size long before it doubles.
PACED = (
    "i=0; while [ $i -lt {count} ]; do "
    "printf 'line %05d ..................................................\\n' $i; "
    "i=$((i+1)); [ $((i % 10)) -eq 0 ] && sleep 0.05; done; sleep {linger}"
)


def paced(count: int, linger: float = 0) -> list[str]:
    return ["sh", "-c", PACED.format(count=count, linger=linger)]


def run(d: EssaimDaemon, *args: str) -> str:
    result = d.docker("run", "-d", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def log_dir(d: EssaimDaemon, cid: str) -> Path:
    return d.data_root / "containers" / cid


def log_files(d: EssaimDaemon, cid: str) -> dict[str, int]:
    """The container's log files on disk and their sizes."""
    out = {}
    for path in log_dir(d, cid).glob("container.log*"):
        if path.name == "container.log.tmp":
            continue  # conmon's new file for the instant before it takes the name
        with contextlib.suppress(FileNotFoundError):  # rotated away meanwhile
            out[path.name] = path.stat().st_size
    return out


def numbers(text: str) -> list[int]:
    return [int(line.split()[1]) for line in text.splitlines()]


def wait_exit(d: EssaimDaemon, cid: str) -> None:
    assert d.docker("wait", cid, timeout=120).returncode == 0


def until(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_inspect_shows_the_log_config_and_path(daemon: EssaimDaemon) -> None:
    d = daemon
    plain = d.docker("create", "busybox", "true").stdout.strip()
    inspect = json.loads(d.docker("inspect", plain).stdout)[0]
    assert inspect["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {}}
    assert inspect["LogPath"] == ""  # dockerd sets it when the logger first starts

    cid = d.docker(
        "create", "--log-opt", "max-size=10k", "--log-opt", "max-file=3", "busybox", "echo", "hi"
    ).stdout.strip()
    assert d.docker("start", "-a", cid).stdout == "hi\n"
    inspect = json.loads(d.docker("inspect", cid).stdout)[0]
    assert inspect["HostConfig"]["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-file": "3", "max-size": "10k"},
    }
    assert inspect["LogPath"] == str(log_dir(d, cid) / "container.log")
    assert "stdout F hi" in Path(inspect["LogPath"]).read_text()
    d.docker("rm", "-f", plain, cid)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--log-driver", "syslogx"], "logger: no log driver named 'syslogx' is registered"),
        (["--log-opt", "max-sise=1m"], "unknown log opt 'max-sise' for json-file log driver"),
        (["--log-driver", "local", "--log-opt", "x=1"], "unknown log opt 'x' for log driver local"),
        (["--log-opt", "max-file=0"], "max-file cannot be less than 1"),
        (["--log-opt", "max-size=0"], "max-size must be a positive number"),
        (["--log-opt", "max-size=ten"], "invalid size: 'ten'"),
        (
            ["--log-opt", "compress=true", "--log-opt", "max-size=1m"],
            "compress cannot be true when max-file is less than 2 or max-size is not set",
        ),
        (
            ["--log-driver", "local", "--log-opt", "max-file=1"],
            "compression cannot be enabled when max file count is 1",
        ),
    ],
)
def test_create_refuses_bad_log_configs(
    daemon: EssaimDaemon, flags: list[str], message: str
) -> None:
    before = daemon.docker("ps", "-aq").stdout
    result = daemon.docker("run", *flags, "busybox", "true")
    assert result.returncode == 125
    assert f"Error response from daemon: {message}" in result.stderr or (
        f"failed to initialize logging driver: {message}" in result.stderr
    )
    assert daemon.docker("ps", "-aq").stdout == before  # nothing was created


def test_sdk_log_config_and_bad_options(daemon: EssaimDaemon) -> None:
    client = daemon.client()
    config = LogConfig(type=LogConfig.types.JSON, config={"max-size": "10k", "max-file": "2"})
    container = client.containers.run("busybox", ["echo", "sdk"], log_config=config, detach=True)
    try:
        container.wait()
        assert container.logs() == b"sdk\n"
        container.reload()
        assert container.attrs["HostConfig"]["LogConfig"] == {
            "Type": "json-file",
            "Config": {"max-size": "10k", "max-file": "2"},
        }
    finally:
        container.remove(force=True)
    with pytest.raises(docker.errors.APIError) as caught:
        client.containers.create("busybox", log_config=LogConfig(type="gelfish"))
    assert caught.value.status_code == 400
    assert "no log driver named 'gelfish' is registered" in str(caught.value.explanation)


def test_rotation_keeps_max_file_files_of_about_max_size(daemon: EssaimDaemon) -> None:
    d = daemon
    cid = run(d, "--log-opt", "max-size=10k", "--log-opt", "max-file=3", "busybox", *paced(400))
    most = 0
    while d.docker("inspect", "-f", "{{.State.Running}}", cid).stdout.strip() == "true":
        files = log_files(d, cid)
        assert set(files) <= {"container.log", "container.log.1", "container.log.2"}
        most = max(most, len(files))
        time.sleep(0.05)
    files = log_files(d, cid)
    assert set(files) == {"container.log", "container.log.1", "container.log.2"}
    assert most == 3
    for name in ("container.log.1", "container.log.2"):
        # rotated once at least 10 kB; what comes in between two checks is extra
        assert 10_000 <= files[name] < 30_000, files
    shown = numbers(d.docker("logs", cid).stdout)
    assert shown[-1] == 399
    assert shown == list(range(shown[0], 400))  # the oldest are gone, nothing in between
    assert shown[0] > 0
    # the newest lines, the oldest kept, and a tail that reaches into the rotated files
    assert numbers(d.docker("logs", "--tail", "3", cid).stdout) == [397, 398, 399]
    assert numbers(d.docker("logs", "--tail", "250", cid).stdout) == list(range(150, 400))
    stamped = d.docker("logs", "-t", "--tail", "250", cid).stdout.splitlines()
    stamps = [line.split()[0] for line in stamped]
    assert stamps == sorted(stamps)
    since = d.docker("logs", "--since", stamps[100], cid).stdout
    assert numbers(since)[0] <= 250 and numbers(since)[-1] == 399
    d.docker("rm", "-f", cid)


def test_max_file_one_truncates(daemon: EssaimDaemon) -> None:
    d = daemon
    cid = run(d, "--log-opt", "max-size=10k", "busybox", *paced(300))
    wait_exit(d, cid)
    files = log_files(d, cid)
    assert list(files) == ["container.log"]
    assert files["container.log"] < 20_000
    shown = numbers(d.docker("logs", cid).stdout)
    assert shown[-1] == 299 and shown[0] > 0
    assert shown == list(range(shown[0], 300))
    d.docker("rm", "-f", cid)


def test_compressed_rotated_files_are_read_back(daemon: EssaimDaemon) -> None:
    d = daemon
    cid = run(
        d, "--log-opt", "max-size=10k", "--log-opt", "max-file=4", "--log-opt", "compress=true",
        "busybox", *paced(400, linger=1),
    )  # fmt: skip
    wait_exit(d, cid)
    files = log_files(d, cid)
    assert set(files) == {"container.log", "container.log.1.gz", "container.log.2.gz",
                          "container.log.3.gz"}  # fmt: skip
    oldest = gzip.decompress((log_dir(d, cid) / "container.log.3.gz").read_bytes())
    assert oldest.count(b" stdout F line ") > 50
    shown = numbers(d.docker("logs", cid).stdout)
    assert shown == list(range(shown[0], 400))
    in_oldest = [int(line.split()[4]) for line in oldest.decode().splitlines()]
    assert in_oldest == shown[: len(in_oldest)]  # the oldest file holds the first shown
    d.docker("rm", "-f", cid)


# 100k numbered lines as fast as seq writes them, in bursts of 1000 with a short pause,
# so that rotation checks fall during the run.
FAST = (
    "i=0; while [ $i -lt 100 ]; do seq $((i * 1000 + 1)) $((i * 1000 + 1000)); "
    "i=$((i+1)); sleep 0.01; done"
)


@pytest.mark.parametrize("rotate", [False, True], ids=["plain", "rotating"])
def test_follow_loses_nothing_from_a_fast_writer(daemon: EssaimDaemon, rotate: bool) -> None:
    d = daemon
    opts = ["--log-opt", "max-size=50k", "--log-opt", "max-file=10000"] if rotate else []
    cid = run(d, *opts, "busybox", "sh", "-c", f"sleep 0.3; {FAST}")
    follower = subprocess.Popen(
        ["docker", "logs", "-f", cid], env=d.env(), stdout=subprocess.PIPE, text=True
    )
    # Not read for a while: the follower falls behind while the writer runs on.
    time.sleep(1.5)
    out, _ = follower.communicate(timeout=120)
    lines = out.split()
    assert len(lines) == 100000
    assert lines == [str(n) for n in range(1, 100001)]
    if rotate:
        assert len(log_files(d, cid)) > 2  # it did rotate underneath the follower
    d.docker("rm", "-f", cid)


def test_sdk_follow_stream_across_rotations(daemon: EssaimDaemon) -> None:
    client = daemon.client()
    config = LogConfig(type="json-file", config={"max-size": "20k", "max-file": "1000"})
    container = client.containers.run(
        "busybox", ["sh", "-c", f"sleep 0.3; {FAST}"], log_config=config, detach=True
    )
    try:
        data = b"".join(container.logs(stream=True, follow=True))
        assert data.split() == [str(n).encode() for n in range(1, 100001)]
        assert len(log_files(daemon, container.id)) > 2
    finally:
        container.remove(force=True)


def test_rotation_resumes_after_a_daemon_restart(own_daemon: EssaimDaemon) -> None:
    d = own_daemon
    cid = run(d, "--log-opt", "max-size=10k", "--log-opt", "max-file=3", "busybox", *paced(600))
    until(lambda: "container.log.1" in log_files(d, cid))
    d.kill9()
    assert "container.log.2" not in log_files(d, cid)
    time.sleep(0.5)
    d.start()
    wait_exit(d, cid)
    # a second rotation, by the restarted daemon, made .2 (and kept no more than 3)
    files = log_files(d, cid)
    assert set(files) == {"container.log", "container.log.1", "container.log.2"}
    assert files["container.log.1"] < 30_000
    shown = numbers(d.docker("logs", cid).stdout)
    assert shown[-1] == 599 and shown == list(range(shown[0], 600))


def test_a_rotation_cut_short_by_a_daemon_kill_is_repaired(own_daemon: EssaimDaemon) -> None:
    d = own_daemon
    cid = run(d, "--log-opt", "max-size=10k", "--log-opt", "max-file=9", "busybox", *paced(300))
    until(lambda: log_files(d, cid).get("container.log", 0) > 1000)
    d.kill9()
    # What a kill between the rename and conmon's reopen leaves: no live file, conmon
    # writing on into <log>.1.
    (log_dir(d, cid) / "container.log").rename(log_dir(d, cid) / "container.log.1")
    d.start()
    wait_exit(d, cid)
    # conmon was asked to reopen: the live file is back, and nothing was lost
    assert "container.log" in log_files(d, cid)
    assert numbers(d.docker("logs", cid).stdout) == list(range(300))


def test_none_driver_shows_output_attached_and_keeps_no_log(daemon: EssaimDaemon) -> None:
    d = daemon
    attached = d.docker("run", "--name", "quiet", "--log-driver", "none", "busybox", "echo", "hi")
    assert attached.stdout == "hi\n"
    cid = d.docker("inspect", "-f", "{{.Id}}", "quiet").stdout.strip()
    assert log_files(d, cid) == {}
    inspect = json.loads(d.docker("inspect", cid).stdout)[0]
    assert inspect["HostConfig"]["LogConfig"] == {"Type": "none", "Config": {}}
    assert inspect["LogPath"] == ""
    logs = d.docker("logs", "quiet")
    assert logs.returncode == 1
    assert "configured logging driver does not support reading" in logs.stderr
    with pytest.raises(docker.errors.APIError) as caught:
        d.client().containers.get(cid).logs()
    assert caught.value.status_code == 501
    d.docker("rm", "-f", cid)


def test_local_driver_reads_back_and_hides_its_path(daemon: EssaimDaemon) -> None:
    d = daemon
    cid = run(d, "--log-driver", "local", "busybox", "sh", "-c", "echo one; echo two >&2")
    wait_exit(d, cid)
    assert d.docker("logs", cid).stdout == "one\n"
    assert d.docker("logs", cid).stderr == "two\n"
    inspect = json.loads(d.docker("inspect", cid).stdout)[0]
    assert inspect["HostConfig"]["LogConfig"] == {"Type": "local", "Config": {}}
    assert inspect["LogPath"] == ""
    d.docker("rm", "-f", cid)


def test_details_prefix_each_line_with_its_attributes(daemon: EssaimDaemon) -> None:
    d = daemon
    cid = run(
        d, "--label", "app=web shop", "--label", "tier=front", "-e", "REGION=eu/west",
        "--log-opt", "labels=app,absent", "--log-opt", "env=REGION", "--log-opt", "tag={{.Name}}",
        "--name", "detailed", "busybox", "sh", "-c", "echo one; echo two",
    )  # fmt: skip
    wait_exit(d, cid)
    shown = d.docker("logs", "--details", cid).stdout
    assert shown == (
        "REGION=eu%2Fwest,app=web+shop,tag=detailed one\n"
        "REGION=eu%2Fwest,app=web+shop,tag=detailed two\n"
    )
    stamped = d.docker("logs", "--details", "-t", cid).stdout.splitlines()
    assert stamped[0].split(" ", 1)[1] == "REGION=eu%2Fwest,app=web+shop,tag=detailed one"
    assert len(stamped[0].split(" ", 1)[0]) == len("2024-01-01T00:00:00.000000000Z")
    plain = run(d, "busybox", "echo", "bare")
    wait_exit(d, plain)
    assert d.docker("logs", "--details", plain).stdout == " bare\n"  # no attributes
    d.docker("rm", "-f", cid, plain)


def test_info_lists_the_drivers_that_can_be_chosen(daemon: EssaimDaemon) -> None:
    shown = daemon.docker("info", "-f", "{{.LoggingDriver}} {{json .Plugins.Log}}")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == 'json-file ["json-file","local"]'
