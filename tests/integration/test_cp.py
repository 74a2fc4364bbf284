"""`docker cp` both ways through the archive API, as the real CLI and the SDK use it:
files and directories, renames, `/.`, `-a`, `-L`, stopped containers, and archives that
try to write outside the container (they never do)."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon import EssaimDaemon


def docker_with_stdin(
    daemon: EssaimDaemon, data: bytes, *args: str
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["docker", *args], env=daemon.env(), input=data, capture_output=True, timeout=60
    )


def tar_bytes(*members: tuple[str, bytes, str, bytes]) -> bytes:
    """(name, type, linkname, data) entries."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, link, data in members:
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mode = kind, link, 0o644
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return buf.getvalue()


def unmounted_soon(path: Path) -> bool:
    deadline = time.monotonic() + 10
    while os.path.ismount(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def running(daemon: EssaimDaemon) -> Iterator[str]:
    r = daemon.docker("run", "-d", "busybox", "sleep", "300")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    yield cid
    daemon.docker("rm", "-f", cid)


@pytest.fixture
def created(daemon: EssaimDaemon) -> Iterator[str]:
    r = daemon.docker("create", "busybox", "sleep", "300")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    yield cid
    daemon.docker("rm", "-f", cid)


def exec_out(daemon: EssaimDaemon, cid: str, *cmd: str) -> str:
    r = daemon.docker("exec", cid, *cmd)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_file_into_a_directory_and_back(daemon: EssaimDaemon, running: str, tmp_path: Path) -> None:
    src = tmp_path / "hello.txt"
    src.write_text("hello\n")
    r = daemon.docker("cp", str(src), f"{running}:/tmp/")
    assert r.returncode == 0, r.stderr
    assert exec_out(daemon, running, "cat", "/tmp/hello.txt") == "hello\n"
    out = tmp_path / "back.txt"
    r = daemon.docker("cp", f"{running}:/tmp/hello.txt", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_text() == "hello\n"


def test_file_to_a_new_name(daemon: EssaimDaemon, running: str, tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_text("renamed\n")
    assert daemon.docker("cp", str(src), f"{running}:/tmp/b.txt").returncode == 0
    assert exec_out(daemon, running, "cat", "/tmp/b.txt") == "renamed\n"


def test_directories_and_their_contents(daemon: EssaimDaemon, running: str, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "f").write_text("deep\n")
    assert daemon.docker("cp", str(tree), f"{running}:/tmp/").returncode == 0
    assert exec_out(daemon, running, "cat", "/tmp/tree/sub/f") == "deep\n"
    # `dir/.` copies what is in it, not the directory itself.
    assert daemon.docker("exec", running, "mkdir", "/tmp/into").returncode == 0
    assert daemon.docker("cp", f"{tree}/.", f"{running}:/tmp/into").returncode == 0
    assert exec_out(daemon, running, "cat", "/tmp/into/sub/f") == "deep\n"
    back = tmp_path / "back"
    assert daemon.docker("cp", f"{running}:/tmp/tree", str(back)).returncode == 0
    assert (back / "sub" / "f").read_text() == "deep\n"
    contents = tmp_path / "contents"
    contents.mkdir()
    assert daemon.docker("cp", f"{running}:/tmp/tree/.", str(contents)).returncode == 0
    assert (contents / "sub" / "f").read_text() == "deep\n"


def test_ownership_is_kept_and_archive_mode_takes_the_container_user(
    daemon: EssaimDaemon, tmp_path: Path
) -> None:
    src = tmp_path / "owned"
    src.write_text("x")
    os.chown(src, 1234, 4321)
    r = daemon.docker("run", "-d", "--user", "daemon", "busybox", "sleep", "300")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    try:
        assert daemon.docker("cp", str(src), f"{cid}:/tmp/plain").returncode == 0
        assert exec_out(daemon, cid, "stat", "-c", "%u:%g", "/tmp/plain").strip() == "1234:4321"
        r = daemon.docker("cp", "-a", str(src), f"{cid}:/tmp/archived")
        assert r.returncode == 0, r.stderr
        assert exec_out(daemon, cid, "stat", "-c", "%u:%g", "/tmp/archived").strip() == "1:1"
    finally:
        daemon.docker("rm", "-f", cid)


def test_follow_link_copies_the_target(daemon: EssaimDaemon, running: str, tmp_path: Path) -> None:
    assert daemon.docker("exec", running, "ln", "-s", "/etc/passwd", "/tmp/link").returncode == 0
    plain = tmp_path / "plain"
    assert daemon.docker("cp", f"{running}:/tmp/link", str(plain)).returncode == 0
    assert plain.is_symlink() and os.readlink(plain) == "/etc/passwd"
    followed = tmp_path / "followed"
    r = daemon.docker("cp", "-L", f"{running}:/tmp/link", str(followed))
    assert r.returncode == 0, r.stderr
    assert not followed.is_symlink()
    assert followed.read_text().startswith("root:")


def test_stat_header_in_go_file_mode(daemon: EssaimDaemon, running: str) -> None:
    api = daemon.client().api
    _, stat = api.get_archive(running, "/tmp")
    assert stat["name"] == "tmp"
    assert stat["mode"] == (1 << 31) | (1 << 20) | 0o777  # dir + sticky
    daemon.docker("exec", running, "ln", "-s", "../etc/./passwd", "/tmp/rel")
    response = api.head(api._url("/containers/{0}/archive", running), params={"path": "/tmp/rel"})
    assert response.status_code == 200
    header = json.loads(base64.b64decode(response.headers["X-Docker-Container-Path-Stat"]))
    assert header["mode"] & (1 << 27)
    assert header["linkTarget"] == "/etc/passwd"
    missing = api.head(api._url("/containers/{0}/archive", running), params={"path": "/nope"})
    assert missing.status_code == 404


def test_missing_paths_are_404_with_docker_wording(
    daemon: EssaimDaemon, running: str, tmp_path: Path
) -> None:
    r = daemon.docker("cp", f"{running}:/no/such", str(tmp_path))
    assert r.returncode != 0
    assert f"Could not find the file /no/such in container {running}" in r.stderr


def test_file_onto_a_directory_is_refused(
    daemon: EssaimDaemon, running: str, tmp_path: Path
) -> None:
    assert daemon.docker("exec", running, "mkdir", "/tmp/d").returncode == 0
    src = tmp_path / "d"
    src.write_text("file")
    r = daemon.docker("cp", str(src), f"{running}:/tmp/")
    assert r.returncode != 0
    assert 'cannot overwrite directory "/tmp/d" with non-directory' in r.stderr
    r = daemon.docker("cp", str(tmp_path), f"{running}:/etc/passwd")
    assert r.returncode != 0


def test_stopped_containers_are_mounted_for_the_copy_only(
    daemon: EssaimDaemon, created: str, tmp_path: Path
) -> None:
    src = tmp_path / "early.txt"
    src.write_text("before start\n")
    rootfs = daemon.data_root / "containers" / created / "rootfs"
    assert daemon.docker("cp", str(src), f"{created}:/early.txt").returncode == 0
    assert not os.path.ismount(rootfs)
    out = tmp_path / "out.txt"
    assert daemon.docker("cp", f"{created}:/early.txt", str(out)).returncode == 0
    assert out.read_text() == "before start\n"
    # The CLI stops reading at the tar's end marker: the unmount may follow its exit.
    assert unmounted_soon(rootfs)
    assert daemon.docker("start", created).returncode == 0
    assert exec_out(daemon, created, "cat", "/early.txt") == "before start\n"
    assert daemon.docker("stop", "-t", "0", created).returncode == 0
    assert daemon.docker("cp", str(src), f"{created}:/tmp/after-stop").returncode == 0
    upper = daemon.data_root / "containers" / created / "upper"
    assert (upper / "tmp" / "after-stop").read_text() == "before start\n"  # the upper layer
    assert not os.path.ismount(rootfs)


def test_sdk_put_and_get_archive(daemon: EssaimDaemon, running: str) -> None:
    container = daemon.client().containers.get(running)
    data = tar_bytes(("sdk/x.txt", tarfile.REGTYPE, "", b"from sdk"))
    assert container.put_archive("/tmp", data)
    stream, stat = container.get_archive("/tmp/sdk/x.txt")
    assert stat["name"] == "x.txt" and stat["size"] == 8
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = tar.getmember("x.txt")
        assert tar.extractfile(member).read() == b"from sdk"  # type: ignore[union-attr]


@pytest.fixture
def planted(tmp_path: Path) -> Iterator[Path]:
    """A host directory a hostile archive aims at; it must stay as it is."""
    target = tmp_path / "host-target"
    target.mkdir()
    (target / "secret").write_text("host secret")
    yield target


def _host_state(path: Path) -> list[tuple[str, bytes]]:
    return sorted((str(p), p.read_bytes() if p.is_file() else b"") for p in path.rglob("*"))


def test_hostile_archives_never_write_outside(
    daemon: EssaimDaemon, running: str, planted: Path
) -> None:
    before = _host_state(planted)
    host = str(planted)
    cases = [
        [("../../../../../../.." + host + "/pwned", tarfile.REGTYPE, "", b"1")],
        [(host + "/pwned", tarfile.REGTYPE, "", b"2")],  # absolute: inside the container
        [("s", tarfile.SYMTYPE, host, b""), ("s/pwned", tarfile.REGTYPE, "", b"3")],
        [("up", tarfile.SYMTYPE, "../../../../..", b""), ("up/pwned", tarfile.REGTYPE, "", b"4")],
        [("h", tarfile.LNKTYPE, host + "/secret", b"")],
        [("h2", tarfile.LNKTYPE, "../../../../../.." + host + "/secret", b"")],
        [("r", tarfile.SYMTYPE, "/", b""), ("r" + host + "/pwned", tarfile.REGTYPE, "", b"5")],
    ]
    for entries in cases:
        docker_with_stdin(daemon, tar_bytes(*entries), "cp", "-", f"{running}:/tmp")
        assert _host_state(planted) == before, entries
    # What was allowed landed inside the container.
    assert exec_out(daemon, running, "cat", host + "/pwned") in ("2", "3", "5")


def test_container_symlinks_to_host_paths_stay_in_the_container(
    daemon: EssaimDaemon, running: str, planted: Path, tmp_path: Path
) -> None:
    before = _host_state(planted)
    host = str(planted)
    assert daemon.docker("exec", running, "ln", "-s", host, "/tmp/escape").returncode == 0
    src = tmp_path / "payload"
    src.write_text("payload")
    daemon.docker("cp", str(src), f"{running}:/tmp/escape/")
    daemon.docker("cp", str(src), f"{running}:/tmp/escape/pwned")
    assert _host_state(planted) == before
    # Reading through it finds the container's path, not the host's secret.
    r = daemon.docker("cp", f"{running}:/tmp/escape/secret", str(tmp_path / "leak"))
    assert r.returncode != 0 and not (tmp_path / "leak").exists()
