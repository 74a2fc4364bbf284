"""The docker SDK for Python as a client: run detached, stream logs, wait, remove,
list images."""

from __future__ import annotations

import docker
import pytest

from tests.integration.daemon import EssaimDaemon


def test_sdk_run_logs_wait_remove(daemon: EssaimDaemon) -> None:
    client = daemon.client()
    container = client.containers.run(
        "busybox", ["sh", "-c", "for i in 1 2 3; do echo n$i; sleep 0.1; done; exit 2"],
        detach=True,
    )  # fmt: skip
    lines = b"".join(container.logs(stream=True, follow=True)).decode().split()
    assert lines == ["n1", "n2", "n3"]
    assert container.wait() == {"StatusCode": 2, "Error": None}
    container.reload()
    assert container.status == "exited"
    container.remove()
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(container.id)


def test_sdk_run_attached_returns_output(daemon: EssaimDaemon) -> None:
    client = daemon.client()
    assert client.containers.run("busybox", ["echo", "sdk"], remove=True) == b"sdk\n"


def test_sdk_images_list_and_errors(daemon: EssaimDaemon) -> None:
    client = daemon.client()
    tags = [tag for image in client.images.list() for tag in image.tags]
    assert "busybox:latest" in tags
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("nosuchimage:latest")
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("nosuchcontainer")
