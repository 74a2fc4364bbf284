"""Parse Docker's --security-opt strings into what the OCI config needs.

Accepted: no-new-privileges[=|:bool], seccomp=unconfined|builtin|<profile JSON>, and
label/apparmor options, which are accepted and ignored (no LSM is configured here).
"""

import msgspec

from essaim.errors import InvalidParameter

# strconv.ParseBool's spellings: Docker parses these values with it.
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})

UNCONFINED = "unconfined"


class SecurityOptions(msgspec.Struct, frozen=True, kw_only=True):
    no_new_privileges: bool = False
    # "" for Docker's default profile, "unconfined" for none, else a profile's JSON text.
    seccomp: str = ""


def parse_security_opts(options: list[str]) -> SecurityOptions:
    """Docker's --security-opt list; an unknown key is an error, as in Docker."""
    no_new_privileges = False
    seccomp = ""
    for option in options:
        if option == "no-new-privileges":
            no_new_privileges = True
            continue
        if option == "disable":  # label=disable's short form
            continue
        # "=" is the separator; ":" is the deprecated one Docker still accepts.
        separator = "=" if "=" in option else ":"
        key, found, value = option.partition(separator)
        if not found:
            raise InvalidParameter(f'invalid --security-opt 1: "{option}"')
        if key in ("label", "apparmor"):
            continue
        if key == "seccomp":
            seccomp = "" if value == "builtin" else value
            continue
        if key == "no-new-privileges":
            if value in _TRUE:
                no_new_privileges = True
            elif value in _FALSE:
                no_new_privileges = False
            else:
                raise InvalidParameter(f'invalid --security-opt 2: "{option}"')
            continue
        raise InvalidParameter(f'invalid --security-opt 2: "{option}"')
    return SecurityOptions(no_new_privileges=no_new_privileges, seccomp=seccomp)
