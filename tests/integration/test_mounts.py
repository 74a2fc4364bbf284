"""`docker run` with volumes and mounts, as dockerd does them: `-v` named, anonymous and
bind, `--mount`, `--tmpfs`, `--volumes-from`, `--read-only`, image VOLUMEs seeded from
the image, inspect's `Mounts`, `rm -v`, `--rm`, and `ps --filter volume=`.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import docker

from essaim.image.busybox import build_busybox_layer
from tests.integration.daemon import EssaimDaemon


def _inspect(daemon: EssaimDaemon, ref: str) -> dict[str, Any]:
    result = daemon.docker("inspect", ref)
    assert result.returncode == 0, result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout)
    return found[0]


def _volume_names(daemon: EssaimDaemon) -> set[str]:
    return set(daemon.docker("volume", "ls", "-q").stdout.split())


def _host_dir(daemon: EssaimDaemon, name: str) -> Path:
    path = daemon.root / "host" / name
    path.mkdir(parents=True)
    return path


def test_named_volume_keeps_data_between_containers(daemon: EssaimDaemon) -> None:
    write = daemon.docker(
        "run", "--rm", "-v", "keep:/data", "busybox", "sh", "-c", "echo kept > /data/f"
    )
    assert write.returncode == 0, write.stderr
    read = daemon.docker("run", "--rm", "-v", "keep:/data:ro", "busybox", "cat", "/data/f")
    assert read.stdout == "kept\n"
    on_host = daemon.data_root / "volumes" / "keep" / "_data" / "f"
    assert on_host.read_text() == "kept\n"
    # A named volume outlives `--rm`.
    assert "keep" in _volume_names(daemon)


def test_inspect_shows_mounts_as_docker(daemon: EssaimDaemon) -> None:
    host = _host_dir(daemon, "inspected")
    created = daemon.docker(
        "create", "-v", "insvol:/vol", "-v", f"{host}:/bind:ro,rslave", "-v", "/anon",
        "--mount", "type=tmpfs,dst=/tmp/t,tmpfs-size=1m",
        "--tmpfs", "/run:size=2m", "busybox", "true",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    info = _inspect(daemon, created.stdout.strip())
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert set(mounts) == {"/vol", "/bind", "/anon", "/tmp/t"}
    assert mounts["/vol"] == {
        "Type": "volume", "Name": "insvol",
        "Source": str(daemon.data_root / "volumes" / "insvol" / "_data"),
        "Destination": "/vol", "Driver": "local", "Mode": "z", "RW": True, "Propagation": "",
    }  # fmt: skip
    assert mounts["/bind"] == {
        "Type": "bind", "Source": str(host), "Destination": "/bind",
        "Mode": "ro,rslave", "RW": False, "Propagation": "rslave",
    }  # fmt: skip
    assert mounts["/anon"]["Type"] == "volume" and len(mounts["/anon"]["Name"]) == 64
    assert mounts["/anon"]["Mode"] == "" and mounts["/anon"]["RW"] is True
    assert mounts["/tmp/t"] == {
        "Type": "tmpfs", "Source": "", "Destination": "/tmp/t",
        "Mode": "", "RW": True, "Propagation": "",
    }  # fmt: skip
    host_config = info["HostConfig"]
    # The CLI sends -v binds from a map: in no set order.
    assert sorted(host_config["Binds"]) == sorted(["insvol:/vol", f"{host}:/bind:ro,rslave"])
    assert host_config["Mounts"] == [
        {"Type": "tmpfs", "Target": "/tmp/t", "TmpfsOptions": {"SizeBytes": 1048576}}
    ]
    assert host_config["Tmpfs"] == {"/run": "size=2m"}
    assert info["Config"]["Volumes"] == {"/anon": {}}
    assert daemon.docker("rm", "-v", info["Id"]).returncode == 0


def test_bind_mounts_read_write_and_read_only(daemon: EssaimDaemon) -> None:
    host = _host_dir(daemon, "rw")
    (host / "in.txt").write_text("from host\n")
    run = daemon.docker(
        "run", "--rm", "-v", f"{host}:/h", "busybox", "sh", "-c",
        "cat /h/in.txt && echo from container > /h/out.txt",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout == "from host\n"
    assert (host / "out.txt").read_text() == "from container\n"
    readonly = daemon.docker("run", "--rm", "-v", f"{host}:/h:ro", "busybox", "touch", "/h/nope")
    assert readonly.returncode != 0
    assert "Read-only file system" in readonly.stderr
    assert not (host / "nope").exists()


def test_missing_bind_source_is_created_for_v_but_refused_for_mount(
    daemon: EssaimDaemon,
) -> None:
    missing = daemon.root / "host" / "made" / "by" / "v"
    run = daemon.docker("run", "--rm", "-v", f"{missing}:/m", "busybox", "ls", "/m")
    assert run.returncode == 0, run.stderr
    assert missing.is_dir()
    absent = daemon.root / "host" / "absent"
    refused = daemon.docker(
        "run", "--rm", "--mount", f"type=bind,src={absent},dst=/m", "busybox", "true"
    )
    assert refused.returncode == 125
    assert (
        f'invalid mount config for type "bind": bind source path does not exist: {absent}'
        in refused.stderr
    )
    assert not absent.exists()


def test_mount_long_syntax_bind_and_volume(daemon: EssaimDaemon) -> None:
    host = _host_dir(daemon, "long")
    (host / "f").write_text("long\n")
    run = daemon.docker(
        "run", "--rm",
        "--mount", f"type=bind,source={host},target=/b,readonly",
        "--mount", "type=volume,source=longvol,target=/v,volume-label=made=by-mount",
        "busybox", "sh", "-c", "cat /b/f; touch /b/x 2>/dev/null || echo ro; echo w > /v/w",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout == "long\nro\n"
    volume = json.loads(daemon.docker("volume", "inspect", "longvol").stdout)[0]
    assert volume["Labels"] == {"made": "by-mount"}
    assert (Path(volume["Mountpoint"]) / "w").read_text() == "w\n"


def test_empty_volume_is_seeded_from_the_image_unless_nocopy(daemon: EssaimDaemon) -> None:
    seeded = daemon.docker("run", "--rm", "-v", "seeded:/etc", "busybox", "cat", "/etc/passwd")
    assert seeded.returncode == 0, seeded.stderr
    assert "root:x:0:0" in seeded.stdout
    assert (daemon.data_root / "volumes" / "seeded" / "_data" / "passwd").exists()
    bare = daemon.docker("run", "--rm", "-v", "bare:/etc:nocopy", "busybox", "ls", "-A", "/etc")
    assert bare.returncode == 0, bare.stderr
    # Only the mount points of /etc/hosts and the like, as under dockerd.
    assert set(bare.stdout.split()) <= {"hostname", "hosts", "resolv.conf"}
    # A volume with content is left as it is.
    (daemon.data_root / "volumes" / "bare" / "_data" / "mine").write_text("x")
    again = daemon.docker("run", "--rm", "-v", "bare:/etc", "busybox", "ls", "/etc")
    assert "mine" in again.stdout.split() and "passwd" not in again.stdout.split()


def test_anonymous_volumes_go_with_rm_v_and_with_rm(daemon: EssaimDaemon) -> None:
    before = _volume_names(daemon)
    created = daemon.docker("create", "-v", "/scratch", "busybox", "true").stdout.strip()
    anonymous = _inspect(daemon, created)["Mounts"][0]["Name"]
    assert _volume_names(daemon) - before == {anonymous}
    assert daemon.docker("rm", created).returncode == 0
    assert anonymous in _volume_names(daemon)  # plain rm keeps it (dangling)
    assert daemon.docker("volume", "rm", anonymous).returncode == 0
    kept = daemon.docker("create", "-v", "/scratch", "-v", "named-stays:/n", "busybox", "true")
    assert daemon.docker("rm", "-v", kept.stdout.strip()).returncode == 0
    assert _volume_names(daemon) - before == {"named-stays"}
    auto = daemon.docker("run", "--rm", "-v", "/scratch", "busybox", "true")
    assert auto.returncode == 0, auto.stderr
    assert _volume_names(daemon) - before == {"named-stays"}


def test_tmpfs_mounts(daemon: EssaimDaemon) -> None:
    run = daemon.docker(
        "run", "--rm", "--read-only", "--tmpfs", "/t:size=1m,exec",
        "--mount", "type=tmpfs,dst=/m,tmpfs-mode=1770", "busybox", "sh", "-c",
        "grep -E ' /(t|m) ' /proc/mounts; touch /t/ok /m/ok && echo writable",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = {line.split()[1]: line.split()[3].split(",") for line in run.stdout.splitlines()[:2]}
    assert {"rw", "nosuid", "nodev", "size=1024k"} <= set(lines["/t"])
    assert "noexec" not in lines["/t"]
    assert {"rw", "nosuid", "nodev", "noexec", "mode=1770"} <= set(lines["/m"])
    assert run.stdout.endswith("writable\n")


def test_read_only_rootfs_keeps_volumes_writable(daemon: EssaimDaemon) -> None:
    run = daemon.docker(
        "run", "--rm", "--read-only", "-v", "rwvol:/data", "busybox", "sh", "-c",
        "touch /data/ok && echo volume ok; touch /rootfile || echo rootfs ro",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout == "volume ok\nrootfs ro\n"


def test_volumes_from_shares_the_mounts(daemon: EssaimDaemon) -> None:
    source = daemon.docker(
        "run", "--name", "datasrc", "-v", "/shared", "busybox", "sh", "-c",
        "echo shared > /shared/f",
    )  # fmt: skip
    assert source.returncode == 0, source.stderr
    read = daemon.docker("run", "--rm", "--volumes-from", "datasrc", "busybox", "cat", "/shared/f")
    assert read.stdout == "shared\n"
    readonly = daemon.docker(
        "run", "--rm", "--volumes-from", "datasrc:ro", "busybox", "touch", "/shared/g"
    )
    assert readonly.returncode != 0 and "Read-only file system" in readonly.stderr
    missing = daemon.docker("run", "--rm", "--volumes-from", "nobody", "busybox", "true")
    assert missing.returncode == 125 and "No such container: nobody" in missing.stderr
    assert daemon.docker("rm", "-v", "datasrc").returncode == 0


def test_ps_filters_by_volume(daemon: EssaimDaemon) -> None:
    host = _host_dir(daemon, "psbind")
    with_volume = daemon.docker("create", "-v", "psvol:/d", "busybox", "true").stdout.strip()
    with_bind = daemon.docker("create", "-v", f"{host}:/b", "busybox", "true").stdout.strip()

    def ids(value: str) -> set[str]:
        out = daemon.docker("ps", "-aq", "--no-trunc", "--filter", f"volume={value}").stdout
        return set(out.split())

    assert ids("psvol") == {with_volume}
    assert ids("/d") == {with_volume}
    assert ids(str(host)) == {with_bind}
    daemon.docker("rm", with_volume, with_bind)


def test_mount_errors_are_dockers(daemon: EssaimDaemon) -> None:
    cases = {
        ("-v", "rel/path:/x"): 'create rel/path: "rel/path" includes invalid characters',
        ("-v", "/a:/x:bogus"): "invalid mode: bogus",
        ("-v", "vol1:/x", "-v", "vol2:/x"): "Duplicate mount point: /x",
        ("-v", "vol1:relative"): "invalid volume specification: 'vol1:relative'",
        ("--tmpfs", "/t:colour=red"): 'invalid tmpfs option ["colour" "red"]',
        ("--mount", "type=volume,dst=/x,readonly"): (
            'invalid mount config for type "volume": must not set ReadOnly mode when using '
            "anonymous volumes"
        ),
    }
    before = _volume_names(daemon)
    for args, message in cases.items():
        result = daemon.docker("run", "--rm", *args, "busybox", "true")
        assert result.returncode == 125, (args, result.stdout)
        assert message in result.stderr, (args, result.stderr)
    assert _volume_names(daemon) == before  # nothing half-made


def _image_with_volume(daemon: EssaimDaemon) -> str:
    layer = daemon.root / "volimg.tar"
    build_busybox_layer(layer)
    with tarfile.open(layer, "a") as tar:
        data = b"from the image\n"
        for name, kind in (("data", tarfile.DIRTYPE), ("data/seed.txt", tarfile.REGTYPE)):
            info = tarfile.TarInfo(name)
            info.type = kind
            info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    imported = daemon.docker("import", "--change", "VOLUME /data", str(layer), "volimg")
    assert imported.returncode == 0, imported.stderr
    return "volimg"


def test_image_volume_becomes_a_seeded_anonymous_volume(daemon: EssaimDaemon) -> None:
    image = _image_with_volume(daemon)
    created = daemon.docker("create", image, "cat", "/data/seed.txt")
    assert created.returncode == 0, created.stderr
    cid = created.stdout.strip()
    info = _inspect(daemon, cid)
    assert info["Config"]["Volumes"] == {"/data": {}}
    (mount,) = info["Mounts"]
    assert mount["Destination"] == "/data" and mount["Type"] == "volume"
    assert Path(mount["Source"], "seed.txt").read_text() == "from the image\n"
    labels = json.loads(daemon.docker("volume", "inspect", mount["Name"]).stdout)[0]["Labels"]
    assert labels == {"com.docker.volume.anonymous": ""}
    started = daemon.docker("start", "-a", cid)
    assert started.stdout == "from the image\n"
    assert daemon.docker("rm", "-v", cid).returncode == 0
    assert mount["Name"] not in _volume_names(daemon)
    # A named volume over the image's VOLUME path takes its place.
    named = daemon.docker("run", "--rm", "-v", "over:/data", image, "cat", "/data/seed.txt")
    assert named.stdout == "from the image\n"


def test_sdk_volumes_and_mounts(daemon: EssaimDaemon) -> None:
    client = daemon.client()
    host = _host_dir(daemon, "sdk")
    (host / "f").write_text("sdk\n")
    out = client.containers.run(
        "busybox", ["sh", "-c", "cat /h/f; grep ' /t ' /proc/mounts; echo v > /v/f"],
        volumes={str(host): {"bind": "/h", "mode": "ro"}, "sdkvol": {"bind": "/v", "mode": "rw"}},
        mounts=[docker.types.Mount("/t", None, type="tmpfs", tmpfs_size=1 << 20)],
        remove=True,
    )  # fmt: skip
    lines = out.decode().splitlines()
    assert lines[0] == "sdk" and "tmpfs /t tmpfs" in lines[1] and "size=1024k" in lines[1]
    volume = client.volumes.get("sdkvol")
    assert (Path(volume.attrs["Mountpoint"]) / "f").read_text() == "v\n"
