"""`docker events` with every filter moby knows (type, container, image, label, event,
volume, network, daemon, scope), values OR'ed and keys AND'ed, and `--since`/`--until`
in each form the CLI accepts (unix, RFC 3339, durations)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from tests.integration.daemon import EssaimDaemon


def ok(result: object) -> str:
    assert result.returncode == 0, result.stderr  # type: ignore[attr-defined]
    return result.stdout  # type: ignore[attr-defined, no-any-return]


def stamp(ns: int) -> str:
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


@dataclass
class Scene:
    since: int
    until: int
    web: str  # container name, labelled tier=web, with a health check and an exec
    web_id: str
    db: str  # container name, labelled tier=db
    db_id: str
    volume: str
    tag: str  # repo:tag given to busybox
    image_id: str


@pytest.fixture(scope="module")
def scene(daemon: EssaimDaemon) -> Iterator[Scene]:
    t = secrets.token_hex(3)
    web, db, volume, tag = f"evf-web-{t}", f"evf-db-{t}", f"evf-vol-{t}", f"evf-img-{t}:v1"
    since = time.time_ns()
    ok(daemon.docker("volume", "create", volume))
    ok(
        daemon.docker(
            "run", "-d", "--name", web, "--label", "tier=web", "--health-cmd", "true",
            "--health-interval", "200ms", "busybox", "sleep", "300",
        )
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while ok(daemon.docker("inspect", "-f", "{{.State.Health.Status}}", web)).strip() != "healthy":
        assert time.monotonic() < deadline, "never healthy"
        time.sleep(0.1)
    ok(daemon.docker("exec", web, "true"))
    ok(daemon.docker("run", "--name", db, "--label", "tier=db", "busybox", "true"))
    ok(daemon.docker("volume", "rm", volume))
    ok(daemon.docker("tag", "busybox", tag))
    ok(daemon.docker("stop", "-t", "0", web))
    until = time.time_ns()
    web_id = ok(daemon.docker("inspect", "-f", "{{.Id}}", web)).strip()
    db_id = ok(daemon.docker("inspect", "-f", "{{.Id}}", db)).strip()
    image_id = ok(daemon.docker("image", "inspect", "-f", "{{.Id}}", tag)).strip()
    yield Scene(since, until, web, web_id, db, db_id, volume, tag, image_id)
    daemon.docker("rm", "-f", web, db)
    daemon.docker("rmi", tag)


def events(daemon: EssaimDaemon, scene: Scene, *filters: str) -> list[tuple[str, str, str]]:
    """(type, action, actor id) of each event in the scene's window that passes."""
    args = [arg for f in filters for arg in ("--filter", f)]
    out = ok(
        daemon.docker(
            "events", "--since", stamp(scene.since), "--until", stamp(scene.until), *args,
            "--format", "{{json .}}", timeout=20,
        )
    )  # fmt: skip
    messages = [json.loads(line) for line in out.splitlines()]
    return [(m["Type"], m["Action"], m["Actor"]["ID"]) for m in messages]


def test_type_filter_values_are_ored(daemon: EssaimDaemon, scene: Scene) -> None:
    volumes = events(daemon, scene, "type=volume")
    assert volumes == [("volume", "create", scene.volume), ("volume", "destroy", scene.volume)]
    images = events(daemon, scene, "type=image")
    assert images == [("image", "tag", scene.image_id)]
    both = events(daemon, scene, "type=volume", "type=image")
    assert sorted(both) == sorted(volumes + images)
    containers = events(daemon, scene, "type=container")
    assert containers and {t for t, _, _ in containers} == {"container"}
    # Each container's run connects it to the default bridge and disconnects it after.
    networks = events(daemon, scene, "type=network")
    assert networks and {(t, a) for t, a, _ in networks} == {
        ("network", "connect"),
        ("network", "disconnect"),
    }
    everything = events(daemon, scene)
    assert len(everything) == len(containers) + len(volumes) + len(images) + len(networks)
    assert events(daemon, scene, "type=daemon") == []  # the daemon reloaded nothing


def test_event_filter_matches_actions_with_a_detail_by_prefix(
    daemon: EssaimDaemon, scene: Scene
) -> None:
    web = scene.web_id
    # Health probes are execs too: theirs start with the probe's command.
    starts = events(daemon, scene, "event=exec_start")
    assert ("container", "exec_start: true", web) in starts
    assert all(action.startswith("exec_start: ") for _, action, _ in starts)
    assert events(daemon, scene, "event=exec_start: true") == [
        ("container", "exec_start: true", web)
    ]
    assert ("container", "exec_create: true", web) in events(daemon, scene, "event=exec_create")
    healthy = events(daemon, scene, "event=health_status")
    assert healthy and healthy[0] == ("container", "health_status: healthy", web)
    assert events(daemon, scene, "event=health_status: healthy")[0] == healthy[0]
    # Without one of those three, values are exact: `exec` alone names no action.
    assert events(daemon, scene, "event=exec") == []
    # OR'ed values; `die` and `destroy` of the volume are different actions.
    died = events(daemon, scene, "event=die", "event=destroy")
    assert [a for _, a, _ in died] == ["die", "destroy", "die"]


def test_object_filters_match_id_or_name_by_prefix(daemon: EssaimDaemon, scene: Scene) -> None:
    web = events(daemon, scene, f"container={scene.web}")
    assert web and {actor for _, _, actor in web} == {scene.web_id}
    assert events(daemon, scene, f"container={scene.web_id[:10]}") == web
    by_prefix = events(daemon, scene, "container=evf-", "type=container")
    assert {actor for _, _, actor in by_prefix} == {scene.web_id, scene.db_id}
    both = events(daemon, scene, f"container={scene.web}", f"container={scene.db}")
    assert {actor for _, _, actor in both} == {scene.web_id, scene.db_id}
    volume = [("volume", "create", scene.volume), ("volume", "destroy", scene.volume)]
    assert events(daemon, scene, f"volume={scene.volume}") == volume
    assert events(daemon, scene, f"volume={scene.volume[:-2]}") == volume
    bridge = ok(daemon.docker("network", "inspect", "-f", "{{.Id}}", "bridge")).strip()
    on_bridge = events(daemon, scene, "network=bridge")
    assert on_bridge and {(t, actor) for t, _, actor in on_bridge} == {("network", bridge)}
    assert events(daemon, scene, f"network={bridge[:12]}") == on_bridge
    assert events(daemon, scene, "daemon=anything") == []


def test_image_filter_matches_container_image_and_image_events(
    daemon: EssaimDaemon, scene: Scene
) -> None:
    from_busybox = events(daemon, scene, "image=busybox", "type=container")
    assert {actor for _, _, actor in from_busybox} == {scene.web_id, scene.db_id}
    # An image event by its id, by its reference, and by the reference without its tag.
    tag = [("image", "tag", scene.image_id)]
    assert events(daemon, scene, f"image={scene.image_id}", "type=image") == tag
    assert events(daemon, scene, f"image={scene.tag}") == tag
    assert events(daemon, scene, f"image={scene.tag.split(':')[0]}") == tag


def test_label_scope_and_keys_anded(daemon: EssaimDaemon, scene: Scene) -> None:
    web_die = events(daemon, scene, "label=tier=web", "event=die")
    assert web_die == [("container", "die", scene.web_id)]
    tiers = events(daemon, scene, "label=tier", "event=start")
    assert [actor for _, _, actor in tiers] == [scene.web_id, scene.db_id]
    assert events(daemon, scene, "label=tier=cache") == []
    assert len(events(daemon, scene, "scope=local")) == len(events(daemon, scene))
    assert events(daemon, scene, "scope=swarm") == []
    assert events(daemon, scene, "type=volume", f"container={scene.web}") == []


def test_since_and_until_in_every_form_the_cli_takes(daemon: EssaimDaemon, scene: Scene) -> None:
    def rfc3339(ns: int) -> str:
        moment = datetime.fromtimestamp(ns // 1_000_000_000, UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 1_000_000_000:09d}Z"

    wanted = [("volume", "create", scene.volume), ("volume", "destroy", scene.volume)]
    by_date = ok(
        daemon.docker(
            "events", "--since", rfc3339(scene.since), "--until", rfc3339(scene.until),
            "--filter", f"volume={scene.volume}", "--format", "{{.Action}}", timeout=20,
        )
    )  # fmt: skip
    assert by_date.split() == ["create", "destroy"]
    # Durations count back from now; the stream ends at `until` (here: now). The CLI
    # sends whole seconds for them: let the second of the scene's end pass first.
    time.sleep(max(0.0, (scene.until // 1_000_000_000 + 1) - time.time() + 0.05))
    by_duration = ok(
        daemon.docker(
            "events", "--since", "10m", "--until", "0s", "--filter", f"volume={scene.volume}",
            "--format", "{{.Type}} {{.Action}} {{.Actor.ID}}", timeout=20,
        )
    )  # fmt: skip
    assert [tuple(line.split()) for line in by_duration.splitlines()] == wanted
    # A window that closes before the scene shows none of it.
    early = stamp(scene.since - 1_000_000_000)
    before = daemon.docker(
        "events", "--since", early, "--until", stamp(scene.since - 1),
        "--filter", f"volume={scene.volume}", timeout=20,
    )  # fmt: skip
    assert ok(before) == ""


def test_unknown_filter_is_a_400_with_mobys_wording(daemon: EssaimDaemon, scene: Scene) -> None:
    api = daemon.client().api
    # docker-py's events() does not look at the status; ask the endpoint directly.
    params = {"filters": json.dumps({"colour": ["blue"]}), "until": stamp(scene.until)}
    reply = api._get(api._url("/events"), params=params)
    assert reply.status_code == 400
    assert reply.json() == {"message": "invalid filter 'colour'"}
