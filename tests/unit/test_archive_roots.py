"""Where a stopped container's `docker cp` path is found, and moby's write checks."""

from __future__ import annotations

import pytest

from essaim.engine.archive_roots import Located, MountedSource, check_writable, locate
from essaim.errors import InvalidParameter
from essaim.model.container import Container, ContainerConfig, HostConfig
from essaim.model.mount import MountPoint

MOUNTS = [
    MountedSource(("data",), "/vol/data"),
    MountedSource(("data", "deep"), "/vol/deep"),
    MountedSource(("etc", "hosts"), "/run/c1/hosts"),
]
DIRS = {"/vol/data": True, "/vol/deep": True, "/run/c1/hosts": False}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/etc/passwd", Located(None, "/etc/passwd")),
        ("/database", Located(None, "/database")),
        ("/data", Located("/vol/data", "/")),
        ("/data/", Located("/vol/data", "/")),
        ("/data/.", Located("/vol/data", "/.")),
        ("/data/a/b.txt", Located("/vol/data", "/a/b.txt")),
        ("/data/a/", Located("/vol/data", "/a/")),
        ("/data/deep/x", Located("/vol/deep", "/x")),
        ("/etc/hosts", Located("/run/c1", "/hosts")),
    ],
)
def test_the_deepest_mount_holds_the_path(path: str, expected: Located) -> None:
    assert locate(MOUNTS, path, DIRS) == expected


def _container(points: list[MountPoint], *, read_only: bool) -> Container:
    return Container(
        id="c" * 64, name="c", created="", image_id="", config=ContainerConfig(image="x"),
        host_config=HostConfig(readonly_rootfs=read_only), path="true", args=[],
        mount_points=points,
    )  # fmt: skip


def test_writes_follow_mobys_volume_and_rootfs_rules() -> None:
    points = [
        MountPoint(type="volume", destination="/rw", name="v"),
        MountPoint(type="volume", destination="/ro", name="v", rw=False),
    ]
    read_only = _container(points, read_only=True)
    check_writable(read_only, "/rw/sub")
    with pytest.raises(InvalidParameter, match="mounted volume is marked read-only"):
        check_writable(read_only, "/ro/x")
    with pytest.raises(InvalidParameter, match="container rootfs is marked read-only"):
        check_writable(read_only, "/tmp")
    check_writable(_container(points, read_only=False), "/tmp")
