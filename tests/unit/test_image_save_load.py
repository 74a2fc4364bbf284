"""docker save and docker load through the image service: the archive's layout, a round
trip that keeps ids, names and manifest digests, the other formats load takes, and bad
archives that must leave no image, tag, blob or snapshot behind."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from essaim.errors import InvalidParameter, NotFound
from essaim.image import oci, save
from essaim.image.archive_load import load_archive
from essaim.image.load import StagedArchive
from essaim.image.service import ImageService
from essaim.model.image import ImageConfig
from essaim.store import SqliteStore
from essaim.store.events import EventBus
from tests.tarballs import layer_tar, members

BASE = layer_tar({"bin/sh": b"shell"})
APP = layer_tar({"app/run": b"#!/bin/sh\n"})


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_tar(entries: list[tuple[str, bytes | str | None]]) -> bytes:
    """A tar of files (bytes), symlinks (str: the target) and directories (None)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, value in entries:
            info = tarfile.TarInfo(name)
            if value is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif isinstance(value, str):
                info.type = tarfile.SYMTYPE
                info.linkname = value
                tar.addfile(info)
            else:
                info.size = len(value)
                tar.addfile(info, io.BytesIO(value))
    return buf.getvalue()


def config_for(*layers: bytes) -> bytes:
    return json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [sha(layer) for layer in layers]},
        },
        indent=2,
    ).encode()


@pytest.fixture
def images(tmp_path: Path) -> Iterator[ImageService]:
    executor = ThreadPoolExecutor(max_workers=2)
    store = SqliteStore(tmp_path / "state.db")
    yield ImageService(tmp_path / "data", store, EventBus(), executor)
    asyncio.run(store.close())
    executor.shutdown()


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 7000):
        yield data[i : i + 7000]


async def saved(images: ImageService, names: list[str]) -> bytes:
    items = await save.select_images(images, names)
    stored = {i.image.id: save.describe(images.content, i.image) for i in items}
    files = save.plan_archive(items, stored)
    opened = save.open_blobs(images.content, files)
    return b"".join([chunk async for chunk in save.stream_archive(images, files, opened)])


def on_disk(images: ImageService) -> tuple[set[str], set[str]]:
    return set(images.content.digests()), set(images.snapshots.chain_ids_on_disk())


async def two_images(images: ImageService) -> tuple[str, str]:
    await images.load()  # cleans the ingest area: the layers go elsewhere
    base_dir = images.data_root / "layers"
    base_dir.mkdir(exist_ok=True)
    paths = []
    for data in (BASE, APP):
        path = base_dir / f"layer-{len(paths)}.tar"
        path.write_bytes(data)
        paths.append(path)
    base = await images.add_image([paths[0]], ImageConfig(cmd=["sh"]), tags=["base:1", "base:2"])
    app = await images.add_image([paths[1]], ImageConfig(), base=base, tags=["me/app:v1"])
    return base.id, app.id


def test_save_writes_the_docker_25_layout_with_every_tag(images: ImageService) -> None:
    async def scenario() -> None:
        base_id, app_id = await two_images(images)
        archive = members(await saved(images, ["base", "me/app:v1", app_id[7:19]]))
        names = list(archive)
        assert names[:2] == ["blobs", "blobs/sha256"]
        assert names[-4:] == ["index.json", "manifest.json", "oci-layout", "repositories"]
        assert archive["oci-layout"] == b'{"imageLayoutVersion": "1.0.0"}'
        manifest = json.loads(archive["manifest.json"] or b"")
        # A bare repository saves each of its tags; the same image named by id adds none.
        assert [m["RepoTags"] for m in manifest] == [["base:1", "base:2"], ["me/app:v1"]]
        assert manifest[0]["Config"] == f"blobs/sha256/{base_id[7:]}"
        assert len(manifest[1]["Layers"]) == 2
        for path in [m["Config"] for m in manifest] + manifest[1]["Layers"]:
            assert sha(archive[path] or b"") == "sha256:" + path.rsplit("/", 1)[1]
        index = json.loads(archive["index.json"] or b"")
        names_in_index = [m["annotations"]["io.containerd.image.name"] for m in index["manifests"]]
        assert names_in_index == [
            "docker.io/library/base:1",
            "docker.io/library/base:2",
            "docker.io/me/app:v1",
        ]
        assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "1"
        repositories = json.loads(archive["repositories"] or b"")
        assert set(repositories) == {"base", "me/app"}

    asyncio.run(scenario())


def test_an_image_saved_by_id_has_no_names(images: ImageService) -> None:
    async def scenario() -> None:
        base_id, _ = await two_images(images)
        archive = members(await saved(images, [base_id]))
        assert json.loads(archive["manifest.json"] or b"")[0]["RepoTags"] is None
        index = json.loads(archive["index.json"] or b"")
        assert "annotations" not in index["manifests"][0]
        assert "repositories" not in archive

    asyncio.run(scenario())


def test_saving_a_missing_tag_says_so_before_any_byte(images: ImageService) -> None:
    async def scenario() -> None:
        await two_images(images)
        with pytest.raises(NotFound, match="reference does not exist"):
            await save.select_images(images, ["base:3"])
        with pytest.raises(NotFound, match="No such image: nothing"):
            await save.select_images(images, ["nothing"])

    asyncio.run(scenario())


def test_save_remove_load_gives_back_the_same_images_names_and_manifests(
    images: ImageService,
) -> None:
    async def scenario() -> None:
        base_id, app_id = await two_images(images)
        before = {i.id: i for i in await images.list()}
        archive = await saved(images, ["base", "me/app"])
        for name in ("base:1", "base:2", "me/app:v1"):
            await images.remove(name, force=True, prune=True, in_use_by=lambda _: ())
        assert await images.list() == []
        lines = await load_archive(images, chunks(gzip.compress(archive)))
        assert lines == ["Loaded image: base:1", "Loaded image: base:2", "Loaded image: me/app:v1"]
        after = {i.id: i for i in await images.list()}
        assert set(after) == {base_id, app_id}
        for image_id, image in after.items():
            assert image.repo_tags == before[image_id].repo_tags
            assert image.manifest_digest == before[image_id].manifest_digest
            assert image.diff_ids == before[image_id].diff_ids
        # Loading again changes nothing; a name taken from another image is announced.
        await images.tag(app_id, "base", "1")
        lines = await load_archive(images, chunks(archive))
        assert lines[0] == (
            f"The image base:1 already exists, renaming the old one with ID {app_id} "
            "to empty string"
        )
        assert (await images.get("base:1")).id == base_id

    asyncio.run(scenario())


def old_docker_archive() -> bytes:
    """The pre-25 docker save layout: `<id>.json`, `<v1 id>/layer.tar` (the second a
    symlink to a shared layer file, as skopeo and old Docker write them)."""
    config = config_for(BASE, APP)
    config_id = sha(config)[7:]
    return make_tar(
        [
            (f"{config_id}.json", config),
            ("aaaa/", None),
            ("aaaa/layer.tar", BASE),
            ("shared.tar", APP),
            ("bbbb/", None),
            ("bbbb/layer.tar", "../shared.tar"),
            (
                "manifest.json",
                json.dumps(
                    [
                        {
                            "Config": f"{config_id}.json",
                            "RepoTags": ["old/img:v1"],
                            "Layers": ["aaaa/layer.tar", "bbbb/layer.tar"],
                        }
                    ]
                ).encode(),
            ),
        ]
    )


def test_an_old_docker_archive_loads_through_its_symlinked_layers(images: ImageService) -> None:
    async def scenario() -> None:
        lines = await load_archive(images, chunks(old_docker_archive()))
        assert lines == ["Loaded image: old/img:v1"]
        image = await images.get("old/img:v1")
        assert image.id == sha(config_for(BASE, APP))
        assert image.layer_digests == [sha(BASE), sha(APP)]

    asyncio.run(scenario())


def oci_layout(annotations: dict[str, str], platform: dict[str, str] | None = None) -> bytes:
    config = config_for(BASE)
    layer = gzip.compress(BASE, mtime=0)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": oci.OCI_MANIFEST,
            "config": {"mediaType": oci.OCI_CONFIG, "digest": sha(config), "size": len(config)},
            "layers": [{"mediaType": oci.OCI_LAYER_GZIP, "digest": sha(layer), "size": len(layer)}],
        }
    ).encode()
    descriptor: dict[str, object] = {
        "mediaType": oci.OCI_MANIFEST,
        "digest": sha(manifest),
        "size": len(manifest),
        "annotations": annotations,
    }
    if platform is not None:
        descriptor["platform"] = platform
    index = json.dumps({"schemaVersion": 2, "manifests": [descriptor]}).encode()
    return make_tar(
        [
            ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
            ("index.json", index),
            *[(f"blobs/sha256/{sha(b)[7:]}", b) for b in (config, layer, manifest)],
        ]
    )


def test_an_oci_layout_loads_with_its_ref_name_and_keeps_compressed_layers(
    images: ImageService,
) -> None:
    async def scenario() -> None:
        archive = oci_layout({"org.opencontainers.image.ref.name": "localhost/oci:v2"})
        assert await load_archive(images, chunks(archive)) == ["Loaded image: localhost/oci:v2"]
        image = await images.get("localhost/oci:v2")
        assert image.layer_media_types == [oci.OCI_LAYER_GZIP]
        unnamed = oci_layout({})
        assert await load_archive(images, chunks(unnamed)) == [f"Loaded image ID: {image.id}"]

    asyncio.run(scenario())


def test_an_oci_layout_for_another_platform_is_refused(images: ImageService) -> None:
    async def scenario() -> None:
        archive = oci_layout({}, {"os": "linux", "architecture": "mips64"})
        with pytest.raises(InvalidParameter, match="no matching manifest"):
            await load_archive(images, chunks(archive))

    asyncio.run(scenario())


def bad_archives() -> dict[str, bytes]:
    good = old_docker_archive()
    config = config_for(BASE)

    def with_layer(layer: bytes, cfg: bytes = config, tags: str = '["bad:1"]') -> bytes:
        manifest = f'[{{"Config": "c.json", "RepoTags": {tags}, "Layers": ["l.tar"]}}]'
        return make_tar([("c.json", cfg), ("l.tar", layer), ("manifest.json", manifest.encode())])

    escaping = make_tar([("../../escape", b"x")])
    blob_x = f"blobs/sha256/{sha(b'x')[7:]}"
    blob_lie = good.replace(b"old/img:v1", b"bad/img:v1")
    return {
        "not a tar": b"this is not an archive at all" * 100,
        "no manifest": make_tar([("hello", b"x")]),
        "manifest path out of the archive": make_tar(
            [("manifest.json", b'[{"Config": "../../../../etc/hostname", "Layers": []}]')]
        ),
        "layer escaping its root": with_layer(escaping, config_for(escaping)),
        "layer not its diff id": with_layer(APP),
        "layer count unlike the config": with_layer(BASE, config_for(BASE, APP)),
        "blob not its digest": make_tar(
            [
                ("manifest.json", json.dumps([{"Config": blob_x, "Layers": []}]).encode()),
                (blob_x, b"y"),
            ]
        ),
        "tag with a digest": with_layer(BASE, tags='["bad@sha256:' + "a" * 64 + '"]'),
        "second image bad": make_tar(
            [
                ("c.json", config),
                ("l.tar", BASE),
                ("c2.json", config_for(escaping)),
                ("l2.tar", escaping),
                (
                    "manifest.json",
                    json.dumps(
                        [
                            {"Config": "c.json", "RepoTags": ["good:1"], "Layers": ["l.tar"]},
                            {"Config": "c2.json", "RepoTags": ["bad:2"], "Layers": ["l2.tar"]},
                        ]
                    ).encode(),
                ),
            ]
        ),
        "truncated gzip": gzip.compress(blob_lie)[:-40],
    }


@pytest.mark.parametrize("case", sorted(bad_archives()))
def test_a_bad_archive_is_refused_and_leaves_nothing(images: ImageService, case: str) -> None:
    async def scenario() -> None:
        await images.load()
        before = on_disk(images)
        with pytest.raises(InvalidParameter):
            await load_archive(images, chunks(bad_archives()[case]))
        assert await images.list() == []
        assert on_disk(images) == before
        assert list(images.content.ingest_dir.iterdir()) == []

    asyncio.run(scenario())


_NAMES = st.sampled_from(["a", "b", "..", ".", "etc", ""])
_PATHS = st.lists(_NAMES, min_size=1, max_size=5).map("/".join)


@settings(max_examples=60, deadline=None)
@given(
    links=st.dictionaries(
        st.sampled_from(["a", "b", "a/c"]), st.one_of(_PATHS, _PATHS.map("/".__add__)), max_size=3
    ),
    name=st.one_of(_PATHS, _PATHS.map("/".__add__)),
)
def test_paths_an_archive_names_never_resolve_outside_it(
    tmp_path_factory: pytest.TempPathFactory, links: dict[str, str], name: str
) -> None:
    root = tmp_path_factory.mktemp("staged")
    (root / "etc").mkdir()
    (root / "etc" / "file").write_bytes(b"x")
    for link, target in links.items():
        path = root / link
        # Links an archive could not make either (under a link, empty) are left out.
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.symlink_to(target)
    staged = StagedArchive(root, None)  # type: ignore[arg-type]
    try:
        resolved = staged.resolve(name)
    except InvalidParameter:
        return  # a loop, or not a regular file: refused
    if resolved is not None:
        assert resolved.resolve().is_relative_to(root.resolve())
