"""OCI formats: config blobs to and from the model (deterministic: the bytes are the
image id), manifests of both OCI and Docker schema 2 kinds, and chain ids."""

from __future__ import annotations

import hashlib
import json

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from essaim.errors import InvalidParameter
from essaim.image import oci
from essaim.model.image import HealthConfig, HistoryEntry, Image, ImageConfig


def sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


# -- chain ids


def test_chain_ids_follow_the_oci_formula() -> None:
    a, b, c = sha("a"), sha("b"), sha("c")
    ab = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    abc = "sha256:" + hashlib.sha256(f"{ab} {c}".encode()).hexdigest()
    assert oci.chain_ids([a, b, c]) == [a, ab, abc]


def test_chain_ids_of_nothing_and_of_one_layer() -> None:
    assert oci.chain_ids([]) == []
    assert oci.chain_ids([sha("x")]) == [sha("x")]


def test_chain_ids_depend_on_order() -> None:
    a, b = sha("a"), sha("b")
    assert oci.chain_ids([a, b])[-1] != oci.chain_ids([b, a])[-1]


# -- config blobs


FULL_CONFIG = ImageConfig(
    user="app:app",
    env=["PATH=/bin", "A=1"],
    cmd=["serve", "--port", "80"],
    entrypoint=["/init"],
    working_dir="/srv",
    labels={"b": "2", "a": "1"},
    stop_signal="SIGQUIT",
    exposed_ports=["80/tcp", "53/udp"],
    volumes=["/data", "/cache"],
    shell=["/bin/bash", "-c"],
    on_build=["RUN make"],
    healthcheck=HealthConfig(
        test=["CMD-SHELL", "true"], interval=10, timeout=20, start_period=30, retries=3
    ),
    args_escaped=True,
)


def full_image() -> Image:
    return Image(
        id="",
        parent="sha256:" + "0" * 64,
        created="2024-01-01T00:00:00Z",
        architecture="arm64",
        variant="v8",
        os="linux",
        author="me <me@example.com>",
        comment="imported",
        docker_version="28.0.0",
        config=FULL_CONFIG,
        diff_ids=[sha("l1"), sha("l2")],
        history=[
            HistoryEntry(created="2024-01-01T00:00:00Z", created_by="ADD x /", comment="c"),
            HistoryEntry(created_by="ENV A=1", empty_layer=True, author="me"),
        ],
    )


def test_config_round_trips() -> None:
    image = full_image()
    decoded = oci.decode_config(oci.encode_config(image), "sha256:" + "1" * 64)
    assert decoded.id == "sha256:" + "1" * 64
    # Maps come back in the order they were written: sorted, as Go writes them.
    expected = msgspec.structs.replace(
        FULL_CONFIG, exposed_ports=["53/udp", "80/tcp"], volumes=["/cache", "/data"]
    )
    assert decoded.config == expected
    for field in ("parent", "created", "architecture", "variant", "os", "author", "comment"):
        assert getattr(decoded, field) == getattr(image, field)
    assert decoded.docker_version == image.docker_version
    assert decoded.diff_ids == image.diff_ids
    assert decoded.history == image.history


def test_config_encoding_is_compact_and_docker_shaped() -> None:
    doc = json.loads(oci.encode_config(full_image()))
    assert doc["rootfs"] == {"type": "layers", "diff_ids": [sha("l1"), sha("l2")]}
    run = doc["config"]
    assert run["ExposedPorts"] == {"53/udp": {}, "80/tcp": {}}
    assert run["Healthcheck"] == {
        "Test": ["CMD-SHELL", "true"],
        "Interval": 10,
        "Timeout": 20,
        "StartPeriod": 30,
        "Retries": 3,
    }
    assert doc["history"][1] == {"created_by": "ENV A=1", "author": "me", "empty_layer": True}
    assert b" " not in oci.encode_config(Image(id="", os="linux", architecture="amd64"))


def test_empty_fields_are_left_out_but_empty_cmd_is_kept() -> None:
    doc = json.loads(oci.encode_config(Image(id="", config=ImageConfig(cmd=[]))))
    assert doc["config"] == {"Cmd": []}
    assert "history" not in doc and "created" not in doc


def test_the_same_settings_in_another_order_make_the_same_blob() -> None:
    one = ImageConfig(labels={"a": "1", "b": "2"}, exposed_ports=["80/tcp", "443/tcp"])
    two = ImageConfig(labels={"b": "2", "a": "1"}, exposed_ports=["443/tcp", "80/tcp"])
    assert oci.encode_config(Image(id="", config=one)) == oci.encode_config(
        Image(id="", config=two)
    )


def test_encoding_is_deterministic_and_utf8() -> None:
    image = Image(id="", config=ImageConfig(labels={"é": "ü ✓"}))
    blob = oci.encode_config(image)
    assert blob == oci.encode_config(image)
    assert "ü ✓".encode() in blob


config_strategy = st.builds(
    ImageConfig,
    user=st.text(max_size=5),
    env=st.lists(st.text(max_size=5), max_size=3),
    cmd=st.none() | st.lists(st.text(max_size=5), max_size=3),
    entrypoint=st.none() | st.lists(st.text(max_size=5), max_size=3),
    working_dir=st.text(max_size=5),
    labels=st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    exposed_ports=st.lists(st.text(min_size=1, max_size=6), unique=True, max_size=3).map(sorted),
    volumes=st.lists(st.text(min_size=1, max_size=6), unique=True, max_size=3).map(sorted),
    shell=st.none() | st.lists(st.text(max_size=5), max_size=2),
    on_build=st.lists(st.text(max_size=5), max_size=2),
    args_escaped=st.booleans(),
)


@given(config_strategy)
def test_any_run_config_round_trips(config: ImageConfig) -> None:
    image = Image(id="", os="linux", architecture="amd64", config=config)
    decoded = oci.decode_config(oci.encode_config(image), "sha256:" + "2" * 64).config
    assert decoded.user == config.user
    assert decoded.env == config.env
    assert decoded.cmd == config.cmd
    assert decoded.entrypoint == config.entrypoint
    assert decoded.working_dir == config.working_dir
    assert decoded.labels == config.labels
    assert decoded.exposed_ports == config.exposed_ports
    assert decoded.volumes == config.volumes
    assert decoded.shell == config.shell
    assert decoded.on_build == config.on_build
    assert decoded.args_escaped == config.args_escaped


def test_decode_reads_an_oci_config_without_docker_extras() -> None:
    blob = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["A=1"], "Cmd": ["sh"], "ExposedPorts": {"8080/tcp": {}}},
            "rootfs": {"type": "layers", "diff_ids": [sha("x")]},
        }
    ).encode()
    image = oci.decode_config(blob, sha("id"))
    assert image.config.cmd == ["sh"]
    assert image.config.exposed_ports == ["8080/tcp"]
    assert image.diff_ids == [sha("x")]
    assert image.history == []


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"{not json", "invalid image config"),
        (b"[]", "not a JSON object"),
        (b'{"rootfs": {"type": "zfs"}}', "rootfs type must be layers"),
        (b'{"rootfs": {"diff_ids": "sha256:x"}}', "rootfs.diff_ids must be a list of strings"),
        (b'{"config": {"Cmd": "sh"}}', "Cmd must be a list of strings"),
        (b'{"config": {"Env": [1]}}', "Env must be a list of strings"),
        (b'{"history": 5}', "history must be a list"),
        (
            b'{"config": {"Healthcheck": {"Test": ["NONE"], "Interval": "10s"}}}',
            "Healthcheck.Interval must be a number",
        ),
    ],
)
def test_decode_refuses_malformed_configs(blob: bytes, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        oci.decode_config(blob, sha("id"))


# -- manifests


def manifest(media_type: str | None = oci.OCI_MANIFEST, **overrides: object) -> bytes:
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "config": {"mediaType": oci.OCI_CONFIG, "digest": sha("c"), "size": 10},
        "layers": [{"mediaType": oci.OCI_LAYER_GZIP, "digest": sha("l"), "size": 20}],
    }
    if media_type is not None:
        doc["mediaType"] = media_type
    doc.update(overrides)
    return json.dumps(doc).encode()


def test_encode_manifest_parses_back() -> None:
    config = oci.Descriptor(oci.OCI_CONFIG, sha("c"), 10)
    layers = [oci.Descriptor(oci.OCI_LAYER, sha("l"), 20)]
    parsed = oci.parse_manifest(oci.encode_manifest(config, layers))
    assert parsed == oci.Manifest(oci.OCI_MANIFEST, config, tuple(layers))


def test_parse_oci_manifest() -> None:
    parsed = oci.parse_manifest(manifest())
    assert parsed.media_type == oci.OCI_MANIFEST
    assert parsed.config == oci.Descriptor(oci.OCI_CONFIG, sha("c"), 10)
    assert parsed.layers == (oci.Descriptor(oci.OCI_LAYER_GZIP, sha("l"), 20),)


def test_parse_oci_manifest_without_media_type() -> None:
    assert oci.parse_manifest(manifest(None)).media_type == oci.OCI_MANIFEST


def test_parse_docker_schema2_manifest() -> None:
    raw = manifest(
        oci.DOCKER_MANIFEST,
        config={"mediaType": oci.DOCKER_CONFIG, "digest": sha("c"), "size": 1},
        layers=[
            {"mediaType": oci.DOCKER_LAYER_GZIP, "digest": sha("a"), "size": 2},
            {"mediaType": oci.DOCKER_FOREIGN_LAYER, "digest": sha("b"), "size": 3},
        ],
    )
    parsed = oci.parse_manifest(raw)
    assert parsed.media_type == oci.DOCKER_MANIFEST
    assert [layer.media_type for layer in parsed.layers] == [
        oci.DOCKER_LAYER_GZIP,
        oci.DOCKER_FOREIGN_LAYER,
    ]


def test_manifest_without_layers_has_none() -> None:
    assert oci.parse_manifest(manifest(layers=[])).layers == ()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"nope", "invalid manifest"),
        (manifest(schemaVersion=1), "unsupported schema version"),
        (manifest(oci.OCI_INDEX), "unsupported media type"),
        (manifest(oci.DOCKER_MANIFEST_LIST), "unsupported media type"),
        (manifest("application/vnd.docker.distribution.manifest.v1+json"), "unsupported media"),
        (manifest(config=None), "config is not a descriptor"),
        (
            manifest(config={"mediaType": oci.OCI_LAYER, "digest": sha("c"), "size": 1}),
            "unsupported config media type",
        ),
        (
            manifest(layers=[{"mediaType": "text/plain", "digest": sha("l"), "size": 1}]),
            "unsupported layer media type",
        ),
        (manifest(layers={"not": "a list"}), "layers must be a list"),
        (
            manifest(layers=[{"mediaType": oci.OCI_LAYER, "digest": sha("l"), "size": "1"}]),
            "needs a digest and a size",
        ),
        (
            manifest(layers=[{"mediaType": oci.OCI_LAYER, "digest": sha("l"), "size": -1}]),
            "needs a digest and a size",
        ),
        (
            manifest(layers=[{"mediaType": oci.OCI_LAYER, "digest": sha("l"), "size": True}]),
            "needs a digest and a size",
        ),
        (
            manifest(layers=[{"mediaType": oci.OCI_LAYER, "digest": "sha256:../../x", "size": 1}]),
            "layer digest",
        ),
        (
            manifest(config={"mediaType": oci.OCI_CONFIG, "digest": "md5:abc", "size": 1}),
            "config digest",
        ),
    ],
)
def test_parse_manifest_refuses(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message):
        oci.parse_manifest(raw)
