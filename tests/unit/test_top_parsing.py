"""`docker top`'s reading of `ps` output: the PID column found by its title, rows
kept by pid, thread rows following their process, commands joined back."""

from __future__ import annotations

import pytest

from essaim.engine.top import parse_ps_output, ps_argv
from essaim.errors import InvalidParameter, SystemError_

pytestmark = pytest.mark.unit

PS_EF = """\
UID        PID  PPID  C STIME TTY          TIME CMD
root         1     0  0 13:50 ?        00:00:05 /sbin/init splash
root       300   299  0 13:51 ?        00:00:00 sleep 300
root       301   300  0 13:51 ?        00:00:00 sh -c echo  two   spaces
"""


def test_keeps_only_the_given_pids_and_joins_the_command() -> None:
    table = parse_ps_output(PS_EF, {300, 301})
    assert table.titles == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert table.processes == [
        ["root", "300", "299", "0", "13:51", "?", "00:00:00", "sleep 300"],
        ["root", "301", "300", "0", "13:51", "?", "00:00:00", "sh -c echo two spaces"],
    ]


def test_pid_column_found_anywhere() -> None:
    output = "COMMAND           PID\nsleep             300\ninit                1\n"
    table = parse_ps_output(output, {300})
    assert table.processes == [["sleep", "300"]]


def test_thread_rows_follow_their_process() -> None:
    output = (
        "USER       PID %CPU COMMAND\n"
        "root       300  0.0 sleep\n"
        "root         -  0.0 -\n"
        "root         1  0.0 init\n"
        "root         -  0.0 -\n"
    )
    table = parse_ps_output(output, {300})
    assert [row[1] for row in table.processes] == ["300", "-"]


def test_no_pid_column_is_an_error() -> None:
    with pytest.raises(SystemError_, match="Couldn't find PID field in ps output"):
        parse_ps_output("COMMAND\nsleep\n", {1})


def test_ps_arguments() -> None:
    assert ps_argv("") == ["-ef"]
    assert ps_argv("-o pid,comm") == ["-o", "pid,comm"]
    assert ps_argv("-o pid=PID") == ["-o", "pid=PID"]
    with pytest.raises(InvalidParameter, match='specifying "pid,user=PID" is not allowed'):
        ps_argv("-o pid,user=PID")
