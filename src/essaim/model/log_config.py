"""A container's logging configuration (`HostConfig.LogConfig`): which drivers and options
are accepted (refused in moby's words), what they mean for rotation and `--details`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import quote_plus

from essaim.model import go_values

_T = TypeVar("_T")

JSON_FILE = "json-file"
LOCAL = "local"
NONE = "none"
DEFAULT_DRIVER = JSON_FILE
# The drivers that keep a log file; `none` is not a driver in moby either, only a name
# it recognises before looking drivers up.
DRIVERS = (JSON_FILE, LOCAL)

# Options every driver but `none` accepts (moby's builtInLogOpts). essaim's conmon never
# blocks the container on a slow reader, so `mode` changes nothing here.
_BUILT_IN = frozenset({"mode", "max-buffer-size"})
_MODES = ("", "blocking", "non-blocking")
_ATTRIBUTES = ("labels", "labels-regex", "env", "env-regex", "tag")
_OPTIONS = {
    JSON_FILE: frozenset({"max-file", "max-size", "compress", *_ATTRIBUTES}),
    LOCAL: frozenset({"max-file", "max-size", "compress", *_ATTRIBUTES}),
}
# The local driver's defaults (moby's daemon/logger/local): 20 MiB, 5 files, gzip.
LOCAL_MAX_SIZE = 20 * 1024 * 1024
LOCAL_MAX_FILES = 5
# The prefix dockerd puts on what a driver refuses when it starts the logger.
_INIT_FAILED = "failed to initialize logging driver: "


class LogConfigError(ValueError):
    """A configuration `create` refuses; the text is moby's."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Rotation:
    """When the log file is rotated and how many files are kept (the live one included)."""

    max_size: int  # bytes; the live file is rotated once it has at least this many
    max_files: int
    compress: bool  # gzip the rotated files


def driver_name(log_type: str) -> str:
    """The driver a `Type` names: an empty one is the daemon's default, as in moby."""
    return log_type or DEFAULT_DRIVER


def validate(log_type: str, options: Mapping[str, str]) -> None:
    """Refuse what dockerd refuses, in its words. moby checks the driver and option names
    at create and the option values when the logger starts; both are checked here, before
    anything is made, with the start-time wording for the values."""
    name = driver_name(log_type)
    if name == NONE:
        return  # moby skips every check for it
    mode = options.get("mode", "")
    if mode not in _MODES:
        raise LogConfigError(f"logger: logging mode not supported: {mode}")
    if "max-buffer-size" in options:
        if mode != "non-blocking":
            raise LogConfigError(
                "logger: max-buffer-size option is only supported with 'mode=non-blocking'"
            )
        try:
            _go(go_values.parse_ram_size, options["max-buffer-size"])
        except LogConfigError as exc:
            raise LogConfigError(f"error parsing option max-buffer-size: {exc.message}") from None
    allowed = _OPTIONS.get(name)
    if allowed is None:
        raise LogConfigError(f"logger: no log driver named '{name}' is registered")
    for key in sorted(options):
        if key in _BUILT_IN or key in allowed:
            continue
        if name == JSON_FILE:
            raise LogConfigError(f"unknown log opt '{key}' for json-file log driver")
        raise LogConfigError(f"unknown log opt '{key}' for log driver {name}")
    try:
        _rotation_checked(name, options)
        _check_patterns(options)
        _check_tag(options.get("tag", ""))
    except LogConfigError as exc:
        raise LogConfigError(_INIT_FAILED + exc.message) from None


def rotation(log_type: str, options: Mapping[str, str]) -> Rotation | None:
    """The rotation a valid configuration asks for; None when the file only grows."""
    name = driver_name(log_type)
    if name not in DRIVERS:
        return None
    return _rotation_checked(name, options)


def _rotation_checked(name: str, options: Mapping[str, str]) -> Rotation | None:
    if name == LOCAL:
        return _local_rotation(options)
    max_size = -1
    if "max-size" in options:
        max_size = _go(go_values.parse_human_size, options["max-size"])
        if max_size <= 0:
            raise LogConfigError("max-size must be a positive number")
    max_files = 1
    if "max-file" in options:
        max_files = _go(go_values.atoi, options["max-file"])
        if max_files < 1:
            raise LogConfigError("max-file cannot be less than 1")
    compress = False
    if "compress" in options:
        compress = _go(go_values.parse_bool, options["compress"])
        if compress and (max_files == 1 or max_size == -1):
            raise LogConfigError(
                "compress cannot be true when max-file is less than 2 or max-size is not set"
            )
    if max_size == -1:
        return None
    return Rotation(max_size, max_files, compress)


def _local_rotation(options: Mapping[str, str]) -> Rotation | None:
    max_size, max_files, compress = LOCAL_MAX_SIZE, LOCAL_MAX_FILES, True
    if "max-size" in options:
        value = options["max-size"]
        try:
            max_size = _go(go_values.parse_human_size, value)
        except LogConfigError as exc:
            raise LogConfigError(f"invalid value for max-size: {value}: {exc.message}") from None
    if "max-file" in options:
        value = options["max-file"]
        try:
            max_files = _go(go_values.atoi, value)
        except LogConfigError as exc:
            raise LogConfigError(f"invalid value for max-file: {value}: {exc.message}") from None
    if "compress" in options:
        try:
            compress = _go(go_values.parse_bool, options["compress"])
        except LogConfigError as exc:
            raise LogConfigError(f"invalid boolean value for compress: {exc.message}") from None
    if max_files < 0:
        raise LogConfigError("max-file must not be negative")
    if compress and max_files <= 1:
        raise LogConfigError("compression cannot be enabled when max file count is 1")
    if max_size == 0:
        return None  # no limit
    return Rotation(max_size, max(max_files, 1), compress)


def _go(read: Callable[[str], _T], text: str) -> _T:
    """A value read the Go way; its error, in Go's words, as a refusal."""
    try:
        return read(text)
    except ValueError as exc:
        raise LogConfigError(str(exc)) from None


def _check_patterns(options: Mapping[str, str]) -> None:
    for key in ("labels-regex", "env-regex"):
        pattern = options.get(key, "")
        if pattern:
            _compile(pattern)


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        # Go's regexp words its errors its own way; the cause and the pattern are kept.
        raise LogConfigError(f"error parsing regexp: {exc.msg}: `{pattern}`") from None


# --- `--details`: the attributes each line carries --------------------------------------


@dataclass(frozen=True, slots=True)
class TagFields:
    """What a `tag` template may name (moby's logger.Info methods and fields)."""

    container_id: str
    container_name: str  # without the leading slash
    image_id: str  # "sha256:..."
    image_name: str
    command: str

    def value(self, field: str) -> str | None:
        image_hex = self.image_id.partition(":")[2] or self.image_id
        return {
            "ID": self.container_id[:12],
            "FullID": self.container_id,
            "ContainerID": self.container_id,
            "Name": self.container_name,
            "ContainerName": "/" + self.container_name,
            "ImageID": image_hex[:12],
            "ImageFullID": self.image_id,
            "ContainerImageID": self.image_id,
            "ImageName": self.image_name,
            "ContainerImageName": self.image_name,
            "DaemonName": "docker",
            "Command": self.command,
        }.get(field)


_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")
_FIELD = re.compile(r"\.([A-Za-z_]\w*)")
_KNOWN_FIELDS = TagFields("", "", "", "", "")


def _check_tag(template: str) -> None:
    render_tag(template, _KNOWN_FIELDS)


def render_tag(template: str, fields: TagFields) -> str:
    """A `tag` template: text and `{{.Field}}` actions, the form log tags are written in
    (a subset of Go's templates; other actions are refused)."""

    def replace(match: re.Match[str]) -> str:
        action = match.group(1)
        field = _FIELD.fullmatch(action)
        if field is None:
            raise LogConfigError(f'template: log-tag:1: function "{action}" not defined')
        value = fields.value(field.group(1))
        if value is None:
            raise LogConfigError(
                f'template: log-tag:1:{match.start() + 2}: executing "log-tag" at '
                f"<{action}>: can't evaluate field {field.group(1)} in type *logger.Info"
            )
        return value

    return _ACTION.sub(replace, template)


def attributes(
    options: Mapping[str, str],
    labels: Mapping[str, str],
    env: list[str],
    tag: TagFields,
) -> dict[str, str]:
    """The attributes moby's file drivers store with each line (its ExtraAttributes, and
    `tag` when one is set): the labels and environment variables the options name."""
    extra: dict[str, str] = {}
    for name in _names(options.get("labels", "")):
        if name in labels:
            extra[name] = labels[name]
    if pattern := options.get("labels-regex", ""):
        compiled = _compile(pattern)
        extra.update((k, v) for k, v in labels.items() if compiled.search(k))
    variables: dict[str, str] = {}
    for item in env:
        key, sep, value = item.partition("=")
        if sep:
            variables[key] = value
    for name in _names(options.get("env", "")):
        if name in variables:
            extra[name] = variables[name]
    if pattern := options.get("env-regex", ""):
        compiled = _compile(pattern)
        extra.update((k, v) for k, v in variables.items() if compiled.search(k))
    if template := options.get("tag", ""):
        rendered = render_tag(template, tag)
        if rendered:
            extra["tag"] = rendered
    return extra


def _names(value: str) -> list[str]:
    return value.split(",") if value else []


def details_prefix(attrs: Mapping[str, str]) -> bytes:
    """What `details=1` puts before each line: the attributes sorted by key, each
    `key=value` query-escaped, joined by commas, then one space (just the space when
    there are none, as dockerd writes it)."""
    pairs = (f"{quote_plus(k, safe='')}={quote_plus(v, safe='')}" for k, v in sorted(attrs.items()))
    return (",".join(pairs) + " ").encode()
