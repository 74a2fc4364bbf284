"""`docker ps`: every `--format` field the CLI offers, every filter with dockerd's
semantics (and its errors), `docker port` and the port and network fields of inspect,
and `ExecIDs`."""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.daemon import EssaimDaemon


def ok(result: object) -> str:
    assert result.returncode == 0, result.stderr  # type: ignore[attr-defined]
    return result.stdout  # type: ignore[attr-defined, no-any-return]


@dataclass
class Scene:
    web: str  # running: -p <port>:80 --expose 90, labels, a volume and a bind
    web_id: str
    boxed: str  # created, never started: --network none -P
    exited: str  # ran `exit 3` on the host's network
    volume: str
    bind: Path
    port: int  # the host port published for web's 80/tcp


@pytest.fixture(scope="module")
def scene(daemon: EssaimDaemon, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    t = secrets.token_hex(3)
    web, boxed, exited, volume = f"psf-web-{t}", f"psf-boxed-{t}", f"psf-exit-{t}", f"psf-v-{t}"
    bind = tmp_path_factory.mktemp("bind")
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        port = int(s.getsockname()[1])
    ok(
        daemon.docker(
            "run", "-d", "--name", web, "-p", f"{port}:80", "--expose", "90", "--label", "b=2",
            "--label", "a=1", "-v", f"{volume}:/data", "-v", f"{bind}:/bnd", "busybox",
            "sh", "-c", "sleep 300",
        )
    )  # fmt: skip
    time.sleep(0.01)  # distinct creation times: before/since order by them
    ok(daemon.docker("create", "--name", boxed, "--network", "none", "-P", "busybox", "true"))
    time.sleep(0.01)
    done = daemon.docker(
        "run", "--name", exited, "--network", "host", "busybox", "sh", "-c", "exit 3"
    )
    assert done.returncode == 3, done.stderr
    web_id = ok(daemon.docker("inspect", "-f", "{{.Id}}", web)).strip()
    yield Scene(web, web_id, boxed, exited, volume, bind, port)
    daemon.docker("rm", "-f", web, boxed, exited)
    daemon.docker("volume", "rm", volume)


def ps(daemon: EssaimDaemon, *args: str) -> list[str]:
    """Names of our scene's containers that `docker ps -a <args>` lists, in its order."""
    out = ok(daemon.docker("ps", "-a", *args, "--format", "{{.Names}}"))
    return [n for n in out.split() if n.startswith("psf-")]


def field(daemon: EssaimDaemon, name: str, template: str, *flags: str) -> str:
    out = ok(daemon.docker("ps", "-a", *flags, "--filter", f"name=^{name}$", "--format", template))
    return out.rstrip("\n")


def test_every_format_field(daemon: EssaimDaemon, scene: Scene) -> None:
    web = scene.web
    assert field(daemon, web, "{{.ID}}") == scene.web_id[:12]
    assert field(daemon, web, "{{.ID}}", "--no-trunc") == scene.web_id
    assert field(daemon, web, "{{.Image}}") == "busybox"
    assert field(daemon, web, "{{.Command}}", "--no-trunc") == "\"sh -c 'sleep 300'\""
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} \w+", field(daemon, web, "{{.CreatedAt}}")
    )
    assert field(daemon, web, "{{.RunningFor}}").endswith(" ago")
    assert field(daemon, web, "{{.Ports}}") == f"90/tcp, 0.0.0.0:{scene.port}->80/tcp"
    assert field(daemon, web, "{{.State}}") == "running"
    assert field(daemon, web, "{{.Status}}").startswith("Up ")
    assert re.fullmatch(
        r"\d+(\.\d+)?k?B \(virtual \d+(\.\d+)?[kM]B\)", field(daemon, web, "{{.Size}}")
    )
    assert field(daemon, web, "{{.Names}}") == web
    assert field(daemon, web, "{{.Labels}}") == "a=1,b=2"
    assert field(daemon, web, '{{.Label "a"}}|{{.Label "zz"}}') == "1|"
    # The CLI builds Binds from a Go map, so `-v` order is lost before we see it.
    mounts = field(daemon, web, "{{.Mounts}}", "--no-trunc").split(",")
    assert sorted(mounts) == sorted([scene.volume, str(scene.bind)])
    assert field(daemon, web, "{{.Networks}}") == "bridge"
    assert field(daemon, web, "{{.LocalVolumes}}") == "1"
    # The others: nothing exposed while not running; each its network mode's network.
    assert field(daemon, scene.boxed, "{{.Ports}}|{{.Networks}}|{{.State}}") == "|none|created"
    assert field(daemon, scene.exited, "{{.Ports}}|{{.Networks}}|{{.State}}") == "|host|exited"
    assert field(daemon, scene.exited, "{{.Status}}").startswith("Exited (3) ")


def test_port_shows_what_is_published_and_inspect_keeps_the_bindings(
    daemon: EssaimDaemon, scene: Scene
) -> None:
    port = str(scene.port)
    assert ok(daemon.docker("port", scene.web)) == f"80/tcp -> 0.0.0.0:{port}\n"
    missing = daemon.docker("port", scene.web, "90")
    assert missing.returncode != 0
    assert f"No public port '90' published for {scene.web}" in missing.stderr
    attrs = daemon.client().api.inspect_container(scene.web)
    assert attrs["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": port}]}
    assert attrs["HostConfig"]["PublishAllPorts"] is False
    assert attrs["NetworkSettings"]["Ports"] == {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": port}],
        "90/tcp": None,
    }
    assert list(attrs["NetworkSettings"]["Networks"]) == ["bridge"]
    bridge = attrs["NetworkSettings"]["Networks"]["bridge"]
    assert bridge["IPAddress"] == attrs["NetworkSettings"]["IPAddress"] != ""
    boxed = daemon.client().api.inspect_container(scene.boxed)
    assert boxed["HostConfig"]["PublishAllPorts"] is True
    assert boxed["NetworkSettings"]["Ports"] == {}


def test_bad_port_bindings_are_refused_at_create(daemon: EssaimDaemon) -> None:
    client = daemon.client()
    with pytest.raises(Exception, match='invalid port specification: "99999"'):
        client.api.create_container(
            "busybox", host_config={"PortBindings": {"80/tcp": [{"HostPort": "99999"}]}}
        )


def test_state_filters(daemon: EssaimDaemon, scene: Scene) -> None:
    assert ps(daemon, "--filter", "status=running") == [scene.web]
    assert ps(daemon, "--filter", "status=created", "--filter", "status=exited") == [
        scene.exited,
        scene.boxed,
    ]
    assert ps(daemon, "--filter", "exited=3") == [scene.exited]
    # A container that never ran has no exit code to match.
    assert ps(daemon, "--filter", "exited=0") == []
    assert ps(daemon, "--filter", "health=none") == [scene.exited, scene.boxed, scene.web]
    assert ps(daemon, "--filter", "health=healthy") == []
    assert ps(daemon, "--filter", "is-task=false") == [scene.exited, scene.boxed, scene.web]
    assert ps(daemon, "--filter", "is-task=true") == []
    # Without -a only running ones, even with a filter on exit codes.
    running_only = ok(daemon.docker("ps", "--filter", "exited=3", "--format", "{{.Names}}"))
    assert scene.exited not in running_only.split()


def test_name_id_label_filters(daemon: EssaimDaemon, scene: Scene) -> None:
    assert ps(daemon, "--filter", f"name={scene.web}") == [scene.web]
    # Names are regular expressions, tried with and without the leading slash.
    assert ps(daemon, "--filter", f"name=^/{scene.boxed}$") == [scene.boxed]
    assert ps(daemon, "--filter", "name=psf-(web|exit)-") == [scene.exited, scene.web]
    assert ps(daemon, "--filter", f"id={scene.web_id[:12]}") == [scene.web]
    assert ps(daemon, "--filter", f"id={scene.web_id[:12]}", "--filter", "name=nomatch") == []
    assert ps(daemon, "--filter", "label=a") == [scene.web]
    assert ps(daemon, "--filter", "label=a=1", "--filter", "label=b=2") == [scene.web]
    assert ps(daemon, "--filter", "label=a=2") == []


def test_before_since_and_limit(daemon: EssaimDaemon, scene: Scene) -> None:
    assert ps(daemon, "--filter", f"before={scene.exited}") == [scene.boxed, scene.web]
    assert ps(daemon, "--filter", f"since={scene.web}") == [scene.exited, scene.boxed]
    assert ps(
        daemon, "--filter", f"since={scene.web_id}", "--filter", f"before={scene.exited}"
    ) == [scene.boxed]
    # Only a full id or a name, as dockerd's idOrNameFilter.
    short = daemon.docker("ps", "--filter", f"before={scene.web_id[:12]}")
    assert short.returncode != 0 and f"No such container: {scene.web_id[:12]}" in short.stderr
    # -n counts every state, newest first.
    newest = ok(daemon.docker("ps", "-n", "1", "--format", "{{.Names}}")).split()
    assert newest == [scene.exited]


def test_ancestor_volume_network_and_port_filters(daemon: EssaimDaemon, scene: Scene) -> None:
    everyone = [scene.exited, scene.boxed, scene.web]
    image_id = ok(daemon.docker("image", "inspect", "-f", "{{.Id}}", "busybox")).strip()
    for ancestor in ("busybox", "busybox:latest", image_id, image_id[7:19]):
        assert ps(daemon, "--filter", f"ancestor={ancestor}") == everyone, ancestor
    assert ps(daemon, "--filter", "ancestor=no-such-image") == []
    assert ps(daemon, "--filter", f"volume={scene.volume}") == [scene.web]
    assert ps(daemon, "--filter", "volume=/data") == [scene.web]
    assert ps(daemon, "--filter", f"volume={scene.bind}") == [scene.web]
    assert ps(daemon, "--filter", "network=bridge") == [scene.web]
    assert ps(daemon, "--filter", "network=none", "--filter", "network=host") == [
        scene.exited,
        scene.boxed,
    ]
    assert ps(daemon, "--filter", "expose=80") == [scene.web]
    assert ps(daemon, "--filter", "expose=85-95/tcp") == [scene.web]
    assert ps(daemon, "--filter", "expose=80/udp") == []
    assert ps(daemon, "--filter", f"publish={scene.port}") == [scene.web]
    assert ps(daemon, "--filter", "publish=80") == []


@pytest.mark.parametrize(
    ("filter_", "message"),
    [
        ("status=sleeping", "Invalid filter 'status=sleeping'"),
        ("health=fine", "Unrecognised filter value for health: fine"),
        ("is-task=maybe", "Invalid filter 'is-task=[maybe]'"),
        ("exited=x", 'strconv.Atoi: parsing "x": invalid syntax'),
        ("publish=80:80", "filter for 'publish' should not contain ':': 80:80"),
        ("colour=red", "invalid filter 'colour'"),
    ],
)
def test_bad_filters_get_dockerds_errors(daemon: EssaimDaemon, filter_: str, message: str) -> None:
    refused = daemon.docker("ps", "--filter", filter_)
    assert refused.returncode != 0
    assert message in refused.stderr


def test_sdk_list_filters_in_its_own_dialect(daemon: EssaimDaemon, scene: Scene) -> None:
    client = daemon.client()
    listed = client.containers.list(all=True, filters={"label": ["a=1"], "network": ["bridge"]})
    assert [c.name for c in listed] == [scene.web]
    summary = client.api.containers(all=True, filters={"name": scene.web})[0]
    assert sorted(summary["Ports"], key=lambda p: p["PrivatePort"]) == [
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": scene.port, "Type": "tcp"},
        {"PrivatePort": 90, "Type": "tcp"},
    ]
    assert summary["Command"] == "sh -c 'sleep 300'"
    assert list(summary["NetworkSettings"]["Networks"]) == ["bridge"]


def test_exec_ids_list_the_execs_not_yet_ended(daemon: EssaimDaemon, scene: Scene) -> None:
    api = daemon.client().api
    assert api.inspect_container(scene.boxed)["ExecIDs"] is None
    pending = api.exec_create(scene.web, ["true"])["Id"]
    long = api.exec_create(scene.web, ["sleep", "30"])["Id"]
    api.exec_start(long, detach=True)
    assert sorted(api.inspect_container(scene.web)["ExecIDs"]) == sorted([pending, long])
    api.exec_start(pending)  # runs to its end
    assert api.inspect_container(scene.web)["ExecIDs"] == [long]
    # Still inspectable on its own, as dockerd keeps it a while.
    assert api.exec_inspect(pending)["ExitCode"] == 0
    os.kill(api.exec_inspect(long)["Pid"], signal.SIGKILL)  # a host pid, as dockerd's
    deadline = time.monotonic() + 10
    while api.inspect_container(scene.web)["ExecIDs"] is not None:
        assert time.monotonic() < deadline, "the ended exec stayed listed"
        time.sleep(0.05)
