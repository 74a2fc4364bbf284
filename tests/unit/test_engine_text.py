"""Pure pieces of the engine: log lines, status text, framing, detach keys, names."""

from __future__ import annotations

import pytest

from essaim.engine.attach import DEFAULT_DETACH_KEYS, frame, parse_detach_keys
from essaim.engine.logs import parse_line
from essaim.engine.naming import generated_name, validate_name
from essaim.engine.start import exit_code_for_start_error, start_error_message
from essaim.engine.status import human_duration
from essaim.engine.stopping import parse_signal
from essaim.errors import Conflict, InvalidParameter
from essaim.model.rfc3339 import format_rfc3339_nano as format_time_nano
from essaim.runtime.base import RuntimeError_


def test_k8s_file_lines_parse_with_partial_lines() -> None:
    full = parse_line(b"2026-11-23T09:13:11.374219122+00:00 stdout F hello world")
    assert full is not None
    assert (full.stream, full.data) == ("stdout", b"hello world\n")
    assert format_time_nano(full.time_nano) == "2026-11-23T09:13:11.374219122Z"
    partial = parse_line(b"2026-11-23T10:13:11.5+01:00 stderr P no newline")
    assert partial is not None
    assert (partial.stream, partial.data) == ("stderr", b"no newline")
    assert format_time_nano(partial.time_nano) == "2026-11-23T09:13:11.5Z"
    assert parse_line(b"garbage") is None


def test_human_durations_match_docker() -> None:
    assert human_duration(0.3) == "Less than a second"
    assert human_duration(1.2) == "1 second"
    assert human_duration(42) == "42 seconds"
    assert human_duration(65) == "About a minute"
    assert human_duration(60 * 5) == "5 minutes"
    assert human_duration(3600) == "About an hour"
    assert human_duration(3600 * 5) == "5 hours"
    assert human_duration(3600 * 24 * 3) == "3 days"


def test_multiplexed_frame_header() -> None:
    assert frame(1, b"hi") == b"\x01\x00\x00\x00\x00\x00\x00\x02hi"
    assert frame(2, b"") == b"\x02\x00\x00\x00\x00\x00\x00\x00"


def test_detach_keys() -> None:
    assert parse_detach_keys("") == DEFAULT_DETACH_KEYS
    assert parse_detach_keys("ctrl-a,x") == b"\x01x"
    with pytest.raises(InvalidParameter):
        parse_detach_keys("ctrl-")


def test_signals_by_name_and_number() -> None:
    assert parse_signal("HUP") == parse_signal("SIGHUP") == parse_signal("1") == 1
    assert parse_signal("winch") == 28
    assert parse_signal(None) == 9
    with pytest.raises(InvalidParameter, match="Invalid signal: NOPE"):
        parse_signal("NOPE")
    with pytest.raises(InvalidParameter):
        parse_signal("99")


def test_start_errors_map_to_dockers_exit_codes() -> None:
    assert exit_code_for_start_error('exec: "x": executable file not found in $PATH') == 127
    assert exit_code_for_start_error("exec /etc/passwd: permission denied") == 126
    assert exit_code_for_start_error("something else") == 128


def test_start_errors_read_as_dockerd_words_them() -> None:
    refused = RuntimeError_('exec: "nope": executable file not found in $PATH')
    assert start_error_message(refused) == (
        "failed to create task for container: failed to create shim task: OCI runtime "
        'create failed: exec: "nope": executable file not found in $PATH: unknown'
    )
    assert start_error_message(Conflict("cannot join network")) == "cannot join network"


def test_names() -> None:
    assert validate_name("/web-1") == "web-1"
    with pytest.raises(InvalidParameter, match="Invalid container name"):
        validate_name("bad name")
    assert "_" in generated_name()
