"""`HostConfig.LogConfig` on the wire: read and checked at create, shown by inspect with
the container's `LogPath`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from essaim.api.wire_fields import string_map
from essaim.errors import InvalidParameter
from essaim.model.container import Container, HostConfig
from essaim.model.log_config import JSON_FILE, LogConfigError, driver_name, validate
from essaim.model.rfc3339 import rfc3339_nano


def parse_log_config(value: Any) -> tuple[str, dict[str, str]]:
    """(driver, options) of a create request, refused as dockerd refuses them (400)."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise InvalidParameter("json: cannot unmarshal LogConfig: expected an object")
    log_type = value.get("Type") or ""
    if not isinstance(log_type, str):
        raise InvalidParameter("json: cannot unmarshal LogConfig.Type: expected a string")
    options = string_map(value.get("Config"), "LogConfig.Config")
    try:
        validate(log_type, options)
    except LogConfigError as exc:
        raise InvalidParameter(exc.message) from None
    return driver_name(log_type), options


def log_config_wire(host: HostConfig) -> dict[str, Any]:
    return {"Type": host.log_type, "Config": dict(host.log_options)}


def log_path_wire(container: Container, log: Path) -> str:
    """dockerd sets `LogPath` when a json-file logger starts, and only for that driver
    (the local driver's files are its own business): empty before the first start."""
    if container.host_config.log_type != JSON_FILE:
        return ""
    started = rfc3339_nano(container.state.started_at) or 0
    return str(log) if started > 0 else ""
