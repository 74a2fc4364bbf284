"""What the local driver accepts: volume names (they become directory names, so they can
never leave the volumes root) and driver options, refused in dockerd's words.
"""

from __future__ import annotations

import re
import secrets

from essaim.errors import InvalidParameter

# moby's RestrictedNameChars: no slash and no leading dot, so no path escapes.
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"

_VALID_OPTIONS = ("type", "o", "device", "size")
# An option given without the ones it needs (moby's mandatoryOpts), checked in this order.
_REQUIRED_WITH = (("device", ("type",)), ("type", ("device",)), ("o", ("device", "type")))


def new_anonymous_name() -> str:
    """64 hex digits, as dockerd names volumes created without a name."""
    return secrets.token_hex(32)


def validate_volume_name(name: str) -> None:
    if len(name) == 1:
        raise InvalidParameter(
            f"create {name}: volume name is too short, names should be at least two "
            "alphanumeric characters"
        )
    if not _NAME.fullmatch(name):
        raise InvalidParameter(
            f'create {name}: "{name}" includes invalid characters for a local volume name, '
            f'only "{_NAME_CHARS}" are allowed. If you intended to pass a host directory, '
            "use absolute path"
        )


def validate_local_options(name: str, options: dict[str, str]) -> None:
    for key in options:
        if key not in _VALID_OPTIONS:
            raise InvalidParameter(f'create {name}: invalid option: "{key}"')
    for key, needs in _REQUIRED_WITH:
        if key in options:
            for required in needs:
                if required not in options:
                    raise InvalidParameter(f'create {name}: missing required option: "{required}"')
    if options.get("size"):
        # Sizes need project quotas on the backing filesystem; none are set up here.
        raise InvalidParameter(f"create {name}: quota size requested but no quota support")
