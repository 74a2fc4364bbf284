"""`docker cp` sees a container's mounts as Docker does: named volumes, binds, a running
container's tmpfs and /etc/hosts; a stopped container's volumes and binds through their
host sources; read-only volumes refused; and still never a write outside."""

from __future__ import annotations

import io
import secrets
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.daemon import EssaimDaemon


def ok(result: object) -> str:
    assert result.returncode == 0, result.stderr  # type: ignore[attr-defined]
    return result.stdout  # type: ignore[attr-defined, no-any-return]


def cp_out(daemon: EssaimDaemon, source: str) -> dict[str, bytes]:
    """`docker cp c:path -`: the tar the CLI writes, as {name: content}."""
    done = subprocess.run(
        ["docker", "cp", source, "-"], env=daemon.env(), capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
        return {
            m.name: (tar.extractfile(m).read() if m.isfile() else b"")  # type: ignore[union-attr]
            for m in tar
        }


def cp_tar_in(daemon: EssaimDaemon, data: bytes, dest: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["docker", "cp", "-", dest], env=daemon.env(), input=data, capture_output=True, timeout=60
    )


def tar_of(*entries: tuple[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def volume_file(daemon: EssaimDaemon, volume: str, path: str) -> str:
    """A file of a volume as another container sees it."""
    return ok(daemon.docker("run", "--rm", "-v", f"{volume}:/v", "busybox", "cat", f"/v/{path}"))


@dataclass
class Mounted:
    name: str
    volume: str
    bind: Path


@pytest.fixture
def mounted(daemon: EssaimDaemon, tmp_path: Path) -> Iterator[Mounted]:
    """A container with a named volume at /data, a bind at /bnd and a tmpfs at /scratch,
    created, not started."""
    token = secrets.token_hex(3)
    name, volume = f"cpm-{token}", f"cpm-vol-{token}"
    bind = tmp_path / "bind"
    bind.mkdir()
    (bind / "from-host.txt").write_text("host side\n")
    ok(
        daemon.docker(
            "create", "--name", name, "-v", f"{volume}:/data", "-v", f"{bind}:/bnd",
            "--tmpfs", "/scratch", "busybox", "sleep", "300",
        )
    )  # fmt: skip
    yield Mounted(name, volume, bind)
    daemon.docker("rm", "-f", name)
    daemon.docker("volume", "rm", volume)


def test_cp_into_and_out_of_a_volume_of_a_running_container(
    daemon: EssaimDaemon, mounted: Mounted, tmp_path: Path
) -> None:
    ok(daemon.docker("start", mounted.name))
    src = tmp_path / "in.txt"
    src.write_text("into the volume\n")
    ok(daemon.docker("cp", str(src), f"{mounted.name}:/data/"))
    assert ok(daemon.docker("exec", mounted.name, "cat", "/data/in.txt")) == "into the volume\n"
    ok(daemon.docker("exec", mounted.name, "sh", "-c", "echo made inside > /data/made.txt"))
    assert cp_out(daemon, f"{mounted.name}:/data/made.txt") == {"made.txt": b"made inside\n"}
    ok(daemon.docker("stop", "-t", "0", mounted.name))
    # Written into the volume, not into the container's own layer.
    assert volume_file(daemon, mounted.volume, "in.txt") == "into the volume\n"
    diff = ok(daemon.docker("diff", mounted.name))
    assert "/data/in.txt" not in diff


def test_cp_into_and_out_of_a_volume_of_a_stopped_container(
    daemon: EssaimDaemon, mounted: Mounted, tmp_path: Path
) -> None:
    src = tmp_path / "in.txt"
    src.write_text("while stopped\n")
    ok(daemon.docker("cp", str(src), f"{mounted.name}:/data/renamed.txt"))
    assert volume_file(daemon, mounted.volume, "renamed.txt") == "while stopped\n"
    ok(
        daemon.docker(
            "run", "--rm", "-v", f"{mounted.volume}:/v", "busybox",
            "sh", "-c", "mkdir /v/sub && echo deep > /v/sub/deep.txt",
        )
    )  # fmt: skip
    assert cp_out(daemon, f"{mounted.name}:/data/sub") == {"sub": b"", "sub/deep.txt": b"deep\n"}
    tree = cp_out(daemon, f"{mounted.name}:/data")
    assert tree["data/renamed.txt"] == b"while stopped\n"
    assert tree["data/sub/deep.txt"] == b"deep\n"
    # The stat the CLI asks first names the path as given, in the volume.
    stat = daemon.client().api.get_archive(mounted.name, "/data/renamed.txt")[1]
    assert stat["name"] == "renamed.txt" and stat["size"] == len("while stopped\n")


def test_cp_sees_binds_running_and_stopped(
    daemon: EssaimDaemon, mounted: Mounted, tmp_path: Path
) -> None:
    assert cp_out(daemon, f"{mounted.name}:/bnd/from-host.txt") == {"from-host.txt": b"host side\n"}
    src = tmp_path / "stopped.txt"
    src.write_text("stopped\n")
    ok(daemon.docker("cp", str(src), f"{mounted.name}:/bnd/"))
    assert (mounted.bind / "stopped.txt").read_text() == "stopped\n"
    ok(daemon.docker("start", mounted.name))
    src.write_text("running\n")
    ok(daemon.docker("cp", str(src), f"{mounted.name}:/bnd/running.txt"))
    assert (mounted.bind / "running.txt").read_text() == "running\n"


def test_cp_into_a_tmpfs_of_a_running_container(
    daemon: EssaimDaemon, mounted: Mounted, tmp_path: Path
) -> None:
    ok(daemon.docker("start", mounted.name))
    src = tmp_path / "t.txt"
    src.write_text("in memory\n")
    ok(daemon.docker("cp", str(src), f"{mounted.name}:/scratch/"))
    assert ok(daemon.docker("exec", mounted.name, "cat", "/scratch/t.txt")) == "in memory\n"
    assert cp_out(daemon, f"{mounted.name}:/scratch/t.txt") == {"t.txt": b"in memory\n"}
    mounts = ok(daemon.docker("exec", mounted.name, "grep", " /scratch ", "/proc/mounts"))
    assert mounts.split()[2] == "tmpfs"
    # The tmpfs held it, not the rootfs: gone once the container stops.
    ok(daemon.docker("stop", "-t", "0", mounted.name))
    missing = daemon.docker("cp", f"{mounted.name}:/scratch/t.txt", str(tmp_path / "back"))
    assert missing.returncode != 0
    assert "Could not find the file /scratch/t.txt in container" in missing.stderr


def test_cp_out_of_etc_hosts_is_the_file_the_container_sees(
    daemon: EssaimDaemon, mounted: Mounted
) -> None:
    ok(daemon.docker("start", mounted.name))
    seen = ok(daemon.docker("exec", mounted.name, "cat", "/etc/hosts")).encode()
    assert b"localhost" in seen
    assert cp_out(daemon, f"{mounted.name}:/etc/hosts") == {"hosts": seen}
    hostname = ok(daemon.docker("exec", mounted.name, "hostname")).encode()
    assert cp_out(daemon, f"{mounted.name}:/etc/hostname") == {"hostname": hostname}
    ok(daemon.docker("stop", "-t", "0", mounted.name))
    # Stopped, the daemon's files are found where the container will have them again.
    assert cp_out(daemon, f"{mounted.name}:/etc/hosts") == {"hosts": seen}


def test_cp_out_of_a_running_container_does_not_walk_kernel_filesystems(
    daemon: EssaimDaemon, mounted: Mounted
) -> None:
    ok(daemon.docker("start", mounted.name))
    assert cp_out(daemon, f"{mounted.name}:/proc") == {"proc": b""}
    assert cp_out(daemon, f"{mounted.name}:/sys") == {"sys": b""}


def test_read_only_volumes_and_rootfs_refuse_as_docker_does(
    daemon: EssaimDaemon, tmp_path: Path
) -> None:
    token = secrets.token_hex(3)
    name, volume = f"cpm-ro-{token}", f"cpm-ro-vol-{token}"
    src = tmp_path / "x.txt"
    src.write_text("x\n")
    ok(
        daemon.docker(
            "run", "-d", "--name", name, "--read-only", "-v", f"{volume}:/rw",
            "-v", f"{volume}:/ro:ro", "busybox", "sleep", "300",
        )
    )  # fmt: skip
    try:
        refused = daemon.docker("cp", str(src), f"{name}:/ro/")
        assert refused.returncode != 0
        assert "mounted volume is marked read-only" in refused.stderr
        refused = daemon.docker("cp", str(src), f"{name}:/tmp/")
        assert refused.returncode != 0
        assert "container rootfs is marked read-only" in refused.stderr
        ok(daemon.docker("cp", str(src), f"{name}:/rw/"))
        assert ok(daemon.docker("exec", name, "cat", "/ro/x.txt")) == "x\n"
    finally:
        daemon.docker("rm", "-f", name)
        daemon.docker("volume", "rm", volume)


def test_hostile_archives_stay_inside_the_volume(
    daemon: EssaimDaemon, mounted: Mounted, tmp_path: Path
) -> None:
    """Stopped, the volume's own directory is the root: `..` and absolute names end up
    inside it, never beside it on the host."""
    volume_dir = Path(
        ok(daemon.docker("volume", "inspect", "-f", "{{.Mountpoint}}", mounted.volume)).strip()
    )
    beside = sorted(p.name for p in volume_dir.parent.iterdir())
    bind_parent = sorted(p.name for p in mounted.bind.parent.iterdir())
    hostile = tar_of(("../../../../escaped.txt", b"1"), ("/abs.txt", b"2"))
    for dest in (f"{mounted.name}:/data", f"{mounted.name}:/bnd"):
        cp_tar_in(daemon, hostile, dest)
    assert sorted(p.name for p in volume_dir.parent.iterdir()) == beside
    assert sorted(p.name for p in mounted.bind.parent.iterdir()) == bind_parent
    assert not (volume_dir.parent.parent / "escaped.txt").exists()


def test_export_leaves_volumes_out(daemon: EssaimDaemon, mounted: Mounted, tmp_path: Path) -> None:
    ok(daemon.docker("start", mounted.name))
    ok(daemon.docker("exec", mounted.name, "sh", "-c", "echo v > /data/in-volume.txt"))
    out = tmp_path / "export.tar"
    ok(daemon.docker("export", "-o", str(out), mounted.name))
    with tarfile.open(out) as tar:
        names = tar.getnames()
    assert "data/in-volume.txt" not in names and "bin/sh" in names
