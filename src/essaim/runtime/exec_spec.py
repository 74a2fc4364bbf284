"""The OCI process of an exec: the container's own process (rlimits, security settings)
with the exec's command, user, environment, working directory and terminal.
"""

from __future__ import annotations

import copy
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from essaim.errors import InvalidParameter
from essaim.runtime.users import ResolvedUser


@dataclass(frozen=True)
class ExecRequest:
    """What `docker exec` asks for, its user already resolved in the container."""

    args: Sequence[str]
    env: Sequence[str]  # the container's environment and the exec's, merged
    cwd: str
    user: ResolvedUser
    tty: bool
    console_size: tuple[int, int] | None = None
    # With --privileged: every capability the daemon holds.
    privileged_capabilities: Sequence[str] | None = None


def exec_process(
    container_process: Mapping[str, object], request: ExecRequest
) -> dict[str, object]:
    """`container_process` is the `process` object of the container's config.json."""
    if not request.args:
        raise InvalidParameter("No exec command specified")
    if request.cwd and not posixpath.isabs(request.cwd):
        raise InvalidParameter(
            f"the working directory '{request.cwd}' is invalid, it needs to be an absolute path"
        )
    process = copy.deepcopy(dict(container_process))
    user = request.user
    process["args"] = list(request.args)
    process["env"] = list(request.env)
    process["cwd"] = request.cwd or str(process.get("cwd") or "/")
    process["terminal"] = request.tty
    process["user"] = {"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids}
    process.pop("consoleSize", None)
    if request.tty and request.console_size is not None and min(request.console_size) > 0:
        rows, cols = request.console_size
        process["consoleSize"] = {"height": rows, "width": cols}
    capabilities = process.get("capabilities")
    bounding = (
        list(request.privileged_capabilities)
        if request.privileged_capabilities is not None
        else list(capabilities.get("bounding", [])) if isinstance(capabilities, dict) else []
    )  # fmt: skip
    # As for the container's own process: a non-root user keeps only the bounding set.
    granted = bounding if user.uid == 0 else []
    process["capabilities"] = {
        "bounding": bounding,
        "effective": granted,
        "permitted": granted,
        "inheritable": [],
        "ambient": [],
    }
    return process
