"""What a container takes from its image at create: the command (entrypoint and cmd as
Docker combines them), environment merged by name, working dir, user, labels, stop signal.
"""

from __future__ import annotations

from essaim.errors import InvalidParameter
from essaim.model.container import ContainerConfig
from essaim.model.image import HealthConfig, ImageConfig


def apply_image_config(config: ContainerConfig, image_config: ImageConfig) -> list[str]:
    """Fill `config` in from the image's defaults and return the argv to run. An
    entrypoint given at create drops the image's cmd too, as in Docker."""
    entrypoint = config.entrypoint if config.entrypoint else list(image_config.entrypoint or [])
    cmd = config.cmd
    if not cmd and not config.entrypoint:
        cmd = list(image_config.cmd or [])
    if entrypoint == [""]:
        # `--entrypoint ""` (and the builder's RUN): no entrypoint at all, and, an
        # entrypoint having been given, not the image's command either.
        entrypoint = []
    argv = [*entrypoint, *cmd]
    if not argv:
        raise InvalidParameter("no command specified")
    config.env = merge_env(list(image_config.env or []), config.env)
    config.cmd = cmd
    config.entrypoint = entrypoint
    config.working_dir = config.working_dir or image_config.working_dir or ""
    config.user = config.user or image_config.user or ""
    config.labels = {**(image_config.labels or {}), **config.labels}
    config.stop_signal = config.stop_signal or image_config.stop_signal or ""
    config.healthcheck = merge_healthcheck(image_config.healthcheck, config.healthcheck)
    return argv


def merge_healthcheck(
    image: HealthConfig | None, given: HealthConfig | None
) -> HealthConfig | None:
    """dockerd's merge: what create leaves at zero (or an empty test) comes from the image."""
    if given is None or image is None:
        return given if given is not None else image
    return HealthConfig(
        test=given.test or image.test,
        interval=given.interval or image.interval,
        timeout=given.timeout or image.timeout,
        start_period=given.start_period or image.start_period,
        start_interval=given.start_interval or image.start_interval,
        retries=given.retries or image.retries,
    )


def merge_env(image_env: list[str], env: list[str]) -> list[str]:
    """`KEY=value` lists, the later one winning per key, in first-seen key order."""
    merged: dict[str, str] = {}
    for item in [*image_env, *env]:
        key = item.split("=", 1)[0]
        merged[key] = item
    return list(merged.values())
