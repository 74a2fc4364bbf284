"""`docker commit`: a container's changes (additions, changes, deletions, opaque
directories) become a layer on its image, `--change` lines its config, `-m`/`-a` its
history; running containers are paused meanwhile; the SDK's commit; Docker's errors.
"""

from __future__ import annotations

import json
import secrets
import socket
import time
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from tests.integration.daemon import EssaimDaemon, Result


def ok(result: Result) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def image_inspect(daemon: EssaimDaemon, ref: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(ok(daemon.docker("image", "inspect", ref)))[0]
    return found


def state(daemon: EssaimDaemon, ref: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(ok(daemon.docker("inspect", ref)))[0]["State"]
    return found


def actions(daemon: EssaimDaemon, since: float, cid: str) -> list[str]:
    """The container's pause, unpause and commit events since `since`, in order."""
    args = ["events", "--since", str(since), "--until", str(time.time() + 0.5)]
    args += ["--filter", f"container={cid}", "--format", "{{.Action}}"]
    return [a for a in ok(daemon.docker(*args)).split() if a in ("pause", "unpause", "commit")]


@pytest.fixture
def names(daemon: EssaimDaemon) -> Iterator[list[str]]:
    """Containers and images a test makes, removed after it (containers first)."""
    made: list[str] = []
    yield made
    for name in reversed(made):
        daemon.docker("rm", "-f", name)
        daemon.docker("rmi", "-f", name)


def test_commit_keeps_additions_and_changes_and_drops_deletions(
    daemon: EssaimDaemon, names: list[str]
) -> None:
    source, image = unique("edited"), unique("edited-img")
    names += [image, source]
    script = (
        "mkdir -p /new/sub && echo added > /new/sub/f && echo changed >> /etc/passwd"
        " && rm /bin/ls && rm -rf /home"
    )
    ok(daemon.docker("run", "--name", source, "busybox", "sh", "-c", script))
    image_id = ok(daemon.docker("commit", source, image)).strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    check = (
        "cat /new/sub/f; tail -n1 /etc/passwd; test -e /bin/ls || echo no-ls;"
        " test -e /home || echo no-home; test -e /etc/hostname && cat /etc/hostname"
    )
    out = ok(daemon.docker("run", "--rm", "--hostname", "fresh", image, "sh", "-c", check))
    assert out.split() == ["added", "changed", "no-ls", "no-home", "fresh"]
    base = image_inspect(daemon, "busybox")
    committed = image_inspect(daemon, image)
    assert committed["Id"] == image_id
    assert committed["RootFS"]["Layers"][:-1] == base["RootFS"]["Layers"]
    assert len(committed["RootFS"]["Layers"]) == len(base["RootFS"]["Layers"]) + 1
    assert committed["Parent"] == base["Id"]


def test_a_recreated_directory_hides_what_was_below(daemon: EssaimDaemon, names: list[str]) -> None:
    first, second = unique("first"), unique("second")
    names += [f"{first}:img", first, f"{second}:img", second]
    ok(
        daemon.docker(
            "run", "--name", first, "busybox", "sh", "-c", "mkdir /data && touch /data/old"
        )
    )
    ok(daemon.docker("commit", first, f"{first}:img"))
    script = "rm -rf /data && mkdir /data && touch /data/new"
    ok(daemon.docker("run", "--name", second, f"{first}:img", "sh", "-c", script))
    ok(daemon.docker("commit", second, f"{second}:img"))
    assert ok(daemon.docker("run", "--rm", f"{second}:img", "ls", "/data")).split() == ["new"]


def test_changes_set_the_config_and_take_effect(daemon: EssaimDaemon, names: list[str]) -> None:
    source, image = unique("changed"), unique("changed-img")
    names += [image, source]
    ok(daemon.docker("run", "--name", source, "busybox", "sh", "-c", "mkdir /x && echo hi > /x/f"))
    ok(
        daemon.docker(
            "commit", "-c", 'CMD ["cat", "f"]', "-c", "ENV A=b", "-c", "EXPOSE 80",
            "-c", "WORKDIR /x", source, image,
        )
    )  # fmt: skip
    config = image_inspect(daemon, image)["Config"]
    assert config["Cmd"] == ["cat", "f"]
    assert "A=b" in config["Env"] and any(e.startswith("PATH=") for e in config["Env"])
    assert config["ExposedPorts"] == {"80/tcp": {}}
    assert config["WorkingDir"] == "/x"
    assert ok(daemon.docker("run", "--rm", image)) == "hi\n"
    assert ok(daemon.docker("run", "--rm", image, "sh", "-c", "pwd; echo $A")).split() == [
        "/x",
        "b",
    ]


def test_the_images_ports_and_volumes_carry_over(daemon: EssaimDaemon, names: list[str]) -> None:
    first, second = unique("ported"), unique("reported")
    names += [f"{first}:img", first, f"{second}:img", second]
    ok(daemon.docker("create", "--name", first, "busybox", "true"))
    ok(daemon.docker("commit", "-c", "EXPOSE 8080", "-c", "VOLUME /vol", first, f"{first}:img"))
    ok(daemon.docker("create", "--name", second, f"{first}:img", "true"))
    ok(daemon.docker("commit", "-c", "EXPOSE 53/udp", second, f"{second}:img"))
    config = image_inspect(daemon, f"{second}:img")["Config"]
    assert config["ExposedPorts"] == {"53/udp": {}, "8080/tcp": {}}
    assert config["Volumes"] == {"/vol": {}}


def test_message_and_author_show_in_history_and_inspect(
    daemon: EssaimDaemon, names: list[str]
) -> None:
    source, image = unique("noted"), unique("noted-img")
    names += [f"{image}:v2", source]
    ok(daemon.docker("run", "--name", source, "busybox", "sh", "-c", "echo x > /x"))
    cid = json.loads(ok(daemon.docker("inspect", source)))[0]["Id"]
    author = "Me <me@example.com>"
    ok(daemon.docker("commit", "-m", "my message", "-a", author, source, f"{image}:v2"))
    committed = image_inspect(daemon, f"{image}:v2")
    assert committed["Comment"] == "my message"
    assert committed["Author"] == author
    assert committed["Parent"] == image_inspect(daemon, "busybox")["Id"]
    assert "Container" not in committed  # dropped from API 1.45 on, as by Docker
    old_api = docker.APIClient(base_url=daemon.host, version="1.44")
    assert old_api.inspect_image(f"{image}:v2")["Container"] == cid
    rows = ok(
        daemon.docker(
            "history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Comment}}", f"{image}:v2"
        )
    ).splitlines()
    assert rows[0] == "sh -c echo x > /x|my message"
    assert len(rows) == len(daemon.client().images.get("busybox").history()) + 1
    history = daemon.client().images.get(f"{image}:v2").history()
    assert history[0]["Id"] == committed["Id"] and history[0]["Size"] > 0


def test_a_running_container_is_paused_for_the_commit_and_left_running(
    daemon: EssaimDaemon, names: list[str]
) -> None:
    source, image = unique("live"), unique("live-img")
    names += [image, source]
    cid = ok(daemon.docker("run", "-d", "--name", source, "busybox", "sleep", "300")).strip()
    since = time.time() - 0.5
    ok(daemon.docker("exec", source, "sh", "-c", "echo live > /live"))
    ok(daemon.docker("commit", source, image))
    assert state(daemon, source)["Status"] == "running"
    assert actions(daemon, since, cid)[-3:] == [
        "pause",
        "commit",
        "unpause",
    ]
    assert ok(daemon.docker("run", "--rm", image, "cat", "/live")) == "live\n"


def test_pause_false_and_an_already_paused_container(
    daemon: EssaimDaemon, names: list[str]
) -> None:
    source = unique("unpaused")
    names += [f"{source}:a", f"{source}:b", source]
    cid = ok(daemon.docker("run", "-d", "--name", source, "busybox", "sleep", "300")).strip()
    since = time.time() - 0.5
    ok(daemon.docker("commit", "--pause=false", source, f"{source}:a"))
    assert actions(daemon, since, cid) == ["commit"]
    ok(daemon.docker("pause", source))
    since = time.time()  # after the pause event
    ok(daemon.docker("commit", source, f"{source}:b"))
    assert state(daemon, source)["Status"] == "paused"
    assert actions(daemon, since, cid) == ["commit"]


def test_an_unchanged_container_adds_no_layer(daemon: EssaimDaemon, names: list[str]) -> None:
    created, ran = unique("created"), unique("ran")
    names += [f"{created}:img", created, f"{ran}:img", ran]
    ok(daemon.docker("create", "--name", created, "busybox", "true"))
    ok(daemon.docker("run", "--name", ran, "-w", "/", "busybox", "true"))
    base_layers = image_inspect(daemon, "busybox")["RootFS"]["Layers"]
    for source in (created, ran):
        ok(daemon.docker("commit", source, f"{source}:img"))
        assert image_inspect(daemon, f"{source}:img")["RootFS"]["Layers"] == base_layers
        newest = daemon.client().images.get(f"{source}:img").history()[0]
        assert newest["Size"] == 0 and newest["CreatedBy"] == "true"


def test_commit_through_the_sdk(daemon: EssaimDaemon, names: list[str]) -> None:
    client = daemon.client()
    name = unique("sdk")
    names += [f"{name}:t1", name]
    assert client.containers.run("busybox", ["sh", "-c", "echo sdk > /sdk"], name=name) == b""
    source = client.containers.get(name)
    image = source.commit(
        repository=name, tag="t1", message="from sdk", author="sdk author",
        changes=["ENV S=1"], conf={"Labels": {"made.by": "sdk"}, "Cmd": ["cat", "/sdk"]},
    )  # fmt: skip
    assert image.tags == [f"{name}:t1"]
    attrs = image.attrs
    assert attrs["Comment"] == "from sdk" and attrs["Author"] == "sdk author"
    assert attrs["Config"]["Labels"] == {"made.by": "sdk"}
    assert attrs["Config"]["Cmd"] == ["cat", "/sdk"]
    assert "S=1" in attrs["Config"]["Env"]
    # Not remove=True: the SDK reads a followed log after removing the container, and
    # essaimd's log follow can lose lines to that removal (not commit's business).
    runner = unique("sdk-run")
    names.append(runner)
    assert client.containers.run(image.id, name=runner) == b"sdk\n"


def test_the_image_can_be_removed_while_its_container_lives(
    daemon: EssaimDaemon, names: list[str]
) -> None:
    source, image = unique("keeper"), unique("keeper-img")
    names.append(source)
    ok(daemon.docker("run", "-d", "--name", source, "busybox", "sleep", "300"))
    ok(daemon.docker("exec", source, "touch", "/kept"))
    image_id = ok(daemon.docker("commit", source, image)).strip()
    removed = ok(daemon.docker("rmi", image))
    assert f"Untagged: {image}:latest" in removed and f"Deleted: {image_id}" in removed
    assert state(daemon, source)["Status"] == "running"
    ok(daemon.docker("exec", source, "ls", "/kept"))
    ok(daemon.docker("image", "inspect", "busybox"))


def test_events_name_the_new_image(daemon: EssaimDaemon, names: list[str]) -> None:
    source, image = unique("announced"), unique("announced-img")
    names += [f"{image}:v1", source]
    ok(daemon.docker("create", "--name", source, "--label", "team=a", "busybox", "true"))
    since = time.time() - 0.5
    image_id = ok(daemon.docker("commit", "-m", "note", source, f"{image}:v1")).strip()
    fmt = "{{.Type}} {{.Action}} {{json .Actor.Attributes}}"
    args = ["events", "--since", str(since), "--until", str(time.time() + 0.5), "--format", fmt]
    lines = [line.split(" ", 2) for line in ok(daemon.docker(*args)).splitlines()]
    tags = [json.loads(a) for t, action, a in lines if (t, action) == ("image", "tag")]
    # An image event carries the image's labels: the container's, committed.
    assert {"name": f"{image}:v1", "team": "a"} in tags
    commits = [json.loads(a) for _, action, a in lines if action == "commit"]
    commit = next(c for c in commits if c["name"] == source)
    assert commit == {
        "comment": "note", "imageID": image_id, "imageRef": f"{image}:v1",
        "image": "busybox", "name": source, "team": "a",
    }  # fmt: skip


def test_errors_in_dockers_words(daemon: EssaimDaemon, names: list[str]) -> None:
    missing = daemon.docker("commit", "no-such-container", unique("x"))
    assert missing.returncode == 1
    assert "No such container: no-such-container" in missing.stderr
    source = unique("refused")
    names.append(source)
    ok(daemon.docker("create", "--name", source, "busybox", "true"))
    bad_change = daemon.docker("commit", "-c", "RUN true", source)
    assert bad_change.returncode == 1
    assert "run is not a valid change command" in bad_change.stderr
    bad_env = daemon.docker("commit", "-c", "ENV", source)
    assert bad_env.returncode == 1 and "ENV requires at least one argument" in bad_env.stderr
    bad_name = daemon.docker("commit", source, "Not/Lower")
    assert bad_name.returncode == 1 and "invalid reference format" in bad_name.stderr
    api = daemon.client().api
    with pytest.raises(docker.errors.APIError) as digest:
        api.commit(source, repository="img@sha256:" + "a" * 64)
    assert digest.value.status_code == 400
    assert "cannot import digest reference" in str(digest.value)
    with pytest.raises(docker.errors.NotFound):
        api.commit("no-such-container")
    with pytest.raises(docker.errors.APIError) as bad_format:
        api.commit(source, repository="UPPER")
    assert bad_format.value.status_code == 400
    assert "invalid reference format" in str(bad_format.value)


def raw_post(daemon: EssaimDaemon, path: str, head: str = "", body: bytes = b"") -> bytes:
    """One request on a fresh connection, exactly as written; the reply's first bytes."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(15)
        sock.connect(str(daemon.socket))
        request = f"POST {path} HTTP/1.1\r\nHost: d\r\nConnection: close\r\n{head}\r\n"
        sock.sendall(request.encode() + body)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
        return reply


def test_a_request_without_any_body_is_answered(daemon: EssaimDaemon, names: list[str]) -> None:
    source = unique("bodiless")
    names.append(source)
    ok(daemon.docker("create", "--name", source, "busybox", "true"))
    # No Content-Length, no Transfer-Encoding: an empty body that must not be waited for.
    reply = raw_post(daemon, f"/v1.45/commit?container={source}")
    assert reply.startswith(b"HTTP/1.1 201 "), reply[:200]
    image_id = json.loads(reply.split(b"\r\n\r\n", 1)[1])["Id"]
    names.append(image_id)
    assert ok(daemon.docker("image", "inspect", "-f", "{{.Id}}", image_id)).strip() == image_id


def test_a_body_must_be_json(daemon: EssaimDaemon, names: list[str]) -> None:
    source = unique("typed")
    names.append(source)
    ok(daemon.docker("create", "--name", source, "busybox", "true"))
    body = b'{"Cmd": ["true"]}'
    head = f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
    reply = raw_post(daemon, f"/v1.45/commit?container={source}", head, body)
    assert reply.startswith(b"HTTP/1.1 400 "), reply[:200]
    assert b"unsupported Content-Type header (text/plain): must be 'application/json'" in reply
