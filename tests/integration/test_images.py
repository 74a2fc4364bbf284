"""The image endpoints through the real docker CLI and SDK: list and its filters,
inspect, history, tag, rmi (with Docker's conflicts and its files gone), import (from a
file, stdin, gzip, with changes), hostile archives, pull errors and image events.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import json
import os
import platform
import re
import secrets
import shutil
import sqlite3
import subprocess
import tarfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import pytest

from essaim.image.busybox import build_busybox_layer
from essaim.image.service import ImageService, ListQuery
from essaim.model.image import ImageConfig
from essaim.store import SqliteStore
from essaim.store.events import EventBus
from tests.integration.daemon import EssaimDaemon, Result
from tests.integration.registries import DockerRegistry

HEX64 = re.compile(r"sha256:[0-9a-f]{64}")
ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le"}
# -- helpers


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def ok(result: Result) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def image_id(daemon: EssaimDaemon, ref: str) -> str:
    return ok(daemon.docker("image", "inspect", "-f", "{{.Id}}", ref)).strip()


def inspect(daemon: EssaimDaemon, ref: str) -> dict[str, Any]:
    data: list[dict[str, Any]] = json.loads(ok(daemon.docker("image", "inspect", ref)))
    return data[0]


def all_ids(daemon: EssaimDaemon) -> set[str]:
    return set(ok(daemon.docker("images", "-a", "-q", "--no-trunc")).split())


def docker_bytes(daemon: EssaimDaemon, *args: str, data: bytes) -> Result:
    """`docker` with binary stdin (an archive)."""
    done = subprocess.run(
        ["docker", *args], env=daemon.env(), input=data, capture_output=True, timeout=60
    )
    return Result(done.returncode, done.stdout.decode(), done.stderr.decode())


def import_tar(daemon: EssaimDaemon, path: Path, ref: str, *options: str) -> str:
    out = ok(daemon.docker("import", *options, str(path), ref))
    assert HEX64.fullmatch(out.strip()), out
    return out.strip()


@dataclass
class DataRoot:
    """What an image leaves on disk: blobs, snapshots, half-done work."""

    blobs: set[str]
    snapshots: set[str]
    ingest: list[str]
    staging: list[str]

    @classmethod
    def of(cls, daemon: EssaimDaemon) -> DataRoot:
        snapshots = daemon.data_root / "snapshots"
        return cls(
            blobs={p.name for p in (daemon.data_root / "content/blobs/sha256").iterdir()},
            snapshots={p.name for p in snapshots.iterdir() if len(p.name) == 64},
            ingest=[p.name for p in (daemon.data_root / "content/ingest").iterdir()],
            staging=[p.name for p in snapshots.glob(".tmp-*")],
        )


def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", link: str = "") -> Any:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    info.mtime = 1_700_000_000
    return info, (io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def write_tar(path: Path, members: list[Any]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, data)
    return path


def unique_layer(tmp_path: Path) -> Path:
    """A tiny archive whose layer no other image shares."""
    token = secrets.token_hex(16).encode()
    return write_tar(
        tmp_path / f"uniq-{token.decode()[:8]}.tar",
        [member("data", tarfile.DIRTYPE), member("data/token", data=token)],
    )


def unique_busybox_layer(tmp_path: Path, busybox_tar: Path) -> Path:
    """busybox plus a file of its own: a layer that runs and that no other image shares."""
    token = secrets.token_hex(16).encode()
    path = tmp_path / f"busybox-{token.decode()[:8]}.tar"
    shutil.copyfile(busybox_tar, path)
    with tarfile.open(path, "a", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(*member("token", data=token))
    return path


@pytest.fixture(scope="module")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("layers") / "busybox.tar"
    build_busybox_layer(path)
    return path


@pytest.fixture
def cleanup(daemon: EssaimDaemon) -> Iterator[list[str]]:
    """Image refs and container ids (prefixed `c:`) to remove after the test."""
    doomed: list[str] = []
    yield doomed
    containers = [d[2:] for d in doomed if d.startswith("c:")]
    if containers:
        daemon.docker("rm", "-f", *containers)
    for ref in reversed([d for d in doomed if not d.startswith("c:")]):
        daemon.docker("rmi", "-f", ref)


# -- docker images


def test_images_shows_busybox_in_dockers_columns(daemon: EssaimDaemon) -> None:
    lines = ok(daemon.docker("images", "busybox")).splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert len(lines) == 2
    repo, tag, short, *created, size = lines[1].split()
    full = image_id(daemon, "busybox")
    assert (repo, tag, short) == ("busybox", "latest", full[7:19])
    assert created[-1] == "ago"
    assert re.fullmatch(r"\d+(\.\d+)?MB", size), size
    assert ok(daemon.docker("images", "-q", "busybox")) == full[7:19] + "\n"
    assert ok(daemon.docker("images", "-q", "--no-trunc", "busybox")) == full + "\n"
    digests = ok(daemon.docker("images", "--digests", "busybox")).splitlines()
    assert digests[0].split()[:3] == ["REPOSITORY", "TAG", "DIGEST"]
    assert digests[1].split()[:4] == ["busybox", "latest", "<none>", full[7:19]]


def test_images_wire_fields_of_a_summary(daemon: EssaimDaemon) -> None:
    (summary,) = daemon.client().api.images(name="busybox")
    assert set(summary) == {
        "Id", "ParentId", "RepoTags", "RepoDigests", "Created", "Size", "SharedSize",
        "Labels", "Containers",
    }  # fmt: skip
    assert summary["RepoTags"] == ["busybox:latest"]
    assert summary["RepoDigests"] == []
    assert summary["Created"] == 1704067200  # busybox's fixed creation time
    assert summary["SharedSize"] == -1 and summary["Containers"] == -1
    assert summary["Size"] == inspect(daemon, "busybox")["Size"] > 0


def test_reference_filter_shows_only_the_matching_names(
    daemon: EssaimDaemon, cleanup: list[str]
) -> None:
    name = unique("reffilter")
    local = f"localhost:5000/{name}/bb:v1"
    for ref in (f"{name}:1", local):
        ok(daemon.docker("tag", "busybox", ref))
        cleanup.append(ref)
    # One image, three names: Docker lists only the names the filter matches.
    rows = ok(daemon.docker("images", "--format", "{{.Repository}}:{{.Tag}}", name)).split()
    assert rows == [f"{name}:1"]
    (summary,) = daemon.client().api.images(name=name)
    assert summary["RepoTags"] == [f"{name}:1"]
    # path.Match: `*` does not cross a `/`, so a registry name needs its own pattern.
    star = ok(daemon.docker("images", "--format", "{{.Repository}}:{{.Tag}}", "*")).split()
    assert f"{name}:1" in star and "busybox:latest" in star and local not in star
    nested = f"localhost:5000/{name}/*"
    assert ok(daemon.docker("images", "--format", "{{.Repository}}:{{.Tag}}", nested)).split() == [
        local
    ]
    assert ok(daemon.docker("images", "-q", "nosuchrepo")) == ""
    bad = daemon.docker("images", "--filter", "reference=[")
    assert bad.returncode == 1
    assert "syntax error in pattern" in bad.stderr


def test_dangling_image_listed_without_a_name_and_by_filter(
    daemon: EssaimDaemon, tmp_path: Path, cleanup: list[str]
) -> None:
    ref = unique("dangling") + ":1"
    old = import_tar(daemon, unique_layer(tmp_path), ref)
    cleanup.append(old)
    # Moving the only name away leaves the old image dangling.
    new = import_tar(daemon, unique_layer(tmp_path), ref)
    cleanup.append(new)
    rows = ok(daemon.docker("images", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"))
    assert f"{old} <none>:<none>" in rows.splitlines()
    dangling = ok(daemon.docker("images", "-q", "--no-trunc", "-f", "dangling=true")).split()
    assert old in dangling and new not in dangling
    named = ok(daemon.docker("images", "-q", "--no-trunc", "-f", "dangling=false")).split()
    assert new in named and old not in named
    assert old in all_ids(daemon)
    bad = daemon.docker("images", "-f", "dangling=maybe")
    assert bad.returncode == 1
    assert bad.stderr == "Error response from daemon: invalid filter 'dangling=maybe'\n"


def test_label_filter(daemon: EssaimDaemon, tmp_path: Path, cleanup: list[str]) -> None:
    ref = unique("labelled") + ":1"
    value = secrets.token_hex(4)
    new = import_tar(daemon, unique_layer(tmp_path), ref, "--change", f"LABEL essaim.test={value}")
    cleanup.append(ref)

    def listed(*filters: str) -> list[str]:
        args = [a for f in filters for a in ("--filter", f)]
        return ok(daemon.docker("images", "-q", "--no-trunc", *args)).split()

    assert listed(f"label=essaim.test={value}") == [new]
    assert listed(f"label=essaim.test={value}", "label=other") == []
    assert new in listed("label=essaim.test")
    assert listed("label=essaim.test=nope") == []
    assert inspect(daemon, ref)["Config"]["Labels"] == {"essaim.test": value}


def test_before_since_and_until_filters_order_by_creation(
    daemon: EssaimDaemon, tmp_path: Path, cleanup: list[str]
) -> None:
    first, second = unique("older") + ":1", unique("newer") + ":1"
    first_id = import_tar(daemon, unique_layer(tmp_path), first)
    second_id = import_tar(daemon, unique_layer(tmp_path), second)
    cleanup += [first, second]
    busybox = image_id(daemon, "busybox")

    def listed(flt: str) -> list[str]:
        return ok(daemon.docker("images", "-q", "--no-trunc", "--filter", flt)).split()

    # Both come within the same second: only nanoseconds tell them apart.
    since = listed(f"since={first}")
    assert second_id in since and first_id not in since and busybox not in since
    before = listed(f"before={second}")
    assert first_id in before and busybox in before and second_id not in before
    until = listed("until=2025-01-01T00:00:00Z")
    assert busybox in until and first_id not in until and second_id not in until
    assert first_id not in listed("until=1h") and busybox in listed("until=1h")
    missing = daemon.docker("images", "--filter", "since=nosuchimage")
    assert missing.stderr == "Error response from daemon: No such image: nosuchimage:latest\n"
    bad = daemon.docker("images", "--filter", "until=soon")
    assert 'failed to parse value as time or duration: "soon"' in bad.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="snapshots keep owners and whiteouts: needs root")
def test_listing_rules_for_images_built_on_others(tmp_path: Path) -> None:
    """moby's `-a` and dangling rules with parent images, straight on the service (no
    endpoint makes a child image yet): a named parent stays listed, an unnamed one
    only with `-a`, and never counts as dangling."""

    async def scenario() -> None:
        executor = ThreadPoolExecutor(max_workers=2)
        store = SqliteStore(tmp_path / "state.db")
        service = ImageService(tmp_path / "data", store, EventBus(), executor)
        try:
            config = ImageConfig(cmd=["sh"])
            parent = await service.add_image([unique_layer(tmp_path)], config, tags=["base:1"])
            child = await service.add_image(
                [unique_layer(tmp_path)], config, base=parent, parent=parent.id, tags=["app:1"]
            )
            assert len(child.diff_ids) == 2

            async def listed(**query: Any) -> list[tuple[str, list[str]]]:
                rows = await service.list_filtered(ListQuery(**query))
                return [(row.image.id, row.repo_tags) for row in rows]

            assert sorted(await listed()) == sorted(
                [(parent.id, ["docker.io/library/base:1"]), (child.id, ["docker.io/library/app:1"])]
            )
            await service.tag(child.id, "base", "1")  # the parent loses its only name
            assert [row[0] for row in await listed()] == [child.id]
            assert parent.id in [row[0] for row in await listed(show_all=True)]
            assert await listed(dangling=True) == []
            assert await listed(dangling=True, show_all=True) == []

            def no_users(_: str) -> list[tuple[str, bool]]:
                return []

            # Deleting the child prunes the unnamed parent with it, as `docker rmi` does.
            records = await service.remove(child.id, force=True, prune=True, in_use_by=no_users)
            deleted = [r["Deleted"] for r in records if "Deleted" in r]
            assert child.id in deleted and parent.id in deleted
            assert await service.list() == []
            data = tmp_path / "data"
            assert list((data / "content/blobs/sha256").iterdir()) == []
            assert [p.name for p in (data / "snapshots").iterdir()] == ["empty"]
        finally:
            await store.close()
            executor.shutdown()

    asyncio.run(scenario())


# -- docker image inspect / history


def test_inspect_busybox(daemon: EssaimDaemon) -> None:
    image = inspect(daemon, "busybox")
    assert HEX64.fullmatch(image["Id"])
    assert image["Id"] == ok(daemon.docker("images", "-q", "--no-trunc", "busybox")).strip()
    assert "busybox:latest" in image["RepoTags"]
    assert image["Config"]["Cmd"] == ["sh"]
    assert any(env.startswith("PATH=/usr/local/sbin:") for env in image["Config"]["Env"])
    assert image["Os"] == "linux"
    assert image["Architecture"] == ARCHITECTURES.get(platform.machine(), platform.machine())
    layers = image["RootFS"]["Layers"]
    assert image["RootFS"]["Type"] == "layers" and len(layers) == 1
    assert HEX64.fullmatch(layers[0])
    assert image["GraphDriver"]["Name"] == "overlay2"
    upper = Path(image["GraphDriver"]["Data"]["UpperDir"])
    assert upper.is_relative_to(daemon.data_root) and (upper / "bin/busybox").is_file()
    # The same image by id, id prefix and normalised name.
    for ref in (image["Id"], image["Id"][7:], image["Id"][7:15], "docker.io/library/busybox"):
        assert image_id(daemon, ref) == image["Id"]


def test_inspect_unknown_and_invalid_references(daemon: EssaimDaemon) -> None:
    missing = daemon.docker("image", "inspect", "nosuchimage")
    assert missing.returncode == 1
    assert missing.stderr == "Error response from daemon: No such image: nosuchimage:latest\n"
    bad = daemon.docker("image", "inspect", "Bad")
    assert bad.returncode == 1
    assert "invalid reference format: repository name (library/Bad) must be lowercase" in (
        bad.stderr
    )


def test_tag_sets_last_tag_time(daemon: EssaimDaemon, cleanup: list[str]) -> None:
    ref = unique("lasttag") + ":1"
    before = datetime.now(UTC).replace(microsecond=0)
    ok(daemon.docker("tag", "busybox", ref))
    cleanup.append(ref)
    stamp = inspect(daemon, ref)["Metadata"]["LastTagTime"]
    tagged = datetime.fromisoformat(re.sub(r"\.\d+", "", stamp).replace("Z", "+00:00"))
    assert before <= tagged <= datetime.now(UTC)


def test_history_of_busybox_and_of_an_import(
    daemon: EssaimDaemon, tmp_path: Path, cleanup: list[str]
) -> None:
    lines = ok(daemon.docker("history", "busybox")).splitlines()
    assert lines[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    assert len(lines) == 2
    assert lines[1].split()[0] == image_id(daemon, "busybox")[7:19]
    full = ok(daemon.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", "busybox"))
    assert full.strip().endswith('CMD ["sh"]')
    ref = unique("history") + ":1"
    import_tar(daemon, unique_layer(tmp_path), ref, "-m", "imported for history")
    cleanup.append(ref)
    (row,) = daemon.client().api.history(ref)
    assert row["Comment"] == "imported for history"
    assert row["Id"] == image_id(daemon, ref)
    assert row["Tags"] == [ref]
    assert row["Size"] > 0


# -- docker tag


def test_tag_familiar_and_registry_names(daemon: EssaimDaemon, cleanup: list[str]) -> None:
    name = unique("myimg")
    local = f"localhost:5000/{name}:v1"
    ok(daemon.docker("tag", "busybox", name))
    cleanup.append(name)
    ok(daemon.docker("tag", "busybox", local))
    cleanup.append(local)
    tags = inspect(daemon, "busybox")["RepoTags"]
    assert f"{name}:latest" in tags and local in tags
    assert image_id(daemon, local) == image_id(daemon, f"docker.io/library/{name}:latest")
    rows = ok(daemon.docker("images", "--format", "{{.Repository}} {{.Tag}}", local)).splitlines()
    assert rows == [f"localhost:5000/{name} v1"]


def test_tag_invalid_name_is_refused(daemon: EssaimDaemon) -> None:
    result = daemon.docker("tag", "busybox", "Bad:Name")
    assert result.returncode == 1
    assert "invalid reference format" in result.stderr
    # The CLI checks first; the daemon refuses the same on its own.
    with pytest.raises(docker.errors.APIError) as err:
        daemon.client().api.tag("busybox", "Bad")
    assert err.value.status_code == 400
    assert err.value.explanation == (
        "invalid reference format: repository name (library/Bad) must be lowercase"
    )


def test_tag_unknown_image_is_404(daemon: EssaimDaemon) -> None:
    result = daemon.docker("tag", "nosuchimage", unique("x"))
    assert result.returncode == 1
    assert result.stderr == "Error response from daemon: No such image: nosuchimage:latest\n"
    with pytest.raises(docker.errors.ImageNotFound):
        daemon.client().api.tag("nosuchimage", "x")


# -- docker rmi


def test_rmi_only_untags_while_other_names_remain(daemon: EssaimDaemon, cleanup: list[str]) -> None:
    ref = unique("second-name") + ":1"
    ok(daemon.docker("tag", "busybox", ref))
    cleanup.append(ref)
    assert ok(daemon.docker("rmi", ref)) == f"Untagged: {ref}\n"
    assert ref not in inspect(daemon, "busybox")["RepoTags"]
    assert ok(daemon.docker("run", "--rm", "busybox", "true")) == ""


def test_rmi_deletes_image_and_its_own_layer_from_disk(
    daemon: EssaimDaemon, tmp_path: Path, cleanup: list[str]
) -> None:
    before = DataRoot.of(daemon)
    ref = unique("own-layer") + ":1"
    new = import_tar(daemon, unique_layer(tmp_path), ref)
    cleanup.append(ref)
    (layer,) = inspect(daemon, ref)["RootFS"]["Layers"]
    during = DataRoot.of(daemon)
    assert during.snapshots - before.snapshots == {layer[7:]}
    # The layer, the config (the id) and the manifest.
    assert len(during.blobs - before.blobs) == 3 and {layer[7:], new[7:]} <= during.blobs
    out = ok(daemon.docker("rmi", ref))
    # A single-layer image: its only chain id is its layer's diff id.
    assert out == f"Untagged: {ref}\nDeleted: {new}\nDeleted: {layer}\n"
    after = DataRoot.of(daemon)
    assert after == before
    assert new not in all_ids(daemon)


def test_rmi_keeps_a_layer_other_images_share(
    daemon: EssaimDaemon, busybox_tar: Path, cleanup: list[str]
) -> None:
    before = DataRoot.of(daemon)
    ref = unique("shared") + ":1"
    new = import_tar(daemon, busybox_tar, ref)
    cleanup.append(ref)
    assert (
        inspect(daemon, ref)["RootFS"]["Layers"] == inspect(daemon, "busybox")["RootFS"]["Layers"]
    )
    assert ok(daemon.docker("rmi", ref)) == f"Untagged: {ref}\nDeleted: {new}\n"
    assert DataRoot.of(daemon) == before
    assert ok(daemon.docker("run", "--rm", "busybox", "echo", "still")) == "still\n"


def test_rmi_conflicts_with_containers_using_the_image(
    daemon: EssaimDaemon, busybox_tar: Path, cleanup: list[str]
) -> None:
    ref = unique("inuse") + ":1"
    new = import_tar(daemon, busybox_tar, ref)
    cleanup.append(new)
    stopped = ok(daemon.docker("create", ref, "true")).strip()
    cleanup.append("c:" + stopped)
    result = daemon.docker("rmi", ref)
    assert result.returncode == 1
    assert result.stderr == (
        f'Error response from daemon: conflict: unable to remove repository reference "{ref}" '
        f"(must force) - container {stopped[:12]} is using its referenced image {new[7:19]}\n"
    )
    result = daemon.docker("rmi", new[7:19])
    assert result.returncode == 1
    assert result.stderr == (
        f"Error response from daemon: conflict: unable to delete {new[7:19]} (must be forced) "
        f"- image is being used by stopped container {stopped[:12]}\n"
    )
    running = ok(daemon.docker("run", "-d", ref, "sleep", "100")).strip()
    cleanup.append("c:" + running)
    result = daemon.docker("rmi", "-f", new[7:19])
    assert result.returncode == 1
    assert result.stderr == (
        f"Error response from daemon: conflict: unable to delete {new[7:19]} (cannot be forced) "
        f"- image is being used by running container {running[:12]}\n"
    )
    # Forcing a name off an image in use only untags it.
    assert ok(daemon.docker("rmi", "-f", ref)) == f"Untagged: {ref}\n"
    assert new in all_ids(daemon)
    ok(daemon.docker("rm", "-f", running, stopped))
    assert ok(daemon.docker("rmi", new[7:19])) == f"Deleted: {new}\n"


def test_rmi_force_deletes_an_image_a_stopped_container_uses(
    daemon: EssaimDaemon, busybox_tar: Path, cleanup: list[str]
) -> None:
    ref = unique("forced") + ":1"
    new = import_tar(daemon, busybox_tar, ref)
    cleanup.append(new)
    stopped = ok(daemon.docker("create", ref, "true")).strip()
    cleanup.append("c:" + stopped)
    assert ok(daemon.docker("rmi", "-f", ref)) == f"Untagged: {ref}\nDeleted: {new}\n"
    assert new not in all_ids(daemon)


def test_container_of_a_force_deleted_image_still_starts(
    daemon: EssaimDaemon, busybox_tar: Path, cleanup: list[str]
) -> None:
    ref = unique("forced-start") + ":1"
    new = import_tar(daemon, busybox_tar, ref)
    cleanup.append(new)
    stopped = ok(daemon.docker("create", ref, "echo", "alive")).strip()
    cleanup.append("c:" + stopped)
    ok(daemon.docker("rmi", "-f", ref))
    # Docker keeps the layers for the container, which runs as before.
    assert ok(daemon.docker("start", "-a", stopped)) == "alive\n"


def test_layers_of_a_force_deleted_image_go_with_its_last_container(
    daemon: EssaimDaemon, tmp_path: Path, cleanup: list[str]
) -> None:
    before = DataRoot.of(daemon)
    ref = unique("forced-files") + ":1"
    new = import_tar(daemon, unique_layer(tmp_path), ref)
    cleanup.append(new)
    stopped = ok(daemon.docker("create", ref, "true")).strip()
    ok(daemon.docker("rmi", "-f", ref))
    ok(daemon.docker("rm", stopped))
    assert DataRoot.of(daemon).snapshots == before.snapshots


def test_layers_of_a_force_deleted_image_outlive_an_image_sharing_them(
    daemon: EssaimDaemon, busybox_tar: Path, tmp_path: Path, cleanup: list[str]
) -> None:
    before = DataRoot.of(daemon)
    layer = unique_busybox_layer(tmp_path, busybox_tar)
    first, second = unique("shared-a") + ":1", unique("shared-b") + ":1"
    first_id = import_tar(daemon, layer, first)
    second_id = import_tar(daemon, layer, second, "-m", "same layer, another image")
    cleanup += [first_id, second_id]
    stopped = ok(daemon.docker("create", first, "echo", "alive")).strip()
    cleanup.append("c:" + stopped)
    ok(daemon.docker("rmi", "-f", first))
    # The last image stacking the layer goes; the container still holds it.
    assert ok(daemon.docker("rmi", second)) == f"Untagged: {second}\nDeleted: {second_id}\n"
    assert ok(daemon.docker("start", "-a", stopped)) == "alive\n"
    ok(daemon.docker("rm", stopped))
    after = DataRoot.of(daemon)
    assert (after.snapshots, after.blobs) == (before.snapshots, before.blobs)


def test_lost_snapshot_of_a_force_deleted_image_is_unpacked_from_its_blob(
    daemon: EssaimDaemon, busybox_tar: Path, tmp_path: Path, cleanup: list[str]
) -> None:
    before = DataRoot.of(daemon)
    ref = unique("lost-snapshot") + ":1"
    new = import_tar(daemon, unique_busybox_layer(tmp_path, busybox_tar), ref)
    cleanup.append(new)
    first = ok(daemon.docker("create", ref, "echo", "alive")).strip()
    second = ok(daemon.docker("create", ref, "echo", "alive")).strip()
    cleanup += ["c:" + first, "c:" + second]
    ok(daemon.docker("rmi", "-f", ref))
    # One layer: its chain id is its diff id, the digest of its (uncompressed) blob.
    (chain,) = DataRoot.of(daemon).snapshots - before.snapshots
    snapshot = daemon.data_root / "snapshots" / chain
    subprocess.run(["rm", "-rf", str(snapshot)], check=True)
    assert ok(daemon.docker("start", "-a", first)) == "alive\n"
    assert snapshot.is_dir()
    ok(daemon.docker("rm", first))
    # Neither the snapshot nor its blob: a clear error, and nothing left behind.
    subprocess.run(["rm", "-rf", str(snapshot)], check=True)
    (daemon.data_root / "content/blobs/sha256" / chain).unlink()
    result = daemon.docker("start", second)
    assert result.returncode == 1
    assert (
        f"layer sha256:{chain} is missing: no snapshot, and no blob to unpack it from"
        in result.stderr
    )
    ok(daemon.docker("rm", second))
    after = DataRoot.of(daemon)
    assert (after.snapshots, after.blobs) == (before.snapshots, before.blobs)


def test_container_of_a_force_deleted_image_starts_after_a_daemon_restart(
    own_daemon: EssaimDaemon, busybox_tar: Path, tmp_path: Path
) -> None:
    daemon = own_daemon
    before = DataRoot.of(daemon)
    ref = unique("restarted") + ":1"
    import_tar(daemon, unique_busybox_layer(tmp_path, busybox_tar), ref)
    stopped = ok(daemon.docker("create", ref, "echo", "alive")).strip()
    ok(daemon.docker("rmi", "-f", ref))
    daemon.stop()
    daemon.start()
    # The daemon knows again, from the record alone, what the container stacks...
    assert ok(daemon.docker("start", "-a", stopped)) == "alive\n"
    # ...and that its layers go with it.
    ok(daemon.docker("rm", stopped))
    after = DataRoot.of(daemon)
    assert (after.snapshots, after.blobs) == (before.snapshots, before.blobs)


def test_container_recorded_without_its_layers_gets_them_at_start_up(
    own_daemon: EssaimDaemon, busybox_tar: Path, tmp_path: Path
) -> None:
    daemon = own_daemon
    before = DataRoot.of(daemon)
    ref = unique("older-record") + ":1"
    import_tar(daemon, unique_busybox_layer(tmp_path, busybox_tar), ref)
    stopped = ok(daemon.docker("create", ref, "echo", "alive")).strip()
    daemon.stop()
    # What a record written before containers kept their layers looks like.
    with contextlib.closing(sqlite3.connect(daemon.data_root / "state.db")) as db, db:
        (raw,) = db.execute(
            "SELECT value FROM objects WHERE kind = 'containers' AND key = ?", (stopped,)
        ).fetchone()
        record = json.loads(raw)
        del record["chain_ids"], record["layer_digests"]
        db.execute(
            "UPDATE objects SET value = ? WHERE kind = 'containers' AND key = ?",
            (json.dumps(record).encode(), stopped),
        )
    daemon.start()
    ok(daemon.docker("rmi", "-f", ref))
    assert ok(daemon.docker("start", "-a", stopped)) == "alive\n"
    ok(daemon.docker("rm", stopped))
    after = DataRoot.of(daemon)
    assert (after.snapshots, after.blobs) == (before.snapshots, before.blobs)


def test_ps_shows_the_image_id_once_the_name_is_elsewhere(
    daemon: EssaimDaemon, tmp_path: Path, cleanup: list[str]
) -> None:
    ref = unique("ps-image") + ":1"
    new = import_tar(daemon, unique_layer(tmp_path), ref)
    cleanup.append(new)
    created = ok(daemon.docker("create", ref, "true")).strip()
    cleanup += ["c:" + created, ref]

    def shown() -> tuple[str, str]:
        row = ok(daemon.docker("ps", "-a", "--filter", f"id={created}", "--format", "{{.Image}}"))
        (summary,) = daemon.client().api.containers(all=True, filters={"id": created})
        return row.strip(), summary["Image"]

    assert shown() == (ref, ref)
    ok(daemon.docker("tag", "busybox", ref))  # the name now means another image
    assert shown() == (new[7:19], new)
    ok(daemon.docker("rmi", "-f", new))
    assert shown() == (new[7:19], new)
    # Inspect keeps what was typed, and the image id.
    out = ok(daemon.docker("inspect", "-f", "{{.Config.Image}} {{.Image}}", created))
    assert out == f"{ref} {new}\n"


def test_rmi_by_id_prefix_and_names_in_several_repositories(
    daemon: EssaimDaemon, tmp_path: Path, cleanup: list[str]
) -> None:
    first, second = unique("repo-a") + ":1", unique("repo-b") + ":1"
    new = import_tar(daemon, unique_layer(tmp_path), first)
    ok(daemon.docker("tag", first, second))
    cleanup += [first, second]
    result = daemon.docker("rmi", new[7:17])
    assert result.returncode == 1
    assert result.stderr == (
        f"Error response from daemon: conflict: unable to delete {new[7:19]} (must be forced) "
        "- image is referenced in multiple repositories\n"
    )
    out = ok(daemon.docker("rmi", "-f", new[7:17])).splitlines()
    assert sorted(out[:2]) == sorted([f"Untagged: {first}", f"Untagged: {second}"])
    assert out[2] == f"Deleted: {new}"
    assert new not in all_ids(daemon)
    single = unique("single") + ":1"
    new = import_tar(daemon, unique_layer(tmp_path), single)
    out = ok(daemon.docker("rmi", new[7:15])).splitlines()
    assert out[:2] == [f"Untagged: {single}", f"Deleted: {new}"]


def test_rmi_unknown_image(daemon: EssaimDaemon) -> None:
    result = daemon.docker("rmi", "nosuchimage")
    assert result.returncode == 1
    assert result.stderr == "Error response from daemon: No such image: nosuchimage:latest\n"


# -- docker import


def test_import_from_a_file_runs(
    daemon: EssaimDaemon, busybox_tar: Path, cleanup: list[str]
) -> None:
    ref = unique("imported") + ":v1"
    new = import_tar(daemon, busybox_tar, ref)
    cleanup.append(ref)
    assert ok(daemon.docker("images", "-q", "--no-trunc", ref)) == new + "\n"
    image = inspect(daemon, ref)
    assert image["Config"]["Cmd"] is None
    assert image["Comment"] == "Imported from -"
    assert ok(daemon.docker("run", "--rm", ref, "/bin/echo", "from", "import")) == "from import\n"


def test_import_from_stdin_and_a_pipe(
    daemon: EssaimDaemon, busybox_tar: Path, cleanup: list[str]
) -> None:
    ref = unique("stdin") + ":v1"
    result = docker_bytes(daemon, "import", "-", ref, data=busybox_tar.read_bytes())
    assert result.returncode == 0, result.stderr
    cleanup.append(ref)
    assert result.stdout.strip() == image_id(daemon, ref)
    piped = unique("piped") + ":v1"
    shell = subprocess.run(
        ["sh", "-c", f'cat "{busybox_tar}" | docker import - {piped}'],
        env=daemon.env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shell.returncode == 0, shell.stderr
    cleanup.append(piped)
    assert shell.stdout.strip() == image_id(daemon, piped)
    assert ok(daemon.docker("run", "--rm", piped, "/bin/echo", "piped")) == "piped\n"


def test_import_gzip_with_changes_and_message(
    daemon: EssaimDaemon, busybox_tar: Path, tmp_path: Path, cleanup: list[str]
) -> None:
    compressed = tmp_path / "busybox.tar.gz"
    compressed.write_bytes(gzip.compress(busybox_tar.read_bytes(), compresslevel=1))
    ref = unique("changed") + ":v2"
    new = import_tar(
        daemon, compressed, ref,
        "--change", 'CMD ["/bin/sh"]', "--change", "ENV A=b", "-m", "my message",
    )  # fmt: skip
    cleanup.append(ref)
    image = inspect(daemon, ref)
    assert image["Id"] == new
    assert image["Config"]["Cmd"] == ["/bin/sh"]
    assert image["Config"]["Env"] == ["A=b"]
    assert image["Comment"] == "my message"
    # Same uncompressed layer as busybox: the diff id does not depend on compression.
    assert image["RootFS"]["Layers"] == inspect(daemon, "busybox")["RootFS"]["Layers"]
    comment = ok(daemon.docker("history", "--format", "{{.Comment}}", ref))
    assert comment == "my message\n"
    result = daemon.docker("run", "--rm", "-i", ref, input="echo $A\n")
    assert ok(result) == "b\n"


def test_import_refuses_bad_input_and_leaves_nothing(
    daemon: EssaimDaemon, busybox_tar: Path
) -> None:
    before_ids, before_disk = all_ids(daemon), DataRoot.of(daemon)
    garbage = docker_bytes(daemon, "import", "-", unique("garbage"), data=os.urandom(4096))
    assert garbage.returncode == 1
    assert garbage.stderr.startswith("Error response from daemon: archive/tar:")
    change = daemon.docker("import", "--change", "RUN true", str(busybox_tar), unique("run"))
    assert change.returncode == 1
    assert change.stderr == "Error response from daemon: run is not a valid change command\n"
    digest = "sha256:" + "ab" * 32
    pinned = daemon.docker("import", str(busybox_tar), f"{unique('pinned')}@{digest}")
    assert pinned.returncode == 1
    assert pinned.stderr == "Error response from daemon: cannot import digest reference\n"
    assert all_ids(daemon) == before_ids
    assert DataRoot.of(daemon) == before_disk


# -- hostile archives


@dataclass
class Hostile:
    name: str
    members: list[Any]
    outside: list[Path]  # must never exist
    error: str | None  # the daemon's message; None: sanitised, `inside` lands in the layer
    inside: str = ""


def hostile_archives(token: str) -> list[Hostile]:
    escape = Path(f"/tmp/{token}")
    return [
        Hostile(
            "dotdot",
            [member("ok"), member(f"../../../../../../../../tmp/{token}-dotdot", data=b"x")],
            [Path(f"{escape}-dotdot")],
            error=f"invalid tar entry '../../../../../../../../tmp/{token}-dotdot': "
            "path is outside of the target",
        ),
        Hostile(
            "absolute",
            [member(f"/tmp/{token}-abs", data=b"x")],
            [Path(f"{escape}-abs")],
            error=None,
            inside=f"tmp/{token}-abs",
        ),
        Hostile(
            "symlink-to-root",
            [member("link", tarfile.SYMTYPE, link="/"), member(f"link/tmp/{token}-sym", data=b"x")],
            [Path(f"{escape}-sym")],
            error=None,
            inside=f"tmp/{token}-sym",
        ),
        Hostile(
            "symlink-climbing",
            [
                member("up", tarfile.SYMTYPE, link="../../../../../../../../tmp"),
                member(f"up/{token}-symrel", data=b"x"),
            ],
            [Path(f"{escape}-symrel")],
            error=None,
            inside=f"tmp/{token}-symrel",
        ),
        Hostile(
            "write-through-symlink",
            [
                member("f", tarfile.SYMTYPE, link=f"/tmp/{token}-through"),
                member("f", data=b"overwritten"),
            ],
            [Path(f"{escape}-through")],
            error=None,
            inside="f",
        ),
        Hostile(
            "hardlink-to-host-file",
            [member("pw", tarfile.LNKTYPE, link="/etc/passwd")],
            [],
            error="invalid tar entry 'pw': etc does not exist",
        ),
        Hostile(
            "hardlink-climbing",
            [member("pw", tarfile.LNKTYPE, link="../../../../../../../../etc/passwd")],
            [],
            error="invalid tar entry '../../../../../../../../etc/passwd': "
            "path is outside of the target",
        ),
        Hostile(
            "hardlink-through-symlink",
            [
                member("hostetc", tarfile.SYMTYPE, link="/etc"),
                member("pw", tarfile.LNKTYPE, link="hostetc/passwd"),
            ],
            [],
            error="invalid tar entry 'pw': hostetc does not exist",
        ),
        Hostile(
            "symlink-loop",
            [member("loop", tarfile.SYMTYPE, link="/loop"), member("loop/x", data=b"x")],
            [],
            error="invalid tar entry 'loop/x': too many symbolic links",
        ),
    ]


@pytest.mark.parametrize("case", [h.name for h in hostile_archives("x")])
def test_hostile_archive_never_writes_outside(
    daemon: EssaimDaemon, tmp_path: Path, case: str, cleanup: list[str]
) -> None:
    token = unique("essaim-escape")
    hostile = next(h for h in hostile_archives(token) if h.name == case)
    path = write_tar(tmp_path / f"{case}.tar", hostile.members)
    passwd = os.stat("/etc/passwd")
    before_ids, before_disk = all_ids(daemon), DataRoot.of(daemon)
    ref = unique("hostile") + ":1"
    result = daemon.docker("import", str(path), ref)
    assert not [p for p in hostile.outside if os.path.lexists(p)]
    after = os.stat("/etc/passwd")
    assert (after.st_nlink, after.st_size, after.st_mtime_ns) == (
        passwd.st_nlink, passwd.st_size, passwd.st_mtime_ns,
    )  # fmt: skip
    if hostile.error is not None:
        assert result.returncode == 1
        assert result.stderr == f"Error response from daemon: {hostile.error}\n"
        assert all_ids(daemon) == before_ids
        assert DataRoot.of(daemon) == before_disk
        return
    assert result.returncode == 0, result.stderr
    cleanup.append(ref)
    upper = Path(inspect(daemon, ref)["GraphDriver"]["Data"]["UpperDir"])
    landed = upper / hostile.inside
    assert landed.is_file() and not landed.is_symlink()
    assert landed.resolve().is_relative_to(daemon.data_root)


# -- pull


def test_pull_of_an_unknown_repository_is_404_with_dockers_text(
    daemon: EssaimDaemon, tmp_path: Path
) -> None:
    with DockerRegistry(tmp_path / "registry") as registry:
        unknown = f"{registry.address}/nosuch"
        text = f"manifest for {unknown}:latest not found: manifest unknown: manifest unknown"
        api = daemon.client().api
        response = api._post(
            api._url("/images/create"), params={"fromImage": unknown, "tag": "latest"}
        )
        assert response.status_code == 404
        assert response.json() == {"message": text}
        with pytest.raises(docker.errors.NotFound):
            api.pull(unknown, tag="latest")
        result = daemon.docker("pull", unknown)
        assert result.returncode == 1
        assert f"Error response from daemon: {text}" in result.stderr


# -- the SDK


def test_sdk_list_get_tag_remove(daemon: EssaimDaemon) -> None:
    client = daemon.client()
    busybox = client.images.get("busybox")
    assert "busybox:latest" in busybox.tags
    assert busybox.attrs["Config"]["Cmd"] == ["sh"]
    assert busybox.id in [image.id for image in client.images.list()]
    assert [image.id for image in client.images.list(name="busybox")] == [busybox.id]
    repo = unique("sdk")
    assert busybox.tag(repo, "v1") is True
    assert client.images.get(f"{repo}:v1").id == busybox.id
    client.images.remove(f"{repo}:v1")
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(f"{repo}:v1")
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("nosuch")
    assert "busybox:latest" in client.images.get(busybox.id).tags


def test_sdk_import_image_from_data(
    daemon: EssaimDaemon, busybox_tar: Path, cleanup: list[str]
) -> None:
    api = daemon.client().api
    repo = unique("sdk-import")
    reply = api.import_image_from_data(
        busybox_tar.read_bytes(), repository=repo, tag="v2", changes=['CMD ["echo", "sdk"]']
    )
    cleanup.append(f"{repo}:v2")
    status = json.loads(reply.splitlines()[-1])["status"]
    assert status == daemon.client().images.get(f"{repo}:v2").id
    output = daemon.client().containers.run(f"{repo}:v2", remove=True)
    assert output == b"sdk\n"
    with pytest.raises(docker.errors.APIError) as err:
        api.import_image_from_data(b"not a tar at all" * 64, repository=unique("sdk-bad"))
    assert err.value.status_code == 400


# -- events


def image_events(daemon: EssaimDaemon, since: float, until: float) -> list[dict[str, Any]]:
    stream = daemon.client().api.events(
        since=since, until=until, filters={"type": "image"}, decode=True
    )
    return list(stream)


def test_image_events_for_tag_untag_import_delete(daemon: EssaimDaemon, tmp_path: Path) -> None:
    since = time.time()
    busybox = image_id(daemon, "busybox")
    tag = unique("evt") + ":1"
    ok(daemon.docker("tag", "busybox", tag))
    ok(daemon.docker("rmi", tag))
    imported = unique("evt-import") + ":1"
    new = import_tar(daemon, unique_layer(tmp_path), imported, "--change", "LABEL tier=test")
    ok(daemon.docker("rmi", imported))
    until = time.time()
    # An `until` already past: the kept events are replayed, then the stream ends.
    events = image_events(daemon, since, until)
    mine = [e for e in events if e["Actor"]["ID"] in (busybox, new)]
    assert [(e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"]["name"]) for e in mine] == [
        ("tag", busybox, tag),
        ("untag", busybox, busybox),
        ("tag", new, imported),
        ("import", new, new),
        ("untag", new, new),
        ("delete", new, new),
    ]
    for event in mine:
        assert event["Type"] == "image" and event["scope"] == "local"
        # dockerd's legacy fields for image events: status and id, no from.
        assert (event["status"], event["id"]) == (event["Action"], event["Actor"]["ID"])
        assert "from" not in event
        assert event["time"] == event["timeNano"] // 1_000_000_000
        assert since <= event["timeNano"] / 1e9 <= until
    # The image's labels ride along while the image exists (not on delete).
    labels = {
        e["Action"]: e["Actor"]["Attributes"].get("tier") for e in mine if e["Actor"]["ID"] == new
    }
    assert labels == {"tag": "test", "import": "test", "untag": "test", "delete": None}
