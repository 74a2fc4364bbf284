"""The run configuration a `docker commit` gives its image, as dockerd builds it: the
client's config (or the container's), `--change` lines applied, the container's gaps filled.
"""

from __future__ import annotations

import msgspec

from essaim.engine.image_defaults import merge_healthcheck
from essaim.image.changes import apply_changes
from essaim.model.container import ContainerConfig
from essaim.model.image import ImageConfig


def container_run_config(config: ContainerConfig, image: ImageConfig) -> ImageConfig:
    """The container's config in image terms, as dockerd holds it after create: what
    it inherited from `image` (its own image's config) is in it already, but for the
    ports and volumes, added here; an empty command or entrypoint is none, as in Go."""
    ports = [p for p in image.exposed_ports if p not in config.exposed_ports]
    volumes = [v for v in image.volumes if v not in config.volumes]
    return ImageConfig(
        user=config.user,
        env=list(config.env),
        cmd=list(config.cmd) or None,
        entrypoint=list(config.entrypoint) or None,
        working_dir=config.working_dir,
        labels=dict(config.labels),
        stop_signal=config.stop_signal,
        exposed_ports=[*config.exposed_ports, *ports],
        volumes=[*config.volumes, *volumes],
        healthcheck=config.healthcheck,
    )


def created_by(config: ContainerConfig) -> str:
    """The history entry's `created_by`: the container's command, space-joined."""
    return " ".join(config.cmd)


def merge(user: ImageConfig, container: ImageConfig) -> ImageConfig:
    """dockerd's commit merge: what `user` leaves empty comes from the container's config;
    ports, labels, volumes and variables of the container's are added to the user's."""
    env = list(user.env)
    if not env:
        env = list(container.env)
    else:
        names = {item.split("=", 1)[0] for item in env}
        env += [item for item in container.env if item.split("=", 1)[0] not in names]
    cmd, entrypoint = user.cmd, user.entrypoint
    if not entrypoint:
        if not cmd:
            cmd = container.cmd
        if entrypoint is None:
            entrypoint = container.entrypoint
    ports = list(user.exposed_ports) + [
        port for port in container.exposed_ports if port not in user.exposed_ports
    ]
    volumes = list(user.volumes) + [v for v in container.volumes if v not in user.volumes]
    return msgspec.structs.replace(
        user,
        user=user.user or container.user,
        env=env,
        cmd=cmd,
        entrypoint=entrypoint,
        working_dir=user.working_dir or container.working_dir,
        labels={**container.labels, **user.labels},
        stop_signal=user.stop_signal or container.stop_signal,
        exposed_ports=ports,
        volumes=volumes,
        healthcheck=merge_healthcheck(container.healthcheck, user.healthcheck),
    )


def commit_config(own: ImageConfig, given: ImageConfig | None, changes: list[str]) -> ImageConfig:
    """The committed image's config: `given` (the request body's, or the container's
    own when there is none) with `changes` applied, then merged with the container's.
    A bad change line is InvalidParameter in dockerd's words."""
    changed = apply_changes(given if given is not None else own, changes)
    return merge(changed, own)
