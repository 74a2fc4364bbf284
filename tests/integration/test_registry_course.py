"""The course's private registry, end to end with the real docker CLI: `essaim registry`
on loopback (open, Basic auth, token auth), push, rmi, pull back the same image; the
same through Debian's docker-registry; skopeo reads what the CLI pushed; a pulled layer
that tries to leave its root is refused or contained."""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.integration.daemon import EssaimDaemon
from tests.integration.registries import (
    DockerRegistry,
    EssaimRegistry,
    image_of_layers,
    make_certificate,
    push_image,
    sha256,
    skopeo,
    write_htpasswd,
)

pytestmark = pytest.mark.integration

_PUSHED = re.compile(r"^(\S+): digest: (sha256:[0-9a-f]{64}) size: (\d+)$", re.MULTILINE)


def ok(result: object) -> str:
    assert getattr(result, "returncode", 1) == 0, result
    return str(getattr(result, "stdout", ""))


def image_id(daemon: EssaimDaemon, ref: str) -> str:
    return ok(daemon.docker("image", "inspect", "-f", "{{.Id}}", ref)).strip()


def repo_digests(daemon: EssaimDaemon, ref: str) -> list[str]:
    out = ok(daemon.docker("image", "inspect", "-f", "{{json .RepoDigests}}", ref))
    return list(json.loads(out))


def push_rmi_pull(daemon: EssaimDaemon, ref: str) -> tuple[str, str]:
    """Push `ref`, remove it, pull it back: (image id, manifest digest), checked equal
    on both sides."""
    before = image_id(daemon, ref)
    pushed = ok(daemon.docker("push", ref))
    match = _PUSHED.search(pushed)
    assert match is not None, pushed
    digest = match.group(2)
    repo = ref.rsplit(":", 1)[0]
    assert f"{repo}@{digest}" in repo_digests(daemon, ref)
    ok(daemon.docker("rmi", ref))
    assert daemon.docker("image", "inspect", ref).returncode != 0
    pulled = ok(daemon.docker("pull", ref))
    assert f"Digest: {digest}" in pulled
    assert f"Status: Downloaded newer image for {ref}" in pulled
    assert image_id(daemon, ref) == before
    assert f"{repo}@{digest}" in repo_digests(daemon, ref)
    # By repository (as moby, a `repo:tag` filter would keep the tag but not the digest).
    listed = ok(daemon.docker("images", "--digests", "--format", "{{.Tag}} {{.Digest}}", repo))
    assert f"{ref.rsplit(':', 1)[1]} {digest}" in listed.splitlines()
    return before, digest


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EssaimRegistry]:
    with EssaimRegistry(tmp_path_factory.mktemp("course") / "root") as reg:
        yield reg


@pytest.fixture(scope="module")
def layered(daemon: EssaimDaemon) -> str:
    """A two-layer image made by commit on busybox, with a file of its own."""
    name = "course-layered-src"
    script = "echo course > /greeting; mkdir -p /srv; seq 1 5000 > /srv/numbers"
    ok(daemon.docker("run", "--name", name, "busybox", "sh", "-c", script))
    ok(daemon.docker("commit", "-c", 'CMD ["cat", "/greeting"]', name, "course/layered:1"))
    ok(daemon.docker("rm", name))
    return "course/layered:1"


def test_push_rmi_pull_gives_back_the_same_image(
    daemon: EssaimDaemon, registry: EssaimRegistry
) -> None:
    ref = f"{registry.address}/course/bb:v1"
    ok(daemon.docker("tag", "busybox", ref))
    push_rmi_pull(daemon, ref)
    assert ok(daemon.docker("run", "--rm", ref, "echo", "pulled")) == "pulled\n"


def test_a_committed_image_goes_round_and_runs(
    daemon: EssaimDaemon, registry: EssaimRegistry, layered: str
) -> None:
    ref = f"{registry.address}/course/layered:1"
    ok(daemon.docker("tag", layered, ref))
    push_rmi_pull(daemon, ref)
    assert ok(daemon.docker("run", "--rm", ref)) == "course\n"
    assert ok(daemon.docker("run", "--rm", ref, "wc", "-l", "/srv/numbers")).split()[0] == "5000"
    # A second push finds every layer there already.
    again = ok(daemon.docker("push", ref))
    assert "Layer already exists" in again


def test_skopeo_reads_what_the_cli_pushed(
    daemon: EssaimDaemon, registry: EssaimRegistry, tmp_path: Path
) -> None:
    ref = f"{registry.address}/course/bb:skopeo"
    ok(daemon.docker("tag", "busybox", ref))
    ok(daemon.docker("push", ref))
    inspected = skopeo("inspect", "--tls-verify=false", f"docker://{ref}")
    assert inspected.returncode == 0, inspected.stderr
    digest = json.loads(inspected.stdout)["Digest"]
    assert repo_digests(daemon, ref) == [f"{ref.rsplit(':', 1)[0]}@{digest}"]
    # A `dir:` copy keeps the manifest's bytes: they hash to the digest the CLI printed.
    copied = skopeo("copy", "--src-tls-verify=false", f"docker://{ref}", f"dir:{tmp_path}/out")
    assert copied.returncode == 0, copied.stderr
    assert sha256((tmp_path / "out" / "manifest.json").read_bytes()) == digest


def test_basic_auth_refuses_a_wrong_password_and_serves_the_right_one(
    daemon: EssaimDaemon, tmp_path: Path
) -> None:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"student": "s3cret"})
    reg = EssaimRegistry(tmp_path / "root", args=["--htpasswd", str(htpasswd)])
    with reg:
        ref = f"{reg.address}/course/private:1"
        ok(daemon.docker("tag", "busybox", ref))
        denied = daemon.docker("push", ref)
        assert denied.returncode != 0
        assert "no basic auth credentials" in denied.stderr or "unauthorized" in denied.stderr
        wrong = daemon.docker("login", "-u", "student", "-p", "nope", reg.address)
        assert wrong.returncode != 0
        assert "401 Unauthorized" in wrong.stderr or "unauthorized" in wrong.stderr
        assert "Login Succeeded" in ok(
            daemon.docker("login", "-u", "student", "--password-stdin", reg.address, input="s3cret")
        )
        push_rmi_pull(daemon, ref)
        ok(daemon.docker("logout", reg.address))


def test_the_sdk_logs_in_pushes_and_pulls_with_its_auth_config(
    daemon: EssaimDaemon, tmp_path: Path
) -> None:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"student": "s3cret"})
    with EssaimRegistry(tmp_path / "root", args=["--htpasswd", str(htpasswd)]) as reg:
        client = daemon.client()
        repo = f"{reg.address}/course/sdk"
        client.images.get("busybox").tag(repo, "1")
        auth = {"username": "student", "password": "s3cret"}
        with pytest.raises(docker.errors.APIError, match="401"):
            client.login("student", "wrong", registry=reg.address, reauth=True)
        assert client.login("student", "s3cret", registry=reg.address)["Status"] == (
            "Login Succeeded"
        )
        messages = list(client.images.push(repo, "1", auth_config=auth, stream=True, decode=True))
        assert not [m for m in messages if "error" in m], messages
        digest = next(m["aux"]["Digest"] for m in messages if "aux" in m)
        client.images.remove(f"{repo}:1")
        pulled = client.images.pull(repo, tag="1", auth_config=auth)
        assert f"{repo}@{digest}" in pulled.attrs["RepoDigests"]
        assert client.images.get(f"{repo}@{digest}").id == pulled.id


def test_token_auth_through_our_own_token_server(daemon: EssaimDaemon, tmp_path: Path) -> None:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"student": "s3cret"})
    cert, key = make_certificate(tmp_path, "token-issuer")
    reg = EssaimRegistry(
        tmp_path / "root",
        args=["--htpasswd", str(htpasswd), "--token-key", str(key), "--token-cert", str(cert)],
    )
    with reg:
        ref = f"{reg.address}/course/tokened:1"
        ok(daemon.docker("tag", "busybox", ref))
        wrong = daemon.docker("login", "-u", "student", "-p", "nope", reg.address)
        assert wrong.returncode != 0
        ok(daemon.docker("login", "-u", "student", "--password-stdin", reg.address, input="s3cret"))
        push_rmi_pull(daemon, ref)
        ok(daemon.docker("logout", reg.address))


def test_the_same_round_trip_through_docker_registry(
    daemon: EssaimDaemon, tmp_path: Path, layered: str
) -> None:
    with DockerRegistry(tmp_path / "root") as reg:
        ref = f"{reg.address}/course/layered:ref"
        ok(daemon.docker("tag", layered, ref))
        push_rmi_pull(daemon, ref)
        assert ok(daemon.docker("run", "--rm", ref)) == "course\n"


def test_default_registry_names_are_pulled_through_a_mirror(
    own_daemon: EssaimDaemon, registry: EssaimRegistry
) -> None:
    """`docker pull course-mirrored:1` means docker.io/library/course-mirrored: with a
    `--registry-mirror` on loopback, that is where it comes from (nothing else is asked)."""
    d = own_daemon
    mirrored = f"{registry.address}/library/course-mirrored:1"
    ok(d.docker("tag", "busybox", mirrored))
    ok(d.docker("push", mirrored))
    ok(d.docker("rmi", mirrored))
    d.stop()
    d.extra.extend(["--registry-mirror", registry.url])
    d.start()
    mirrors = d.client().info()["RegistryConfig"]["Mirrors"]
    assert mirrors == [registry.url + "/"]
    pulled = ok(d.docker("pull", "course-mirrored:1"))
    assert "Status: Downloaded newer image for course-mirrored:1" in pulled
    assert ok(d.docker("run", "--rm", "course-mirrored:1", "echo", "mirrored")) == "mirrored\n"


def _hostile_layer(outside: Path, kind: str) -> bytes:
    """A layer that tries one way out of its root towards `outside` (a host dir)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add(info: tarfile.TarInfo, data: bytes = b"") -> None:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)

        if kind == "dotdot":
            add(tarfile.TarInfo(f"../../../..{outside}/{kind}"), kind.encode())
        elif kind == "absolute":
            add(tarfile.TarInfo(f"{outside}/{kind}"), kind.encode())
        elif kind == "symlink":
            link = tarfile.TarInfo("escape")
            link.type, link.linkname = tarfile.SYMTYPE, str(outside)
            add(link)
            add(tarfile.TarInfo(f"escape/{kind}"), kind.encode())
        elif kind == "hardlink":
            hard = tarfile.TarInfo("hard")
            hard.type, hard.linkname = tarfile.LNKTYPE, "../../../../etc/hostname"
            add(hard)
        elif kind == "device":
            device = tarfile.TarInfo("devnull")
            device.type, device.devmajor, device.devminor = tarfile.CHRTYPE, 1, 3
            add(device)
        add(tarfile.TarInfo("ok"), b"ok")
    return out.getvalue()


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink", "device"])
def test_a_pulled_layer_cannot_reach_outside_its_root(
    daemon: EssaimDaemon, registry: EssaimRegistry, tmp_path: Path, kind: str
) -> None:
    """Each way out is refused (no image, nothing kept) or contained (the entry lands
    inside the image's root as if it were `/`); the host directory stays empty."""
    outside = tmp_path / "outside"
    outside.mkdir()
    image = image_of_layers([_hostile_layer(outside, kind)])
    ref = push_image(registry, f"course/hostile-{kind}", "1", image)
    before = ok(daemon.docker("images", "-aq", "--no-trunc")).split()
    pulled = daemon.docker("pull", ref)
    assert list(outside.iterdir()) == []
    if pulled.returncode != 0:
        assert kind in ("dotdot", "hardlink"), pulled.stderr
        assert "outside" in pulled.stderr or "hard" in pulled.stderr, pulled.stderr
        assert ok(daemon.docker("images", "-aq", "--no-trunc")).split() == before
        return
    created = ok(daemon.docker("create", ref)).strip()
    try:
        if kind in ("absolute", "symlink"):
            copied = daemon.docker("cp", f"{created}:{outside}/{kind}", str(tmp_path / kind))
            assert copied.returncode == 0, copied.stderr
            assert (tmp_path / kind).read_text() == kind
        if kind == "device":
            # Created as moby creates it, but the root is mounted nodev: unusable.
            # The image has no shell: the host's static busybox is lent to it.
            ran = daemon.docker("run", "--rm", "-v", "/bin/busybox:/busybox:ro", "--entrypoint",
                                "/busybox", ref, "sh", "-c", "echo x > /devnull")  # fmt: skip
            assert ran.returncode != 0
            assert "Permission denied" in ran.stderr + ran.stdout
    finally:
        ok(daemon.docker("rm", created))
    ok(daemon.docker("rmi", ref))
