"""The image as the engine sees it: identity, names, run configuration and layers.

Pure data; the OCI config JSON that the image id is the digest of lives in `image/oci.py`.
"""

from __future__ import annotations

import re

import msgspec

from essaim.model.rfc3339 import unix_time

_FRACTION = re.compile(r"\.(\d+)")


class HealthConfig(msgspec.Struct, kw_only=True):
    """HEALTHCHECK: `test` is ["NONE"], ["CMD", ...] or ["CMD-SHELL", cmd]; times in ns."""

    test: list[str] = []
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


class ImageConfig(msgspec.Struct, kw_only=True):
    """What a container started from the image inherits (OCI `config`, Docker extras)."""

    user: str = ""
    env: list[str] = []
    # None and [] differ on the wire (`"Cmd": null` vs `[]`) and in what `run` inherits.
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    working_dir: str = ""
    labels: dict[str, str] = {}
    stop_signal: str = ""
    exposed_ports: list[str] = []  # "80/tcp", in insertion order
    volumes: list[str] = []
    shell: list[str] | None = None
    on_build: list[str] = []
    healthcheck: HealthConfig | None = None
    args_escaped: bool = False


class HistoryEntry(msgspec.Struct, kw_only=True):
    created: str = ""
    created_by: str = ""
    author: str = ""
    comment: str = ""
    empty_layer: bool = False


class Image(msgspec.Struct, kw_only=True):
    """One local image. `id` is "sha256:<hex of the config blob>"."""

    id: str
    repo_tags: list[str] = []  # normalised: "docker.io/library/busybox:latest"
    repo_digests: list[str] = []  # normalised: "docker.io/library/busybox@sha256:..."
    parent: str = ""
    created: str = ""  # RFC 3339, as in the config blob
    size: int = 0  # sum of the unpacked layer sizes
    layer_sizes: list[int] = []  # one per diff id, for history and df
    architecture: str = ""
    variant: str = ""
    os: str = ""
    author: str = ""
    comment: str = ""
    docker_version: str = ""
    config: ImageConfig = msgspec.field(default_factory=ImageConfig)
    diff_ids: list[str] = []
    # The manifest's layer blobs, one per diff id (equal to it for uncompressed layers),
    # and their media types (empty for images made here: uncompressed OCI layers).
    layer_digests: list[str] = []
    layer_media_types: list[str] = []
    history: list[HistoryEntry] = []
    manifest_digest: str = ""
    last_tag_time: str = ""
    # Made by `docker commit`: the container it came from and that container's own
    # settings then (the config blob's `container` and `container_config`).
    container: str = ""
    container_config: ImageConfig | None = None

    @property
    def short_id(self) -> str:
        """The 12 hex digits Docker prints."""
        return self.id.removeprefix("sha256:")[:12]

    @property
    def created_unix(self) -> int:
        return unix_time(self.created)


class TagRecord(msgspec.Struct, kw_only=True):
    """What a normalised reference (`repo:tag` or `repo@digest`) points to."""

    image_id: str
