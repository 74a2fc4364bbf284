"""The config `docker commit` writes: the container's (or the client's) with `--change`
lines applied and dockerd's merge filling the gaps; the request body read as Go reads it."""

from __future__ import annotations

import json

import pytest

from essaim.api.commit import commit_reference, parse_commit_config
from essaim.engine.commit_config import (
    commit_config,
    container_run_config,
    created_by,
    merge,
)
from essaim.errors import InvalidParameter
from essaim.image import oci
from essaim.model.container import ContainerConfig
from essaim.model.image import HealthConfig, Image, ImageConfig

pytestmark = pytest.mark.unit

PATH = "PATH=/usr/sbin:/usr/bin:/sbin:/bin"


def container(**fields: object) -> ImageConfig:
    """A container's config (the commit's view of it), from busybox's plain config."""
    base: dict[str, object] = {"image": "busybox", "cmd": ["sh"], "env": [PATH]}
    base.update(fields)
    return container_run_config(ContainerConfig(**base), ImageConfig())  # type: ignore[arg-type]


def test_no_changes_and_no_config_keep_the_containers_settings() -> None:
    own = container(
        cmd=["sleep", "9"], working_dir="/srv", user="nobody", labels={"a": "1"},
        exposed_ports=["80/tcp"], volumes=["/data"], stop_signal="SIGINT",
    )  # fmt: skip
    config = commit_config(own, None, [])
    assert config.cmd == ["sleep", "9"] and config.entrypoint is None
    assert (config.working_dir, config.user, config.stop_signal) == ("/srv", "nobody", "SIGINT")
    assert config.env == [PATH] and config.labels == {"a": "1"}
    assert config.exposed_ports == ["80/tcp"] and config.volumes == ["/data"]


def test_changes_apply_over_the_containers_config() -> None:
    config = commit_config(
        container(),
        None,
        ['CMD ["httpd", "-f"]', "ENV A=b", "EXPOSE 80", "WORKDIR /x", "LABEL k=v"],
    )
    assert config.cmd == ["httpd", "-f"]
    assert config.env == [PATH, "A=b"]
    assert config.exposed_ports == ["80/tcp"]
    assert config.working_dir == "/x"
    assert config.labels == {"k": "v"}


def test_env_change_replaces_a_variable_of_the_container() -> None:
    assert commit_config(container(), None, ["ENV PATH=/bin"]).env == ["PATH=/bin"]


def test_the_clients_config_wins_and_the_container_fills_its_gaps() -> None:
    given = ImageConfig(env=["X=1", "PATH=/opt"], labels={"a": "mine"}, exposed_ports=["53/udp"])
    own = container(labels={"a": "theirs", "b": "2"}, exposed_ports=["80/tcp"], user="u")
    config = commit_config(own, given, ["ENV Y=2"])
    assert config.env == ["X=1", "PATH=/opt", "Y=2"]
    assert config.labels == {"a": "mine", "b": "2"}
    assert sorted(config.exposed_ports) == ["53/udp", "80/tcp"]
    assert config.cmd == ["sh"] and config.user == "u"


def test_an_entrypoint_given_keeps_its_own_empty_cmd() -> None:
    own = ImageConfig(cmd=["sh"], entrypoint=["/init"])
    assert merge(ImageConfig(entrypoint=["/run"]), own).cmd is None
    # An empty (not absent) entrypoint stays empty; the command comes back.
    kept = merge(ImageConfig(entrypoint=[]), own)
    assert kept.entrypoint == [] and kept.cmd == ["sh"]
    assert merge(ImageConfig(), own).entrypoint == ["/init"]


def test_a_healthcheck_is_merged_field_by_field() -> None:
    own = ImageConfig(healthcheck=HealthConfig(test=["CMD", "true"], interval=5, retries=3))
    merged = merge(ImageConfig(healthcheck=HealthConfig(retries=9)), own).healthcheck
    assert merged == HealthConfig(test=["CMD", "true"], interval=5, retries=9)


def test_a_bad_change_line_is_refused_in_dockerds_words() -> None:
    with pytest.raises(InvalidParameter, match="run is not a valid change command"):
        commit_config(container(), None, ["RUN true"])


def test_created_by_is_the_command_joined() -> None:
    own = ContainerConfig(image="busybox", cmd=["sh", "-c", "echo hi > /x"])
    assert created_by(own) == "sh -c echo hi > /x"


def test_the_images_ports_and_volumes_count_as_the_containers() -> None:
    image = ImageConfig(exposed_ports=["80/tcp", "53/udp"], volumes=["/data"])
    own = ContainerConfig(image="web", exposed_ports=["80/tcp", "8080/tcp"], volumes=["/logs"])
    config = container_run_config(own, image)
    assert config.exposed_ports == ["80/tcp", "8080/tcp", "53/udp"]
    assert config.volumes == ["/logs", "/data"]


def test_a_body_without_config_fields_is_no_config() -> None:
    assert parse_commit_config(None) is None
    assert parse_commit_config({}) is None
    assert parse_commit_config({"HostConfig": {}}) is None


def test_a_body_config_is_read_as_go_reads_it() -> None:
    config = parse_commit_config(
        {"cmd": "top", "Env": ["A=1"], "ExposedPorts": {"80/tcp": {}}, "Entrypoint": None}
    )
    assert config is not None
    assert config.cmd == ["top"] and config.env == ["A=1"]
    assert config.exposed_ports == ["80/tcp"] and config.entrypoint is None


def test_a_body_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(InvalidParameter):
        parse_commit_config({"Env": 3})
    with pytest.raises(InvalidParameter):
        parse_commit_config([1])


def test_commit_reference_defaults_the_tag_and_refuses_digests() -> None:
    assert commit_reference("", "v1") is None
    ref = commit_reference("docker.io/library/myimg", "")
    assert ref is not None and ref.familiar() == "myimg:latest"
    tagged = commit_reference("myimg", "v2")
    assert tagged is not None and tagged.familiar() == "myimg:v2"
    with pytest.raises(InvalidParameter, match="cannot import digest reference"):
        commit_reference("myimg@sha256:" + "a" * 64, "")
    with pytest.raises(InvalidParameter, match="invalid reference format"):
        commit_reference("My/Img", "")


def test_the_commit_record_survives_the_config_blob() -> None:
    own = ImageConfig(cmd=["sh"], env=[PATH], labels={"a": "1"})
    image = Image(
        id="", created="2024-01-01T00:00:00Z", architecture="amd64", os="linux",
        config=ImageConfig(cmd=["cat"]), container="c" * 64, container_config=own,
    )  # fmt: skip
    raw = oci.encode_config(image)
    doc = json.loads(raw)
    assert doc["container"] == "c" * 64
    assert doc["container_config"] == {"Env": [PATH], "Cmd": ["sh"], "Labels": {"a": "1"}}
    decoded = oci.decode_config(raw, "sha256:" + "0" * 64)
    assert (decoded.container, decoded.container_config) == ("c" * 64, own)
    assert "container" not in json.loads(oci.encode_config(Image(id="", config=own)))
