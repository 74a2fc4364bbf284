"""Named volumes of the local driver through the docker CLI and SDK: create, inspect, ls
with filters, rm (refused while in use), prune, and driver options mounted while used.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.integration.daemon import EssaimDaemon


def _inspect(daemon: EssaimDaemon, name: str) -> dict[str, Any]:
    result = daemon.docker("volume", "inspect", name)
    assert result.returncode == 0, result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout)
    return found[0]


def _names(daemon: EssaimDaemon, *args: str) -> set[str]:
    result = daemon.docker("volume", "ls", "-q", *args)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_create_inspect_and_remove_a_named_volume(daemon: EssaimDaemon) -> None:
    created = daemon.docker("volume", "create", "plainvol")
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "plainvol"
    volume = _inspect(daemon, "plainvol")
    mountpoint = daemon.data_root / "volumes" / "plainvol" / "_data"
    assert volume["Name"] == "plainvol"
    assert volume["Driver"] == "local"
    assert volume["Scope"] == "local"
    assert volume["Mountpoint"] == str(mountpoint)
    assert volume["Labels"] is None and volume["Options"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)", volume["CreatedAt"])
    assert mountpoint.is_dir()
    assert "plainvol" in _names(daemon)
    # Creating it again returns the same volume.
    assert daemon.docker("volume", "create", "plainvol").returncode == 0
    removed = daemon.docker("volume", "rm", "plainvol")
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.strip() == "plainvol"
    assert not mountpoint.parent.exists()
    assert "plainvol" not in _names(daemon)


def test_unnamed_volume_gets_a_hex_name_and_the_anonymous_label(daemon: EssaimDaemon) -> None:
    created = daemon.docker("volume", "create")
    assert created.returncode == 0, created.stderr
    name = created.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", name)
    assert _inspect(daemon, name)["Labels"] == {"com.docker.volume.anonymous": ""}
    assert daemon.docker("volume", "rm", name).returncode == 0


def test_missing_volume_is_dockers_404(daemon: EssaimDaemon) -> None:
    result = daemon.docker("volume", "inspect", "nosuchvol")
    assert result.returncode == 1
    assert "get nosuchvol: no such volume" in result.stderr
    removed = daemon.docker("volume", "rm", "nosuchvol")
    assert removed.returncode == 1
    assert "get nosuchvol: no such volume" in removed.stderr
    assert daemon.docker("volume", "rm", "-f", "nosuchvol").returncode == 0
    with pytest.raises(docker.errors.NotFound):
        daemon.client().volumes.get("nosuchvol")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a", "create a: volume name is too short, names should be at least two"),
        ("a$b", 'create a$b: "a$b" includes invalid characters for a local volume name'),
        ("..", 'create ..: ".." includes invalid characters for a local volume name'),
    ],
)
def test_invalid_names_are_refused(daemon: EssaimDaemon, name: str, message: str) -> None:
    result = daemon.docker("volume", "create", name)
    assert result.returncode == 1
    assert message in result.stderr
    assert not (daemon.data_root / "volumes" / name).exists() or name == ".."


def test_invalid_driver_and_options_are_refused(daemon: EssaimDaemon) -> None:
    bad_option = daemon.docker("volume", "create", "-o", "colour=red", "badopt")
    assert bad_option.returncode == 1
    assert 'create badopt: invalid option: "colour"' in bad_option.stderr
    missing = daemon.docker("volume", "create", "-o", "type=tmpfs", "halfopt")
    assert 'create halfopt: missing required option: "device"' in missing.stderr
    plugin = daemon.docker("volume", "create", "-d", "nfsplugin", "plugvol")
    assert plugin.returncode == 1
    assert 'plugin "nfsplugin" not found' in plugin.stderr
    assert not {"badopt", "halfopt", "plugvol"} & _names(daemon)


def test_volume_in_use_cannot_be_removed(daemon: EssaimDaemon) -> None:
    created = daemon.docker("create", "-v", "busyvol:/data", "busybox", "true")
    assert created.returncode == 0, created.stderr
    cid = created.stdout.strip()
    for args in (("volume", "rm", "busyvol"), ("volume", "rm", "-f", "busyvol")):
        result = daemon.docker(*args)
        assert result.returncode == 1
        assert f"remove busyvol: volume is in use - [{cid}]" in result.stderr
    assert daemon.docker("rm", cid).returncode == 0
    assert daemon.docker("volume", "rm", "busyvol").returncode == 0


def test_ls_filters(daemon: EssaimDaemon) -> None:
    assert daemon.docker("volume", "create", "--label", "tier=db", "flt-db").returncode == 0
    assert daemon.docker("volume", "create", "--label", "tier=web", "flt-web").returncode == 0
    used = daemon.docker("create", "-v", "flt-web:/data", "busybox", "true").stdout.strip()
    try:
        assert _names(daemon, "--filter", "label=tier") >= {"flt-db", "flt-web"}
        assert "flt-web" not in _names(daemon, "--filter", "label=tier=db")
        assert "flt-db" in _names(daemon, "--filter", "label=tier=db")
        assert _names(daemon, "--filter", "name=flt-") == {"flt-db", "flt-web"}
        dangling = _names(daemon, "--filter", "dangling=true")
        assert "flt-db" in dangling and "flt-web" not in dangling
        assert "flt-web" in _names(daemon, "--filter", "dangling=false")
        assert _names(daemon, "--filter", "driver=local") >= {"flt-db", "flt-web"}
        bad = daemon.docker("volume", "ls", "--filter", "dangling=maybe")
        assert bad.returncode == 1 and "invalid filter 'dangling=maybe'" in bad.stderr
        unknown = daemon.docker("volume", "ls", "--filter", "colour=red")
        assert unknown.returncode == 1 and "invalid filter 'colour'" in unknown.stderr
    finally:
        daemon.docker("rm", used)
        daemon.docker("volume", "rm", "flt-db", "flt-web")


def test_prune_takes_unused_anonymous_volumes_unless_all(own_daemon: EssaimDaemon) -> None:
    d = own_daemon
    assert d.docker("volume", "create", "keepnamed").returncode == 0
    assert (
        d.docker("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "optvol").returncode
        == 0
    )
    anonymous = d.docker("volume", "create").stdout.strip()
    used = d.docker("create", "-v", "/data", "busybox", "true").stdout.strip()
    in_use = [m["Name"] for m in json.loads(d.docker("inspect", used).stdout)[0]["Mounts"]]
    pruned = d.docker("volume", "prune", "-f")
    assert pruned.returncode == 0, pruned.stderr
    assert anonymous in pruned.stdout
    assert "Total reclaimed space:" in pruned.stdout
    assert _names(d) == {"keepnamed", "optvol", *in_use}
    everything = d.docker("volume", "prune", "-a", "-f")
    assert everything.returncode == 0, everything.stderr
    # Still used, or with options (their data may live elsewhere): kept.
    assert _names(d) == {"optvol", *in_use}


def test_volume_with_tmpfs_options_is_mounted_only_while_used(daemon: EssaimDaemon) -> None:
    created = daemon.docker(
        "volume", "create", "--label", "k=v", "-o", "type=tmpfs", "-o", "device=tmpfs",
        "-o", "o=size=10m", "tmpvol",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    volume = _inspect(daemon, "tmpvol")
    assert volume["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=10m"}
    assert volume["Labels"] == {"k": "v"}
    mountpoint = volume["Mountpoint"]
    run = daemon.docker(
        "run", "--rm", "-v", "tmpvol:/data", "busybox", "sh", "-c",
        "grep ' /data ' /proc/mounts; echo x > /data/f && cat /data/f",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "tmpfs /data tmpfs" in run.stdout and "size=10240k" in run.stdout
    assert run.stdout.strip().endswith("x")
    assert not os.path.ismount(mountpoint)
    assert daemon.docker("volume", "rm", "tmpvol").returncode == 0


def test_sdk_volume_lifecycle(daemon: EssaimDaemon) -> None:
    client = daemon.client()
    volume = client.volumes.create("sdkvol", driver="local", labels={"app": "sdk"})
    assert volume.name == "sdkvol"
    assert volume.attrs["Labels"] == {"app": "sdk"}
    assert [v.name for v in client.volumes.list(filters={"label": "app=sdk"})] == ["sdkvol"]
    assert client.volumes.get("sdkvol").attrs["Mountpoint"].endswith("/volumes/sdkvol/_data")
    volume.remove()
    with pytest.raises(docker.errors.NotFound):
        client.volumes.get("sdkvol")
    report = client.volumes.prune()
    assert isinstance(report["VolumesDeleted"], list)
    assert report["SpaceReclaimed"] >= 0


def test_volumes_and_their_users_survive_a_daemon_restart(own_daemon: EssaimDaemon) -> None:
    d = own_daemon
    assert d.docker("volume", "create", "--label", "keep=1", "durable").returncode == 0
    user = d.docker(
        "run", "-d", "-v", "durable:/data", "-v", "/scratch", "busybox", "sh", "-c",
        "echo before > /data/f; sleep 300",
    ).stdout.strip()  # fmt: skip
    d.stop()
    d.start()
    assert _inspect(d, "durable")["Labels"] == {"keep": "1"}
    refused = d.docker("volume", "rm", "durable")
    assert refused.returncode == 1 and f"volume is in use - [{user}]" in refused.stderr
    data = Path(_inspect(d, "durable")["Mountpoint"])
    assert (data / "f").read_text() == "before\n"
    assert d.docker("rm", "-f", "-v", user).returncode == 0
    assert _names(d) == {"durable"}


def test_a_run_mounts_and_unmounts_its_volumes_with_events(daemon: EssaimDaemon) -> None:
    since = str(int(time.time()) - 1)
    name = f"evented-{os.getpid()}-{time.monotonic_ns()}"
    run = daemon.docker("run", "--rm", "-v", f"{name}:/data:ro", "busybox", "true")
    assert run.returncode == 0, run.stderr
    result = daemon.docker(
        "events", "--since", since, "--until", str(int(time.time()) + 1),
        "--filter", "type=volume", "--filter", f"volume={name}", "--format", "{{json .}}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["Action"] for e in events] == ["create", "mount", "unmount"]
    mount, unmount = events[1]["Actor"], events[2]["Actor"]
    cid = mount["Attributes"]["container"]
    assert re.fullmatch("[0-9a-f]{64}", cid)
    assert mount == {
        "ID": name,
        "Attributes": {"container": cid, "destination": "/data", "driver": "local",
                       "propagation": "", "read/write": "false"},
    }  # fmt: skip
    assert unmount == {"ID": name, "Attributes": {"container": cid, "driver": "local"}}
