"""Pull and push with the real docker CLI and SDK against Debian's docker-registry on
loopback: round trips keep image ids and digests; progress, errors, digests, every tag,
indexes, zstd layers, basic auth and login, an interrupted pull.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest
import zstandard

from tests.integration.conftest import new_root, running
from tests.integration.daemon import EssaimDaemon, fails, ok
from tests.integration.registries import (
    DOCKER_REGISTRY,
    CuttingProxy,
    DockerRegistry,
    ThrottledProxy,
)

pytestmark = pytest.mark.skipif(not DOCKER_REGISTRY.exists(), reason="needs docker-registry")

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerRegistry]:
    with DockerRegistry(tmp_path_factory.mktemp("es-distribution-reg") / "root") as reg:
        yield reg


def inspect(daemon: EssaimDaemon, ref: str) -> dict[str, object]:
    return json.loads(ok(daemon.docker("image", "inspect", ref)))[0]  # type: ignore[no-any-return]


def test_push_rmi_pull_keeps_image_id_and_repo_digest(
    daemon: EssaimDaemon, registry: DockerRegistry
) -> None:
    ref = f"{registry.address}/bb:v1"
    ok(daemon.docker("tag", "busybox", ref))
    image_id = inspect(daemon, ref)["Id"]
    pushed = ok(daemon.docker("push", ref))
    assert f"The push refers to repository [{registry.address}/bb]" in pushed
    assert ": Pushed" in pushed
    digest = pushed.split("v1: digest: ")[1].split()[0]
    assert inspect(daemon, ref)["RepoDigests"] == [f"{registry.address}/bb@{digest}"]
    ok(daemon.docker("rmi", ref))
    pulled = ok(daemon.docker("pull", ref))
    assert "v1: Pulling from bb" in pulled
    assert f"Digest: {digest}" in pulled
    assert f"Status: Downloaded newer image for {ref}" in pulled
    after = inspect(daemon, ref)
    assert after["Id"] == image_id
    assert after["RepoDigests"] == [f"{registry.address}/bb@{digest}"]
    again = ok(daemon.docker("pull", ref))
    assert f"Status: Image is up to date for {ref}" in again
    assert ok(daemon.docker("run", "--rm", ref, "echo", "pulled")) == "pulled\n"
    assert ": Layer already exists" in ok(daemon.docker("push", ref))


def test_pull_streams_dockers_progress_messages(
    daemon: EssaimDaemon, registry: DockerRegistry, tmp_path: Path
) -> None:
    """A layer the daemon lacks: every message of moby's sequence, in order."""
    ref = f"{registry.address}/progress:v1"
    ok(
        daemon.docker(
            "run", "--name", "prog", "busybox", "sh", "-c", "head -c 3000000 /dev/urandom > /blob"
        )
    )
    ok(daemon.docker("commit", "prog", ref))
    ok(daemon.docker("rm", "prog"))
    ok(daemon.docker("push", ref))
    pusher_layers = len(inspect(daemon, ref)["RootFS"]["Layers"])  # type: ignore[index]
    assert pusher_layers == 2
    other = EssaimDaemon(new_root())
    for fresh in running(other):
        messages = list(
            fresh.client().api.pull(
                f"{registry.address}/progress", tag="v1", stream=True, decode=True
            )
        )
        statuses = [m.get("status", "") for m in messages]
        assert statuses[0] == "Pulling from progress"
        assert messages[0]["id"] == "v1"
        by_layer: dict[str, list[str]] = {}
        for m in messages:
            if "id" in m and m["id"] != "v1":
                by_layer.setdefault(m["id"], []).append(m["status"])
        assert len(by_layer) == 2
        for steps in by_layer.values():
            assert steps[0] == "Pulling fs layer"
            assert "Downloading" in steps
            tail = [s for s in steps if s != "Downloading"]
            assert tail == ["Pulling fs layer", "Verifying Checksum", "Download complete",
                            "Extracting", "Pull complete"]  # fmt: skip
        downloading = [m for m in messages if m.get("status") == "Downloading"]
        assert all(
            m["progressDetail"]["current"] <= m["progressDetail"]["total"] for m in downloading
        )
        assert downloading[-1]["progress"].startswith("[")
        assert len(downloading) < 40  # rate-limited, not one per chunk
        assert statuses[-2].startswith("Digest: sha256:")
        assert statuses[-1] == f"Status: Downloaded newer image for {ref}"
        assert inspect(fresh, ref)["Id"] == inspect(daemon, ref)["Id"]


def test_pull_by_digest_and_every_tag(daemon: EssaimDaemon, registry: DockerRegistry) -> None:
    repo = f"{registry.address}/tags"
    for tag in ("a", "b"):
        ok(daemon.docker("tag", "busybox", f"{repo}:{tag}"))
        ok(daemon.docker("push", f"{repo}:{tag}"))
    digest = inspect(daemon, f"{repo}:a")["RepoDigests"][0].split("@")[1]  # type: ignore[index]
    ok(daemon.docker("rmi", f"{repo}:a", f"{repo}:b"))
    by_digest = ok(daemon.docker("pull", f"{repo}@{digest}"))
    assert f"Status: Downloaded newer image for {repo}@{digest}" in by_digest
    assert "busybox:latest" in inspect(daemon, f"{repo}@{digest}")["RepoTags"]  # type: ignore[operator]
    everything = ok(daemon.docker("pull", "-a", repo))
    assert "a: Pulling from tags" in everything and "b: Pulling from tags" in everything
    assert f"Status: Downloaded newer image for {repo}" in everything
    tags = set(ok(daemon.docker("images", "--format", "{{.Tag}}", repo)).split())
    assert tags == {"a", "b"}


def test_push_every_tag_and_unknown_tags(daemon: EssaimDaemon, registry: DockerRegistry) -> None:
    repo = f"{registry.address}/alltags"
    for tag in ("x", "y"):
        ok(daemon.docker("tag", "busybox", f"{repo}:{tag}"))
    pushed = ok(daemon.docker("push", "-a", repo))
    assert "x: digest: sha256:" in pushed and "y: digest: sha256:" in pushed
    listed = httpx.get(f"{registry.url}/v2/alltags/tags/list").json()
    assert sorted(listed["tags"]) == ["x", "y"]
    missing = daemon.docker("push", f"{registry.address}/nothere:v1")
    fails(missing, f"An image does not exist locally with the tag: {registry.address}/nothere")
    assert f"The push refers to repository [{registry.address}/nothere]" in missing.stdout


def test_pull_errors_use_dockers_words(daemon: EssaimDaemon, registry: DockerRegistry) -> None:
    fails(
        daemon.docker("pull", f"{registry.address}/bb:nope"),
        f"Error response from daemon: manifest for {registry.address}/bb:nope not found: "
        "manifest unknown: manifest unknown",
    )
    api = daemon.client().api
    with pytest.raises(docker.errors.NotFound):
        api.pull(f"{registry.address}/bb", tag="nope")
    fails(
        daemon.docker("run", "--rm", f"{registry.address}/nosuch:v1", "true"),
        f"Unable to find image '{registry.address}/nosuch:v1' locally",
        code=125,
    )
    fails(
        daemon.docker("pull", "127.0.0.1:1/bb:v1"),
        'Get "http://127.0.0.1:1/v2/": ',
        "connection refused",
    )


def _push_blob(registry: DockerRegistry, repo: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = httpx.post(f"{registry.url}/v2/{repo}/blobs/uploads/")
    assert start.status_code == 202
    location = httpx.URL(registry.url).join(start.headers["location"])
    done = httpx.put(location.copy_merge_params({"digest": digest}), content=data)
    assert done.status_code == 201, done.text
    return digest


def _put_manifest(registry: DockerRegistry, repo: str, ref: str, doc: dict[str, object]) -> str:
    body = json.dumps(doc).encode()
    put = httpx.put(
        f"{registry.url}/v2/{repo}/manifests/{ref}",
        content=body, headers={"Content-Type": str(doc["mediaType"])},
    )  # fmt: skip
    assert put.status_code == 201, put.text
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _push_image(
    registry: DockerRegistry, repo: str, tag: str, config: bytes, layer: bytes, layer_type: str
) -> tuple[str, str]:
    """A one-layer OCI image pushed blob by blob, then its manifest under `tag`: the
    manifest's digest and the config's."""
    config_digest = _push_blob(registry, repo, config)
    layer_digest = _push_blob(registry, repo, layer)
    manifest = _put_manifest(registry, repo, tag, {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": layer_type, "digest": layer_digest, "size": len(layer)}],
    })  # fmt: skip
    return manifest, config_digest


def _busybox_blobs(daemon: EssaimDaemon) -> tuple[bytes, bytes]:
    """The busybox image's config and uncompressed layer, read from its content store."""
    image = inspect(daemon, "busybox")
    blobs = daemon.data_root / "content" / "blobs" / "sha256"
    config = (blobs / str(image["Id"]).removeprefix("sha256:")).read_bytes()
    diff_id = image["RootFS"]["Layers"][0]  # type: ignore[index]
    return config, (blobs / diff_id.removeprefix("sha256:")).read_bytes()


def test_index_selects_the_hosts_platform(daemon: EssaimDaemon, registry: DockerRegistry) -> None:
    ok(daemon.docker("tag", "busybox", f"{registry.address}/multi:amd"))
    ok(daemon.docker("push", f"{registry.address}/multi:amd"))
    host = inspect(daemon, f"{registry.address}/multi:amd")["RepoDigests"][0].split("@")[1]  # type: ignore[index]
    config, layer = _busybox_blobs(daemon)
    other_config = json.loads(config)
    other_config["architecture"] = "arm64"
    other_bytes = json.dumps(other_config).encode()
    arm, config_digest = _push_image(registry, "multi", "arm", other_bytes, layer, OCI_LAYER)
    accept = {"Accept": f"{OCI_MANIFEST}, {DOCKER_MANIFEST}"}
    sizes = {
        d: len(httpx.get(f"{registry.url}/v2/multi/manifests/{d}", headers=accept).content)
        for d in (host, arm)
    }
    index = _put_manifest(registry, "multi", "both", {
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": arm, "size": sizes[arm],
             "platform": {"architecture": "arm64", "os": "linux"}},
            {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
             "digest": host, "size": sizes[host],
             "platform": {"architecture": "amd64", "os": "linux"}},
        ],
    })  # fmt: skip
    ok(daemon.docker("pull", f"{registry.address}/multi:both"))
    pulled = inspect(daemon, f"{registry.address}/multi:both")
    assert pulled["Id"] == inspect(daemon, "busybox")["Id"]
    assert f"{registry.address}/multi@{index}" in pulled["RepoDigests"]  # type: ignore[operator]
    ok(daemon.docker("pull", "--platform", "linux/arm64", f"{registry.address}/multi:both"))
    arm_image = inspect(daemon, f"{registry.address}/multi:both")
    assert arm_image["Architecture"] == "arm64"
    assert arm_image["Id"] == config_digest
    fails(
        daemon.docker("pull", "--platform", "linux/s390x", f"{registry.address}/multi:both"),
        "no matching manifest for linux/s390x in the manifest list entries",
    )
    described = daemon.client().api.inspect_distribution(f"{registry.address}/multi:both")
    assert described["Descriptor"]["digest"] == index
    assert {p["architecture"] for p in described["Platforms"]} == {"amd64", "arm64"}


def test_zstd_layer_is_pulled_and_runs(daemon: EssaimDaemon, registry: DockerRegistry) -> None:
    config, layer = _busybox_blobs(daemon)
    packed = zstandard.ZstdCompressor().compress(layer)
    _, config_digest = _push_image(registry, "zstd", "v1", config, packed, OCI_LAYER + "+zstd")
    other = EssaimDaemon(new_root())
    for fresh in running(other):
        ok(fresh.docker("rmi", "busybox"))
        ok(fresh.docker("pull", f"{registry.address}/zstd:v1"))
        assert ok(fresh.docker("run", "--rm", f"{registry.address}/zstd:v1", "echo", "z")) == "z\n"
        assert inspect(fresh, f"{registry.address}/zstd:v1")["Id"] == config_digest


def _push_random(daemon: EssaimDaemon, ref: str, size: int) -> str:
    """Commit busybox plus `/blob`, `size` random bytes (one layer that gzip cannot
    shrink), as `ref` and push it; returns `ref`."""
    ok(daemon.docker("run", "--name", "random-src", "busybox", "sh", "-c",
                     f"head -c {size} /dev/urandom > /blob"))  # fmt: skip
    ok(daemon.docker("commit", "random-src", ref))
    ok(daemon.docker("rm", "random-src"))
    ok(daemon.docker("push", ref))
    return ref


def test_interrupted_pull_leaves_no_image_and_completes_after_restart(
    daemon: EssaimDaemon, registry: DockerRegistry
) -> None:
    ref = _push_random(daemon, f"{registry.address}/big:v1", 24_000_000)
    proxy = ThrottledProxy(("127.0.0.1", registry.port), rate=8_000_000)
    # Retries fail fast once the registry is gone: a 0.01 s countdown second.
    other = EssaimDaemon(new_root(), extra=["--download-retry-second", "0.01"])
    try:
        for fresh in running(other):
            through = f"{proxy.address}/big"
            api = fresh.client().api
            stream = api.pull(through, tag="v1", stream=True, decode=True)
            seen = 0
            failure = ""
            for message in stream:
                if message.get("status") == "Downloading":
                    seen = max(seen, message["progressDetail"]["current"])
                    if seen > 2_000_000 and registry.proc is not None:
                        registry.kill()
                if "error" in message:
                    failure = message["errorDetail"]["message"]
            assert failure, "the pull went through: the registry was not stopped in time"
            assert ok(fresh.docker("images", "-q", through)) == ""
            ingest = fresh.data_root / "content" / "ingest"
            assert list(ingest.iterdir()) == []
            registry.start()
            pulled = ok(fresh.docker("pull", f"{through}:v1"))
            assert "Already exists" in pulled  # the base layer, complete before the stop
            assert inspect(fresh, f"{through}:v1")["Id"] == inspect(daemon, ref)["Id"]
    finally:
        proxy.close()
        if registry.proc is None:
            registry.start()


def test_a_layer_download_cut_midway_is_retried_and_resumed(
    daemon: EssaimDaemon, registry: DockerRegistry
) -> None:
    ref = _push_random(daemon, f"{registry.address}/cut:v1", 6_000_000)
    proxy = CuttingProxy(("127.0.0.1", registry.port), after=3_000_000)
    other = EssaimDaemon(new_root(), extra=["--download-retry-second", "0.01"])
    try:
        for fresh in running(other):
            ok(fresh.docker("rmi", "busybox"))
            through = f"{proxy.address}/cut:v1"
            pulled = ok(fresh.docker("pull", through))
            assert proxy.cut == 1, "the proxy never cut a download"
            assert "Retrying in 5 seconds" in pulled
            assert f"Status: Downloaded newer image for {through}" in pulled
            assert inspect(fresh, through)["Id"] == inspect(daemon, ref)["Id"]
            # The retry asked for the rest only, and the registry served it.
            sent = b"".join(proxy.requests).lower()
            assert b"range: bytes=" in sent
            ingest = fresh.data_root / "content" / "ingest"
            assert list(ingest.iterdir()) == []
            assert ok(fresh.docker("run", "--rm", through, "wc", "-c", "/blob")).split()[0] == (
                "6000000"
            )
    finally:
        proxy.close()


def test_local_commit_push_is_deterministic(daemon: EssaimDaemon, registry: DockerRegistry) -> None:
    ref = f"{registry.address}/committed:v1"
    ok(daemon.docker("run", "--name", "c1", "busybox", "sh", "-c", "echo data > /f"))
    ok(daemon.docker("commit", "c1", ref))
    ok(daemon.docker("rm", "c1"))
    first = ok(daemon.docker("push", ref)).split("v1: digest: ")[1].split()[0]
    second_ref = f"{registry.address}/committed2:v1"
    ok(daemon.docker("tag", ref, second_ref))
    pushed = ok(daemon.docker("push", second_ref))
    assert pushed.split("v1: digest: ")[1].split()[0] == first
    assert "Mounted from committed" in pushed
    manifest = httpx.get(
        f"{registry.url}/v2/committed/manifests/v1",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    doc = manifest.json()
    assert doc["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert {layer["mediaType"] for layer in doc["layers"]} == {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    }


def test_info_shows_the_registry_config(daemon: EssaimDaemon) -> None:
    info = daemon.client().info()["RegistryConfig"]
    assert info["InsecureRegistryCIDRs"] == ["::1/128", "127.0.0.0/8"]
    assert info["IndexConfigs"]["docker.io"]["Secure"] is True


# -- authentication


@pytest.fixture(scope="module")
def locked_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerRegistry]:
    root = tmp_path_factory.mktemp("es-distribution-auth") / "root"
    with DockerRegistry(root, users={"alice": "s3cret"}) as reg:
        yield reg


def test_basic_auth_login_push_pull(daemon: EssaimDaemon, locked_registry: DockerRegistry) -> None:
    ref = f"{locked_registry.address}/private:v1"
    ok(daemon.docker("tag", "busybox", ref))
    fails(daemon.docker("push", ref), "no basic auth credentials")
    wrong = daemon.docker("login", "-u", "alice", "--password-stdin", locked_registry.address,
                          input="wrong\n")  # fmt: skip
    fails(
        wrong,
        f"login attempt to http://{locked_registry.address}/v2/ failed with status: "
        "401 Unauthorized",
    )
    login = daemon.docker("login", "-u", "alice", "--password-stdin", locked_registry.address,
                          input="s3cret\n")  # fmt: skip
    assert "Login Succeeded" in login.stdout, login.stderr
    ok(daemon.docker("push", ref))
    ok(daemon.docker("rmi", ref))
    ok(daemon.docker("pull", ref))
    api = daemon.client().api
    with pytest.raises(docker.errors.APIError) as refused:
        api.login("alice", "bad", registry=locked_registry.address, reauth=True)
    assert refused.value.status_code == 401
    assert (
        api.login("alice", "s3cret", registry=locked_registry.address, reauth=True)["Status"]
        == "Login Succeeded"
    )
    ok(daemon.docker("logout", locked_registry.address))
    shutil.rmtree(daemon.root / "docker-config", ignore_errors=True)
