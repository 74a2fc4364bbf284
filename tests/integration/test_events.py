"""`docker events` and `GET /events`: past events between `--since` and `--until` in
Docker's text format, filters, `--format`, a live stream, and the SDK's decoder.
"""

from __future__ import annotations

import json
import queue
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from tests.integration.daemon import EssaimDaemon

# `<RFC3339Nano, 9 digits> <type> <action> <actor id> (<k=v, ...>)`, as the CLI prints.
LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(?:Z|[+-]\d\d:\d\d)) "
    r"(?P<type>\w+) (?P<action>[\w:-]+) (?P<actor>\S+)(?: \((?P<attributes>.*)\))?$"
)


def stamp(ns: int) -> str:
    """A `--since`/`--until` value the CLI passes through unchanged: unix seconds.nanos."""
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


def ok(result: Any) -> str:
    assert result.returncode == 0, result.stderr
    out: str = result.stdout
    return out


@dataclass
class Scene:
    """What one run of the module left behind, with the window around it."""

    since: int
    until: int
    first: str  # name of the container labelled role=first, exit 3
    first_id: str
    second: str  # name of the container labelled role=second, exit 0
    second_id: str
    tag: str
    image_id: str
    role_key: str


@pytest.fixture(scope="module")
def scene(daemon: EssaimDaemon) -> Iterator[Scene]:
    token = secrets.token_hex(3)
    role = f"test.role-{token}"
    first, second, tag = f"ev-first-{token}", f"ev-second-{token}", f"ev-tag-{token}:v1"
    since = time.time_ns()
    run = daemon.docker(
        "run", "--name", first, "--label", f"{role}=first", "busybox", "sh", "-c", "exit 3"
    )
    assert run.returncode == 3, run.stderr
    ok(daemon.docker("run", "--name", second, "--label", f"{role}=second", "busybox", "true"))
    first_id = ok(daemon.docker("inspect", "-f", "{{.Id}}", first)).strip()
    second_id = ok(daemon.docker("inspect", "-f", "{{.Id}}", second)).strip()
    ok(daemon.docker("rm", first))  # one by one: the CLI removes a list concurrently
    ok(daemon.docker("rm", second))
    ok(daemon.docker("tag", "busybox", tag))
    image_id = ok(daemon.docker("image", "inspect", "-f", "{{.Id}}", tag)).strip()
    until = time.time_ns()
    # Something after the window that must never show up in it.
    ok(
        daemon.docker(
            "create", "--name", f"ev-after-{token}", "--label", f"{role}=after", "busybox", "true"
        )
    )
    yield Scene(since, until, first, first_id, second, second_id, tag, image_id, role)
    daemon.docker("rm", "-f", f"ev-after-{token}")
    daemon.docker("rmi", tag)


def events(daemon: EssaimDaemon, scene: Scene, *args: str) -> list[str]:
    result = daemon.docker(
        "events", "--since", stamp(scene.since), "--until", stamp(scene.until), *args, timeout=20
    )
    return ok(result).splitlines()


def parse(line: str) -> tuple[str, str, str, dict[str, str]]:
    m = LINE.match(line)
    assert m, f"not Docker's event format: {line!r}"
    attributes = dict(item.split("=", 1) for item in (m["attributes"] or "").split(", ") if item)
    return m["type"], m["action"], m["actor"], attributes


def test_since_until_prints_past_events_in_dockers_text_format(
    daemon: EssaimDaemon, scene: Scene
) -> None:
    lines = events(daemon, scene)
    parsed = [parse(line) for line in lines]
    summary = [(t, a, actor) for t, a, actor, _ in parsed]
    first, second = scene.first_id, scene.second_id
    bridge = ok(daemon.docker("network", "inspect", "-f", "{{.Id}}", "bridge")).strip()
    assert summary == [
        ("container", "create", first),
        ("container", "attach", first),  # docker run attaches before it starts
        ("network", "connect", bridge),
        ("container", "start", first),
        ("container", "die", first),
        ("network", "disconnect", bridge),  # dockerd releases the network after the die
        ("container", "create", second),
        ("container", "attach", second),
        ("network", "connect", bridge),
        ("container", "start", second),
        ("container", "die", second),
        ("network", "disconnect", bridge),
        ("container", "destroy", first),
        ("container", "destroy", second),
        ("image", "tag", scene.image_id),
    ]
    by_action = {(a, actor): attrs for _, a, actor, attrs in parsed}
    assert by_action[("create", first)] == {
        scene.role_key: "first",
        "image": "busybox",
        "name": scene.first,
    }
    assert by_action[("die", first)] == {
        scene.role_key: "first",
        "image": "busybox",
        "name": scene.first,
        "exitCode": "3",
        "execDuration": "0",
    }
    assert by_action[("die", second)]["exitCode"] == "0"
    assert by_action[("tag", scene.image_id)] == {"name": scene.tag}
    # The attributes are printed sorted by key, as the CLI does with what it is given.
    assert lines[4].endswith(
        f"(execDuration=0, exitCode=3, image=busybox, name={scene.first}, {scene.role_key}=first)"
    )
    times = [datetime.fromisoformat(m["time"]).timestamp() for m in map(LINE.match, lines) if m]
    assert len(times) == len(lines) and times == sorted(times)
    assert scene.since / 1e9 - 1e-3 <= times[0] and times[-1] <= scene.until / 1e9 + 1e-3


def test_until_alone_replays_history_up_to_it(daemon: EssaimDaemon, scene: Scene) -> None:
    result = daemon.docker(
        "events", "--until", stamp(scene.until), "--filter", f"container={scene.first}", timeout=20
    )
    actions = [parse(line)[1] for line in ok(result).splitlines()]
    assert actions == ["create", "attach", "start", "die", "destroy"]


def test_since_after_until_is_refused(daemon: EssaimDaemon, scene: Scene) -> None:
    result = daemon.docker(
        "events", "--since", stamp(scene.until), "--until", stamp(scene.since), timeout=20
    )
    assert result.returncode != 0
    assert "cannot be after `until` time" in result.stderr


def test_filters_select_type_event_container_and_label(daemon: EssaimDaemon, scene: Scene) -> None:
    def actors(*filters: str) -> list[tuple[str, str]]:
        args = [arg for f in filters for arg in ("--filter", f)]
        return [(parse(line)[1], parse(line)[2]) for line in events(daemon, scene, *args)]

    first, second = scene.first_id, scene.second_id
    # Both containers' lifecycles, as the scene played them out.
    one = ["create", "attach", "start", "die"]
    both = [*one, *one, "destroy", "destroy"]
    assert [a for a, _ in actors("type=container")] == both
    assert actors("type=image") == [("tag", scene.image_id)]
    assert actors("event=die") == [("die", first), ("die", second)]
    assert actors("event=die", "event=destroy") == [
        ("die", first),
        ("die", second),
        ("destroy", first),
        ("destroy", second),
    ]
    assert actors(f"container={scene.second}") == [
        ("create", second),
        ("attach", second),
        ("start", second),
        ("die", second),
        ("destroy", second),
    ]
    assert actors(f"container={first[:12]}", "event=start") == [("start", first)]
    assert actors(f"label={scene.role_key}=first", "event=die") == [("die", first)]
    assert [a for a, _ in actors(f"label={scene.role_key}")] == both
    assert actors(f"label={scene.role_key}=nobody") == []
    assert actors(f"image={scene.tag}") == [("tag", scene.image_id)]


def test_unknown_filter_is_refused(daemon: EssaimDaemon, scene: Scene) -> None:
    result = daemon.docker(
        "events", "--since", stamp(scene.since), "--until", stamp(scene.until),
        "--filter", "colour=blue", timeout=20,
    )  # fmt: skip
    assert result.returncode != 0
    assert "invalid filter 'colour'" in result.stderr


def test_format_json_prints_the_wire_message(daemon: EssaimDaemon, scene: Scene) -> None:
    lines = events(daemon, scene, "--filter", "event=die", "--format", "{{json .}}")
    messages = [json.loads(line) for line in lines]
    assert [m["Actor"]["ID"] for m in messages] == [scene.first_id, scene.second_id]
    die = messages[0]
    assert die["Type"] == "container" and die["Action"] == "die"
    assert die["status"] == "die" and die["id"] == scene.first_id and die["from"] == "busybox"
    assert die["scope"] == "local"
    assert die["Actor"]["Attributes"] == {
        scene.role_key: "first",
        "image": "busybox",
        "name": scene.first,
        "exitCode": "3",
        "execDuration": "0",
    }
    assert scene.since <= die["timeNano"] <= scene.until
    assert die["time"] == die["timeNano"] // 1_000_000_000


def test_sdk_events_between_since_and_until(daemon: EssaimDaemon, scene: Scene) -> None:
    client = daemon.client()
    stream = client.events(
        decode=True,
        since=scene.since / 1e9,
        until=scene.until / 1e9,
        filters={"label": [f"{scene.role_key}=first"]},
    )
    messages = list(stream)  # ends by itself: `until` is in the past
    assert [m["Action"] for m in messages] == ["create", "attach", "start", "die", "destroy"]
    assert all(m["Actor"]["Attributes"]["name"] == scene.first for m in messages)
    assert messages[3]["Actor"]["Attributes"]["exitCode"] == "3"


class EventsProcess:
    """`docker events` left running; a thread reads its lines as they come, so lines
    that arrive together are not hidden in a buffer while we wait on the pipe."""

    def __init__(self, daemon: EssaimDaemon, *args: str) -> None:
        self.proc = subprocess.Popen(
            ["docker", "events", *args], env=daemon.env(), text=True, bufsize=1,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def read_line(self, timeout: float = 15) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no event line in time") from None

    def poll(self) -> int | None:
        return self.proc.poll()

    def stop(self) -> tuple[str, str]:
        self.proc.terminate()
        return self.proc.communicate(timeout=10)


def docker_events(daemon: EssaimDaemon, *args: str) -> subprocess.Popen[str]:
    """`docker events` left running, read whole when it ends."""
    return subprocess.Popen(
        ["docker", "events", *args], env=daemon.env(), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def test_follow_receives_new_events_live(daemon: EssaimDaemon) -> None:
    name = f"ev-live-{secrets.token_hex(3)}"
    # --since now: the events of this test are delivered even if the CLI subscribes late.
    proc = EventsProcess(
        daemon, "--since", stamp(time.time_ns()), "--filter", f"container={name}",
        "--format", "{{.Action}} {{.Actor.Attributes.name}}",
    )  # fmt: skip
    try:
        ok(daemon.docker("create", "--name", name, "busybox", "true"))
        assert proc.read_line() == f"create {name}\n"
        assert proc.poll() is None, "the stream stays open"
        ok(daemon.docker("start", name))
        assert proc.read_line() == f"start {name}\n"
        assert proc.read_line() == f"die {name}\n"
    finally:
        proc.stop()
        daemon.docker("rm", "-f", name)


def test_sdk_follow_receives_new_events_live(daemon: EssaimDaemon) -> None:
    name = f"ev-sdk-{secrets.token_hex(3)}"
    client = daemon.client()
    stream = client.events(decode=True, since=time.time(), filters={"container": name})
    try:
        ok(daemon.docker("create", "--name", name, "--label", "k=v", "busybox", "true"))
        message = next(stream)
        assert message["Action"] == "create"
        assert message["Actor"]["Attributes"] == {"k": "v", "image": "busybox", "name": name}
    finally:
        stream.close()
        daemon.docker("rm", "-f", name)


def test_until_in_the_future_streams_live_then_ends_on_time(daemon: EssaimDaemon) -> None:
    name = f"ev-window-{secrets.token_hex(3)}"
    since = time.time_ns()
    until = since + 1_500_000_000
    proc = docker_events(
        daemon, "--since", stamp(since), "--until", stamp(until),
        "--filter", f"container={name}", "--format", "{{.Action}}",
    )  # fmt: skip
    try:
        ok(daemon.docker("create", "--name", name, "busybox", "true"))
        out, err = proc.communicate(timeout=15)  # ends by itself at `until`
        assert proc.returncode == 0, err
        assert time.time_ns() >= until
        assert out == "create\n"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        daemon.docker("rm", "-f", name)


def test_stop_reports_kill_die_stop_with_the_signal(daemon: EssaimDaemon) -> None:
    name = f"ev-stop-{secrets.token_hex(3)}"
    since = time.time_ns()
    ok(daemon.docker("run", "-d", "--name", name, "busybox", "sleep", "100"))
    try:
        ok(daemon.docker("stop", "-t", "0", name))
        until = time.time_ns()
        result = daemon.docker(
            "events", "--since", stamp(since), "--until", stamp(until),
            "--filter", f"container={name}", "--format", "{{.Action}} {{json .Actor.Attributes}}",
            timeout=20,
        )  # fmt: skip
        lines = [line.split(" ", 1) for line in ok(result).splitlines()]
        assert [action for action, _ in lines] == ["create", "start", "kill", "kill", "die", "stop"]
        signals = [json.loads(attrs)["signal"] for action, attrs in lines if action == "kill"]
        assert signals == ["15", "9"]  # no grace: SIGTERM, then SIGKILL at once
        die = json.loads(lines[4][1])
        assert die["exitCode"] == "137" and int(die["execDuration"]) >= 0
    finally:
        daemon.docker("rm", "-f", name)
