"""What a container inherits from its image at create: Docker's entrypoint/cmd rules,
environment merged by name, and the defaults the client left empty."""

from __future__ import annotations

import pytest

from essaim.engine.image_defaults import apply_image_config, merge_env
from essaim.errors import InvalidParameter
from essaim.model.container import ContainerConfig
from essaim.model.image import ImageConfig

IMAGE = ImageConfig(
    entrypoint=["/entry"],
    cmd=["serve", "--port", "80"],
    env=["PATH=/usr/bin", "MODE=prod"],
    working_dir="/srv",
    user="www",
    labels={"team": "web", "tier": "front"},
    stop_signal="SIGQUIT",
)


def test_nothing_given_runs_the_images_entrypoint_and_cmd() -> None:
    config = ContainerConfig(image="web")
    assert apply_image_config(config, IMAGE) == ["/entry", "serve", "--port", "80"]
    assert (config.entrypoint, config.cmd) == (["/entry"], ["serve", "--port", "80"])


def test_a_cmd_given_replaces_the_images_cmd_only() -> None:
    config = ContainerConfig(image="web", cmd=["debug"])
    assert apply_image_config(config, IMAGE) == ["/entry", "debug"]


def test_an_entrypoint_given_drops_the_images_cmd_too() -> None:
    config = ContainerConfig(image="web", entrypoint=["/bin/sh"])
    assert apply_image_config(config, IMAGE) == ["/bin/sh"]
    assert config.cmd == []


def test_an_empty_entrypoint_resets_it_and_keeps_only_the_given_cmd() -> None:
    config = ContainerConfig(image="web", entrypoint=[""], cmd=["echo", "hi"])
    assert apply_image_config(config, IMAGE) == ["echo", "hi"]
    assert config.entrypoint == []


def test_an_empty_entrypoint_alone_leaves_no_command() -> None:
    with pytest.raises(InvalidParameter, match="no command specified"):
        apply_image_config(ContainerConfig(image="web", entrypoint=[""]), IMAGE)


def test_no_command_anywhere_is_dockers_400() -> None:
    with pytest.raises(InvalidParameter, match="no command specified"):
        apply_image_config(ContainerConfig(image="scratch"), ImageConfig())


def test_the_clients_values_win_and_empty_ones_take_the_images() -> None:
    config = ContainerConfig(
        image="web", env=["MODE=dev", "EXTRA=1"], user="root", labels={"tier": "back"}
    )
    apply_image_config(config, IMAGE)
    assert config.env == ["PATH=/usr/bin", "MODE=dev", "EXTRA=1"]
    assert config.user == "root"
    assert config.working_dir == "/srv"
    assert config.labels == {"team": "web", "tier": "back"}
    assert config.stop_signal == "SIGQUIT"


def test_env_merges_by_name_keeping_first_seen_order() -> None:
    assert merge_env(["A=1", "B=2"], ["B=3", "C", "A=4"]) == ["A=4", "B=3", "C"]
