"""The init that `docker run --init` puts in front of a container's command (Docker's
docker-init, a static tini): found on the host, bind-mounted read-only, prepended to args.
"""

from __future__ import annotations

import functools
import shutil
import subprocess

from essaim.errors import InvalidParameter
from essaim.runtime.mounts import Mount, bind_mount

# Where dockerd mounts it; programs and scripts in images look for this path.
IN_CONTAINER_PATH = "/sbin/docker-init"
# Looked up on PATH in this order. It must be static: it runs on the image's libc or none.
CANDIDATES = ("docker-init", "tini-static")


@functools.cache
def find_init_binary() -> str | None:
    """The host path of the init binary, or None when none is installed."""
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def init_binary() -> str:
    """The init binary, or the error dockerd gives when it has none."""
    found = find_init_binary()
    if found is None:
        raise InvalidParameter(f'exec: "{CANDIDATES[0]}": executable file not found in $PATH')
    return found


def init_mount(host_path: str) -> Mount:
    return bind_mount(host_path, IN_CONTAINER_PATH, readonly=True)


def init_args(args: list[str]) -> list[str]:
    """The process args with the init first: it runs the command as its child."""
    return [IN_CONTAINER_PATH, "--", *args]


@functools.cache
def init_version() -> str:
    """What `docker info` shows as InitCommit: tini's version ("0.19.0"), or ""."""
    found = find_init_binary()
    if found is None:
        return ""
    try:
        out = subprocess.run(
            [found, "--version"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    # "tini version 0.19.0 - git.de40ad0": dockerd shows the commit when there is one.
    text = out.strip()
    if " - git." in text:
        return text.rsplit(" - git.", 1)[1]
    return text.rsplit(" ", 1)[-1] if text else ""
