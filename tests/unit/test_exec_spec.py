"""The process of an exec: the container's process with the exec's command, identity and
terminal; capabilities as for the container, all of them with --privileged."""

from typing import Any

import pytest

from essaim.errors import InvalidParameter
from essaim.runtime.exec_spec import ExecRequest, exec_process
from essaim.runtime.users import ResolvedUser

pytestmark = pytest.mark.unit

CONTAINER: dict[str, Any] = {
    "terminal": False,
    "user": {"uid": 0, "gid": 0, "additionalGids": []},
    "args": ["sleep", "1000"],
    "env": ["PATH=/bin"],
    "cwd": "/srv",
    "capabilities": {"bounding": ["CAP_CHOWN", "CAP_KILL"], "effective": ["CAP_CHOWN"]},
    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 20000, "soft": 1024}],
    "noNewPrivileges": True,
    "consoleSize": {"height": 10, "width": 10},
}
ROOT = ResolvedUser(uid=0, gid=0, additional_gids=[])


def request(**changes: Any) -> ExecRequest:
    values: dict[str, Any] = {"args": ["ls"], "env": ["PATH=/bin", "A=1"], "cwd": "", "user": ROOT,
                              "tty": False}  # fmt: skip
    values.update(changes)
    return ExecRequest(**values)


def test_the_container_process_is_kept_but_for_the_exec_fields() -> None:
    process = exec_process(CONTAINER, request())
    assert process["args"] == ["ls"]
    assert process["env"] == ["PATH=/bin", "A=1"]
    assert process["cwd"] == "/srv"  # the container's working directory by default
    assert process["rlimits"] == CONTAINER["rlimits"]
    assert process["noNewPrivileges"] is True
    assert "consoleSize" not in process
    assert CONTAINER["args"] == ["sleep", "1000"]  # the container's own is untouched


def test_root_gets_the_bounding_set_a_user_none() -> None:
    root = exec_process(CONTAINER, request())["capabilities"]
    assert root["effective"] == root["permitted"] == ["CAP_CHOWN", "CAP_KILL"]
    nobody = ResolvedUser(uid=65534, gid=65534, additional_gids=[])
    other = exec_process(CONTAINER, request(user=nobody))
    assert other["capabilities"]["effective"] == []
    assert other["user"] == {"uid": 65534, "gid": 65534, "additionalGids": []}


def test_privileged_gets_every_capability_given() -> None:
    everything = ["CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN"]
    caps = exec_process(CONTAINER, request(privileged_capabilities=everything))["capabilities"]
    assert caps["bounding"] == caps["effective"] == everything


def test_tty_with_a_size() -> None:
    process = exec_process(CONTAINER, request(tty=True, console_size=(40, 120), cwd="/tmp"))
    assert process["terminal"] is True
    assert process["consoleSize"] == {"height": 40, "width": 120}
    assert process["cwd"] == "/tmp"


def test_bad_requests_are_refused() -> None:
    with pytest.raises(InvalidParameter, match="No exec command specified"):
        exec_process(CONTAINER, request(args=[]))
    with pytest.raises(InvalidParameter, match="needs to be an absolute path"):
        exec_process(CONTAINER, request(cwd="tmp"))
