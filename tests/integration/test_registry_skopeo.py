"""skopeo, Debian's build, against `essaim registry`: an OCI layout pushed, pulled back
to `dir:` and `oci:` byte for byte, and copied to and from Debian's docker-registry.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.registries import (
    DOCKER_REGISTRY,
    DockerRegistry,
    EssaimRegistry,
    Image,
    make_image,
    skopeo,
    write_oci_layout,
)

pytestmark = pytest.mark.skipif(
    shutil.which("skopeo") is None or not DOCKER_REGISTRY.exists(),
    reason="needs skopeo and docker-registry (scripts/setup installs them)",
)


@pytest.fixture(scope="module")
def essaim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EssaimRegistry]:
    with EssaimRegistry(tmp_path_factory.mktemp("es-skopeo") / "root") as server:
        yield server


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerRegistry]:
    with DockerRegistry(tmp_path_factory.mktemp("es-distribution") / "root") as server:
        yield server


@pytest.fixture(scope="module")
def image() -> Image:
    return make_image([{"etc/hello": b"hello\n"}, {"big": bytes(range(256)) * 8000}])


def copy(src: str, dest: str) -> None:
    result = skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false", src, dest)
    assert result.returncode == 0, result.stderr


def blobs_of_dir(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.name != "version"}


def test_push_oci_layout_and_pull_back_to_dir_and_oci(
    essaim: EssaimRegistry, image: Image, tmp_path: Path
) -> None:
    write_oci_layout(tmp_path / "src", image, "v1")
    copy(f"oci:{tmp_path / 'src'}:v1", f"docker://{essaim.address}/skopeo/img:1")
    copy(f"docker://{essaim.address}/skopeo/img:1", f"dir:{tmp_path / 'dir'}")
    pulled = blobs_of_dir(tmp_path / "dir")
    assert pulled["manifest.json"] == image.manifest
    for digest, data in image.blobs.items():
        assert pulled[digest.split(":")[1]] == data
    copy(f"docker://{essaim.address}/skopeo/img:1", f"oci:{tmp_path / 'back'}:again")
    index = json.loads((tmp_path / "back" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == image.digest
    inspected = skopeo("inspect", "--tls-verify=false", f"docker://{essaim.address}/skopeo/img:1")
    assert json.loads(inspected.stdout)["Digest"] == image.digest
    tags = skopeo("list-tags", "--tls-verify=false", f"docker://{essaim.address}/skopeo/img")
    assert json.loads(tags.stdout)["Tags"] == ["1"]


def test_copy_between_essaim_and_docker_registry(
    essaim: EssaimRegistry, reference: DockerRegistry, image: Image, tmp_path: Path
) -> None:
    write_oci_layout(tmp_path / "src", image, "v1")
    copy(f"oci:{tmp_path / 'src'}:v1", f"docker://{essaim.address}/interop/img:1")
    copy(f"docker://{essaim.address}/interop/img:1", f"docker://{reference.address}/interop/img:1")
    copy(f"docker://{reference.address}/interop/img:1", f"docker://{essaim.address}/interop/back:1")
    copy(f"docker://{essaim.address}/interop/back:1", f"dir:{tmp_path / 'dir'}")
    assert (tmp_path / "dir" / "manifest.json").read_bytes() == image.manifest
    for digest, data in image.blobs.items():
        assert (tmp_path / "dir" / digest.split(":")[1]).read_bytes() == data


def test_docker_schema2_image_through_essaim(
    essaim: EssaimRegistry, image: Image, tmp_path: Path
) -> None:
    write_oci_layout(tmp_path / "src", image, "v1")
    # skopeo converts to Docker's schema 2 on the way (media types and all).
    result = skopeo(
        "copy", "--dest-tls-verify=false", "--format", "v2s2",
        f"oci:{tmp_path / 'src'}:v1", f"docker://{essaim.address}/schema2/img:1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    raw = skopeo(
        "inspect", "--raw", "--tls-verify=false", f"docker://{essaim.address}/schema2/img:1"
    )
    manifest = json.loads(raw.stdout)
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    copy(f"docker://{essaim.address}/schema2/img:1", f"dir:{tmp_path / 'dir'}")
    assert json.loads((tmp_path / "dir" / "manifest.json").read_bytes()) == manifest
