"""The OCI image formats: config and manifest JSON to and from the image model, media
types (OCI and Docker schema 2 alike), and layer chain ids.

The config blob's bytes define the image id, so encoding is deterministic.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from essaim.errors import InvalidParameter
from essaim.image.reference import validate_digest
from essaim.model.image import HealthConfig, HistoryEntry, Image, ImageConfig

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
CONFIG_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})
LAYER_TYPES = frozenset(
    {
        OCI_LAYER,
        OCI_LAYER_GZIP,
        OCI_LAYER_ZSTD,
        DOCKER_LAYER,
        DOCKER_LAYER_GZIP,
        DOCKER_FOREIGN_LAYER,
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    }
)


# The OCI name of each layer media type, for the OCI manifests written here.
_OCI_LAYER_TYPE = {
    DOCKER_LAYER: OCI_LAYER,
    DOCKER_LAYER_GZIP: OCI_LAYER_GZIP,
    OCI_LAYER: OCI_LAYER,
    OCI_LAYER_GZIP: OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD: OCI_LAYER_ZSTD,
}


def layer_media_type(image: Image, index: int) -> str:
    """The media type of the image's `index`th layer blob: as recorded (from a pull or
    a load), or an uncompressed OCI layer (every layer made here)."""
    if index < len(image.layer_media_types) and image.layer_media_types[index]:
        return image.layer_media_types[index]
    return OCI_LAYER


def oci_layer_type(media_type: str) -> str:
    """The OCI media type for a layer blob of `media_type` (Docker's or OCI's)."""
    try:
        return _OCI_LAYER_TYPE[media_type]
    except KeyError:
        raise InvalidParameter(f"unsupported layer media type {media_type}") from None


def chain_ids(diff_ids: list[str]) -> list[str]:
    """ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    out: list[str] = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            text = f"{out[-1]} {diff_id}".encode()
            out.append("sha256:" + hashlib.sha256(text).hexdigest())
    return out


def _encode_health(health: HealthConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"Test": list(health.test)}
    for key, value in (
        ("Interval", health.interval),
        ("Timeout", health.timeout),
        ("StartPeriod", health.start_period),
        ("StartInterval", health.start_interval),
        ("Retries", health.retries),
    ):
        if value:
            out[key] = value
    return out


def encode_run_config(config: ImageConfig) -> dict[str, Any]:
    """The config's `config` object: OCI keys plus the Docker extras; empty fields left
    out, as both Docker and the OCI tools write it. Maps come out with sorted keys, as
    Go writes them: the same settings in any order make the same image id."""
    out: dict[str, Any] = {}
    if config.user:
        out["User"] = config.user
    if config.exposed_ports:
        out["ExposedPorts"] = {port: {} for port in sorted(config.exposed_ports)}
    if config.env:
        out["Env"] = list(config.env)
    if config.entrypoint is not None:
        out["Entrypoint"] = list(config.entrypoint)
    if config.cmd is not None:
        out["Cmd"] = list(config.cmd)
    if config.volumes:
        out["Volumes"] = {volume: {} for volume in sorted(config.volumes)}
    if config.working_dir:
        out["WorkingDir"] = config.working_dir
    if config.labels:
        out["Labels"] = dict(sorted(config.labels.items()))
    if config.stop_signal:
        out["StopSignal"] = config.stop_signal
    if config.args_escaped:
        out["ArgsEscaped"] = True
    if config.shell is not None:
        out["Shell"] = list(config.shell)
    if config.on_build:
        out["OnBuild"] = list(config.on_build)
    if config.healthcheck is not None:
        out["Healthcheck"] = _encode_health(config.healthcheck)
    return out


def encode_config(image: Image) -> bytes:
    """The config blob of `image` (its id is the sha256 of these bytes)."""
    doc: dict[str, Any] = {}
    if image.created:
        doc["created"] = image.created
    if image.author:
        doc["author"] = image.author
    doc["architecture"] = image.architecture
    if image.variant:
        doc["variant"] = image.variant
    doc["os"] = image.os
    doc["config"] = encode_run_config(image.config)
    doc["rootfs"] = {"type": "layers", "diff_ids": list(image.diff_ids)}
    history = []
    for entry in image.history:
        item: dict[str, Any] = {}
        if entry.created:
            item["created"] = entry.created
        if entry.created_by:
            item["created_by"] = entry.created_by
        if entry.author:
            item["author"] = entry.author
        if entry.comment:
            item["comment"] = entry.comment
        if entry.empty_layer:
            item["empty_layer"] = True
        history.append(item)
    if history:
        doc["history"] = history
    if image.comment:
        doc["comment"] = image.comment
    if image.docker_version:
        doc["docker_version"] = image.docker_version
    if image.parent:
        doc["parent"] = image.parent
    if image.container:
        doc["container"] = image.container
    if image.container_config is not None:
        doc["container_config"] = encode_run_config(image.container_config)
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _str_list(value: Any, what: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidParameter(f"invalid image config: {what} must be a list of strings")
    return list(value)


def _keys(value: Any) -> list[str]:
    return list(value) if isinstance(value, dict) else []


def _int(value: Any, what: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidParameter(f"invalid image config: {what} must be a number")
    return int(value)


def decode_run_config(raw: Any) -> ImageConfig:
    if not isinstance(raw, dict):
        return ImageConfig()
    health = raw.get("Healthcheck")
    labels = raw.get("Labels")
    return ImageConfig(
        user=str(raw.get("User") or ""),
        env=_str_list(raw.get("Env"), "Env") or [],
        cmd=_str_list(raw.get("Cmd"), "Cmd"),
        entrypoint=_str_list(raw.get("Entrypoint"), "Entrypoint"),
        working_dir=str(raw.get("WorkingDir") or ""),
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
        stop_signal=str(raw.get("StopSignal") or ""),
        exposed_ports=_keys(raw.get("ExposedPorts")),
        volumes=_keys(raw.get("Volumes")),
        shell=_str_list(raw.get("Shell"), "Shell"),
        on_build=_str_list(raw.get("OnBuild"), "OnBuild") or [],
        healthcheck=(
            HealthConfig(
                test=_str_list(health.get("Test"), "Healthcheck.Test") or [],
                interval=_int(health.get("Interval"), "Healthcheck.Interval"),
                timeout=_int(health.get("Timeout"), "Healthcheck.Timeout"),
                start_period=_int(health.get("StartPeriod"), "Healthcheck.StartPeriod"),
                start_interval=_int(health.get("StartInterval"), "Healthcheck.StartInterval"),
                retries=_int(health.get("Retries"), "Healthcheck.Retries"),
            )
            if isinstance(health, dict)
            else None
        ),
        args_escaped=bool(raw.get("ArgsEscaped") or False),
    )


def decode_config(raw: bytes, image_id: str) -> Image:
    """An Image (without names, sizes or manifest) from a config blob, OCI or Docker."""
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise InvalidParameter(f"invalid image config: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidParameter("invalid image config: not a JSON object")
    rootfs = doc.get("rootfs") or {}
    if not isinstance(rootfs, dict) or rootfs.get("type", "layers") != "layers":
        raise InvalidParameter("invalid image config: rootfs type must be layers")
    diff_ids = _str_list(rootfs.get("diff_ids"), "rootfs.diff_ids") or []
    raw_history = doc.get("history") or []
    if not isinstance(raw_history, list):
        raise InvalidParameter("invalid image config: history must be a list")
    history = [
        HistoryEntry(
            created=str(h.get("created") or ""),
            created_by=str(h.get("created_by") or ""),
            author=str(h.get("author") or ""),
            comment=str(h.get("comment") or ""),
            empty_layer=bool(h.get("empty_layer") or False),
        )
        for h in raw_history
        if isinstance(h, dict)
    ]
    return Image(
        id=image_id,
        parent=str(doc.get("parent") or ""),
        created=str(doc.get("created") or ""),
        architecture=str(doc.get("architecture") or ""),
        variant=str(doc.get("variant") or ""),
        os=str(doc.get("os") or ""),
        author=str(doc.get("author") or ""),
        comment=str(doc.get("comment") or ""),
        docker_version=str(doc.get("docker_version") or ""),
        config=decode_run_config(doc.get("config")),
        diff_ids=diff_ids,
        history=history,
        container=str(doc.get("container") or ""),
        container_config=(
            decode_run_config(doc["container_config"])
            if isinstance(doc.get("container_config"), dict)
            else None
        ),
    )


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int

    def encode(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True, slots=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


def encode_manifest(config: Descriptor, layers: list[Descriptor]) -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.encode(),
        "layers": [layer.encode() for layer in layers],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def _descriptor(raw: Any, allowed: frozenset[str], what: str) -> Descriptor:
    if not isinstance(raw, dict):
        raise InvalidParameter(f"invalid manifest: {what} is not a descriptor")
    media_type = raw.get("mediaType")
    digest = raw.get("digest")
    size = raw.get("size")
    if (
        not isinstance(digest, str)
        or not isinstance(size, int)
        or isinstance(size, bool)
        or size < 0
    ):
        raise InvalidParameter(f"invalid manifest: {what} needs a digest and a size")
    try:
        validate_digest(digest)
    except InvalidParameter as exc:
        raise InvalidParameter(f"invalid manifest: {what} digest {digest!r}: {exc}") from None
    if media_type not in allowed:
        raise InvalidParameter(f"invalid manifest: unsupported {what} media type {media_type}")
    return Descriptor(str(media_type), digest, size)


def parse_manifest(raw: bytes) -> Manifest:
    """An image manifest, OCI or Docker schema 2 (indexes are the caller's business)."""
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise InvalidParameter(f"invalid manifest: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schemaVersion") != 2:
        raise InvalidParameter("invalid manifest: unsupported schema version")
    # OCI allows mediaType to be absent; a config descriptor still identifies the kind.
    media_type = doc.get("mediaType") or OCI_MANIFEST
    if media_type not in MANIFEST_TYPES:
        raise InvalidParameter(f"invalid manifest: unsupported media type {media_type}")
    config = _descriptor(doc.get("config"), CONFIG_TYPES, "config")
    layers = doc.get("layers") or []
    if not isinstance(layers, list):
        raise InvalidParameter("invalid manifest: layers must be a list")
    return Manifest(
        media_type=str(media_type),
        config=config,
        layers=tuple(_descriptor(layer, LAYER_TYPES, "layer") for layer in layers),
    )


def parse_descriptor(raw: Any, allowed: frozenset[str], what: str) -> Descriptor:
    """A descriptor of one of the `allowed` media types (for index entries)."""
    return _descriptor(raw, allowed, what)
