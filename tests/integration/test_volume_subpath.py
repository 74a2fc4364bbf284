"""`--mount type=volume,...,volume-subpath=` as dockerd does it: a directory or a file of
the volume mounted alone, refused at create when it is not lexically inside the volume,
refused at start when it is missing or a symlink leads out, seeded from the image, and
its private mount gone once the run ends (also across a daemon restart).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.integration.daemon import EssaimDaemon

VOLUME = "spvol"


def _inspect(daemon: EssaimDaemon, ref: str) -> dict[str, Any]:
    result = daemon.docker("inspect", ref)
    assert result.returncode == 0, result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout)
    return found[0]


def _data(daemon: EssaimDaemon, name: str = VOLUME) -> Path:
    return Path(os.path.realpath(daemon.data_root / "volumes" / name / "_data"))


def _subpath_mounts(daemon: EssaimDaemon) -> list[str]:
    """Mount points under the daemon's subpath directory, as the host sees them."""
    prefix = str(daemon.exec_root / "subpaths") + "/"
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    return [p for p in points if p.startswith(prefix)]


def _released(daemon: EssaimDaemon, cid: str) -> bool:
    """Whether the run's subpath mounts are gone: a stop answers at the exit, the run's
    mounts are released just after."""
    deadline = time.monotonic() + 10
    while _subpath_mounts(daemon) or (daemon.exec_root / "subpaths" / cid).exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _mount(subpath: str, *, name: str = VOLUME, target: str = "/d") -> str:
    return f"type=volume,src={name},dst={target},volume-subpath={subpath}"


@pytest.fixture(scope="module")
def outside(daemon: EssaimDaemon) -> Path:
    """A host directory outside the volume, that a symlink in the volume names."""
    path = daemon.root / "outside"
    path.mkdir()
    return path


@pytest.fixture(scope="module", autouse=True)
def volume(daemon: EssaimDaemon, outside: Path) -> None:
    # As moby's setupTestVolume, plus links that climb out with `..` and to a host dir.
    script = (
        "echo foo > /v/bar.txt && mkdir -p /v/sub/dir /v/hack && "
        "echo world > /v/sub/dir/hello.txt && "
        "ln -s / /v/hack/root && ln -s ../sub /v/hack/good && ln -s root /v/hack/bad && "
        f"ln -s ../../ /v/hack/up && ln -s {outside} /v/hack/out"
    )
    made = daemon.docker("run", "--rm", "-v", f"{VOLUME}:/v", "busybox", "sh", "-c", script)
    assert made.returncode == 0, made.stderr


def test_directory_subpath_is_mounted_alone_and_writes_land_in_it(daemon: EssaimDaemon) -> None:
    run = daemon.docker(
        "run", "--rm", "--mount", _mount("sub/dir"), "busybox",
        "sh", "-c", "ls /d && echo new > /d/written",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout == "hello.txt\n"
    assert (_data(daemon) / "sub" / "dir" / "written").read_text() == "new\n"
    assert not (_data(daemon) / "written").exists()
    assert _subpath_mounts(daemon) == []


def test_file_subpath_is_a_file_at_the_target(daemon: EssaimDaemon) -> None:
    run = daemon.docker(
        "run", "--rm", "--mount", _mount("bar.txt", target="/etc/bar"), "busybox",
        "sh", "-c", "cat /etc/bar && test -f /etc/bar && echo more >> /etc/bar",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout == "foo\n"
    assert (_data(daemon) / "bar.txt").read_text() == "foo\nmore\n"


def test_symlink_that_stays_in_the_volume_is_followed(daemon: EssaimDaemon) -> None:
    run = daemon.docker("run", "--rm", "--mount", _mount("hack/good"), "busybox", "ls", "/d")
    assert run.returncode == 0, run.stderr
    assert run.stdout == "dir\n"


def test_read_only_subpath(daemon: EssaimDaemon) -> None:
    run = daemon.docker(
        "run", "--rm", "--mount", _mount("sub") + ",readonly", "busybox", "touch", "/d/x"
    )
    assert run.returncode != 0
    assert "Read-only file system" in run.stderr
    assert not (_data(daemon) / "sub" / "x").exists()


@pytest.mark.parametrize("subpath", ["/etc/passwd", "../../../../../../etc/passwd", "a/../.."])
def test_subpath_outside_the_volume_refused_at_create(daemon: EssaimDaemon, subpath: str) -> None:
    run = daemon.docker("run", "--rm", "--mount", _mount(subpath), "busybox", "true")
    assert run.returncode == 125
    assert (
        'Error response from daemon: invalid mount config for type "volume": '
        "subpath must be a relative path within the volume"
    ) in run.stderr
    assert daemon.docker("ps", "-aq").stdout == ""


def test_subpath_of_an_anonymous_volume_refused(daemon: EssaimDaemon) -> None:
    run = daemon.docker(
        "run", "--rm", "--mount", "type=volume,dst=/d,volume-subpath=sub", "busybox", "true"
    )
    assert run.returncode == 125
    assert (
        'invalid mount config for type "volume": must not set Subpath when using anonymous volumes'
    ) in run.stderr


def test_missing_subpath_fails_at_start(daemon: EssaimDaemon) -> None:
    run = daemon.docker(
        "run", "--name", "sp-missing", "--mount", _mount("some-path/that/doesnt-exist"),
        "busybox", "true",
    )  # fmt: skip
    base = _data(daemon)
    message = (
        f"cannot access path {base}/some-path/that/doesnt-exist: "
        f"lstat {base}/some-path: no such file or directory"
    )
    assert run.returncode == 127, run.stderr
    assert f"Error response from daemon: {message}" in run.stderr
    state = _inspect(daemon, "sp-missing")["State"]
    assert state["Error"] == message and state["Status"] == "created"
    assert _subpath_mounts(daemon) == []
    daemon.docker("rm", "sp-missing")


@pytest.mark.parametrize("subpath", ["hack/root", "hack/bad", "hack/up", "hack/out"])
def test_symlink_leading_out_of_the_volume_fails_at_start(
    daemon: EssaimDaemon, outside: Path, subpath: str
) -> None:
    run = daemon.docker(
        "run", "--rm", "--mount", _mount(subpath), "busybox",
        "sh", "-c", "touch /d/escaped; echo ran",
    )  # fmt: skip
    assert run.returncode == 125, run.stderr
    assert (
        "Error response from daemon: path concatenation escapes the base directory, "
        f"base: {_data(daemon)}, subpath: {subpath}"
    ) in run.stderr
    assert "ran" not in run.stdout
    assert list(outside.iterdir()) == []
    assert not (_data(daemon).parent / "escaped").exists()
    assert _subpath_mounts(daemon) == []


def test_subpath_mount_lives_as_long_as_the_run(daemon: EssaimDaemon) -> None:
    run = daemon.docker("run", "-d", "--mount", _mount("sub"), "busybox", "sleep", "600")
    assert run.returncode == 0, run.stderr
    cid = run.stdout.strip()
    try:
        mounts = _subpath_mounts(daemon)
        assert mounts == [str(daemon.exec_root / "subpaths" / cid / "0")]
        assert daemon.docker("stop", "-t", "0", cid).returncode == 0
        assert _released(daemon, cid)
        # A second run mounts it again; its removal takes it too.
        assert daemon.docker("start", cid).returncode == 0
        assert _subpath_mounts(daemon) == mounts
    finally:
        daemon.docker("rm", "-f", cid)
    assert _subpath_mounts(daemon) == []
    assert (_data(daemon) / "sub" / "dir" / "hello.txt").read_text() == "world\n"


def test_inspect_shows_the_volume_and_the_subpath_as_given(daemon: EssaimDaemon) -> None:
    created = daemon.docker("create", "--mount", _mount("sub/dir"), "busybox", "true")
    assert created.returncode == 0, created.stderr
    cid = created.stdout.strip()
    try:
        info = _inspect(daemon, cid)
        (mount,) = info["Mounts"]
        assert mount["Type"] == "volume" and mount["Name"] == VOLUME
        assert mount["Source"] == str(daemon.data_root / "volumes" / VOLUME / "_data")
        assert mount["Destination"] == "/d"
        (spec,) = info["HostConfig"]["Mounts"]
        assert spec["VolumeOptions"]["Subpath"] == "sub/dir"
    finally:
        daemon.docker("rm", cid)


def test_image_content_seeds_an_empty_subpath(daemon: EssaimDaemon) -> None:
    name = "spseed"
    made = daemon.docker(
        "run", "--rm", "-v", f"{name}:/v", "busybox", "sh", "-c", "mkdir /v/bin /v/other"
    )
    assert made.returncode == 0, made.stderr
    run = daemon.docker(
        "run", "--rm", "--mount", _mount("bin", name=name, target="/bin"), "busybox",
        "ls", "/bin/busybox",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout == "/bin/busybox\n"
    assert (_data(daemon, name) / "bin" / "busybox").is_file()
    assert sorted(p.name for p in _data(daemon, name).iterdir()) == ["bin", "other"]
    assert _subpath_mounts(daemon) == []
    # A subpath that is not there is not seeded: the start says it is missing.
    missing = daemon.docker(
        "run", "--rm", "--mount", _mount("nothere", name=name, target="/bin"), "busybox", "true"
    )
    assert missing.returncode == 127
    assert "cannot access path" in missing.stderr
    assert not (_data(daemon, name) / "nothere").exists()


def test_sdk_mount_with_subpath(daemon: EssaimDaemon) -> None:
    client = daemon.client()
    try:
        mount = docker.types.Mount("/d", VOLUME, type="volume", subpath="sub/dir")
        out = client.containers.run("busybox", ["cat", "/d/hello.txt"], mounts=[mount], remove=True)
        assert out == b"world\n"
        with pytest.raises(docker.errors.APIError) as raised:
            bad = docker.types.Mount("/d", VOLUME, type="volume", subpath="../x")
            client.containers.create("busybox", ["true"], mounts=[bad])
        assert raised.value.status_code == 400
        assert "subpath must be a relative path within the volume" in str(raised.value)
    finally:
        client.close()


def test_subpath_mount_released_after_a_daemon_restart(own_daemon: EssaimDaemon) -> None:
    made = own_daemon.docker("run", "--rm", "-v", "restartvol:/v", "busybox", "mkdir", "/v/s")
    assert made.returncode == 0, made.stderr
    run = own_daemon.docker(
        "run", "-d", "--mount", _mount("s", name="restartvol"), "busybox", "sleep", "600"
    )
    assert run.returncode == 0, run.stderr
    cid = run.stdout.strip()
    assert len(_subpath_mounts(own_daemon)) == 1
    own_daemon.kill9()
    own_daemon.start()
    # Re-adopted and still running: its subpath mount stays while it runs.
    assert _inspect(own_daemon, cid)["State"]["Running"]
    assert len(_subpath_mounts(own_daemon)) == 1
    assert own_daemon.docker("stop", "-t", "0", cid).returncode == 0
    assert _released(own_daemon, cid)
    assert own_daemon.docker("rm", cid).returncode == 0


def test_subpath_mounts_left_by_a_crash_go_at_start_up(own_daemon: EssaimDaemon) -> None:
    own_daemon.stop()
    kept = own_daemon.root / "kept"
    kept.mkdir()
    (kept / "data").write_text("still here")
    leftover = own_daemon.exec_root / "subpaths" / f"seed-{'ab' * 32}" / "0"
    leftover.mkdir(parents=True)
    bound = subprocess.run(["mount", "--bind", str(kept), str(leftover)], capture_output=True)
    assert bound.returncode == 0, bound.stderr
    try:
        own_daemon.start()
        assert _subpath_mounts(own_daemon) == []
        assert not leftover.parent.exists()
        # Unmounted, never emptied.
        assert (kept / "data").read_text() == "still here"
    finally:
        subprocess.run(["umount", "-l", str(leftover)], capture_output=True)


def test_cp_of_a_stopped_container_sees_the_subpath_only(daemon: EssaimDaemon) -> None:
    created = daemon.docker("create", "--mount", _mount("sub/dir"), "busybox", "true")
    assert created.returncode == 0, created.stderr
    cid = created.stdout.strip()
    try:
        out = daemon.docker("cp", f"{cid}:/d/hello.txt", str(daemon.root / "copied.txt"))
        assert out.returncode == 0, out.stderr
        assert (daemon.root / "copied.txt").read_text() == "world\n"
        listed = daemon.docker("cp", f"{cid}:/d/bar.txt", "-")
        assert listed.returncode != 0  # the volume's root is not what /d shows
        source = daemon.root / "into.txt"
        source.write_text("in\n")
        into = daemon.docker("cp", str(source), f"{cid}:/d/into.txt")
        assert into.returncode == 0, into.stderr
        assert (_data(daemon) / "sub" / "dir" / "into.txt").read_text() == "in\n"
        assert _released(daemon, cid)
    finally:
        daemon.docker("rm", cid)


def test_cp_of_a_stopped_container_refuses_an_escaping_subpath(
    daemon: EssaimDaemon, outside: Path
) -> None:
    created = daemon.docker("create", "--mount", _mount("hack/out"), "busybox", "true")
    assert created.returncode == 0, created.stderr
    cid = created.stdout.strip()
    try:
        source = daemon.root / "escape.txt"
        source.write_text("no\n")
        into = daemon.docker("cp", str(source), f"{cid}:/d/escape.txt")
        assert into.returncode != 0
        assert "path concatenation escapes the base directory" in into.stderr
        assert list(outside.iterdir()) == []
        assert _released(daemon, cid)
    finally:
        daemon.docker("rm", cid)
