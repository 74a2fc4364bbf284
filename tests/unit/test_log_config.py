"""Log configuration as dockerd takes it: driver and option checks with moby's words, size
units as go-units reads them, the rotation each setting means, and `--details` prefixes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from essaim.model.go_values import atoi, parse_bool, parse_human_size, parse_ram_size
from essaim.model.log_config import (
    LOCAL_MAX_SIZE,
    LogConfigError,
    Rotation,
    TagFields,
    attributes,
    details_prefix,
    driver_name,
    render_tag,
    rotation,
    validate,
)

pytestmark = pytest.mark.unit

TAG = TagFields(
    container_id="0123456789abcdef" * 4,
    container_name="web",
    image_id="sha256:" + "fedcba9876543210" * 4,
    image_name="busybox",
    command="sh -c true",
)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("10", 10),
        ("10k", 10_000),
        ("10K", 10_000),
        ("10kb", 10_000),
        ("10KiB", 10_000),  # FromHumanSize ignores the "i": still decimal
        ("1.5m", 1_500_000),
        ("2g", 2_000_000_000),
        ("3 m", 3_000_000),
        ("7b", 7),
        ("5.", 5),
    ],
)
def test_max_size_reads_units_as_go_units_from_human_size(text: str, size: int) -> None:
    assert parse_human_size(text) == size


def test_ram_size_reads_binary_units() -> None:
    assert parse_ram_size("10k") == 10 * 1024
    assert parse_ram_size("2m") == 2 * 1024 * 1024


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "invalid size: 'abc'"),
        ("", "invalid size: ''"),
        ("-5m", "invalid size: '-5m'"),
        ("10x", "invalid suffix: 'x'"),
        ("10kbb", "invalid suffix: 'kbb'"),
        ("10kx", "invalid suffix: 'kx'"),
        ("1.2.3m", 'strconv.ParseFloat: parsing "1.2.3": invalid syntax'),
    ],
)
def test_bad_sizes_get_go_units_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_human_size(text)
    assert str(caught.value) == message


@given(st.integers(min_value=0, max_value=10**12))
def test_plain_byte_counts_read_back(n: int) -> None:
    assert parse_human_size(str(n)) == n


def test_go_number_parsing_keeps_go_errors() -> None:
    assert atoi("+3") == 3
    with pytest.raises(ValueError, match=r'strconv.Atoi: parsing "3 ": invalid syntax'):
        atoi("3 ")
    assert parse_bool("T") is True
    assert parse_bool("0") is False
    with pytest.raises(ValueError, match=r'strconv.ParseBool: parsing "yes": invalid syntax'):
        parse_bool("yes")


def test_an_empty_type_is_the_default_json_file() -> None:
    assert driver_name("") == "json-file"
    validate("", {"max-size": "1m"})


@pytest.mark.parametrize(
    ("log_type", "options", "message"),
    [
        ("x", {}, "logger: no log driver named 'x' is registered"),
        ("syslog", {}, "logger: no log driver named 'syslog' is registered"),
        ("json-file", {"foo": "1"}, "unknown log opt 'foo' for json-file log driver"),
        ("", {"b-opt": "1", "a-opt": "1"}, "unknown log opt 'a-opt' for json-file log driver"),
        ("local", {"foo": "1"}, "unknown log opt 'foo' for log driver local"),
        ("json-file", {"mode": "fast"}, "logger: logging mode not supported: fast"),
        (
            "json-file",
            {"max-buffer-size": "1m"},
            "logger: max-buffer-size option is only supported with 'mode=non-blocking'",
        ),
        (
            "json-file",
            {"mode": "non-blocking", "max-buffer-size": "x"},
            "error parsing option max-buffer-size: invalid size: 'x'",
        ),
    ],
)
def test_create_refuses_drivers_and_options_in_mobys_words(
    log_type: str, options: dict[str, str], message: str
) -> None:
    with pytest.raises(LogConfigError) as caught:
        validate(log_type, options)
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max-size": "0"}, "max-size must be a positive number"),
        ({"max-size": "abc"}, "invalid size: 'abc'"),
        ({"max-file": "0"}, "max-file cannot be less than 1"),
        ({"max-file": "two"}, 'strconv.Atoi: parsing "two": invalid syntax'),
        ({"compress": "maybe"}, 'strconv.ParseBool: parsing "maybe": invalid syntax'),
        (
            {"compress": "true", "max-size": "1m"},
            "compress cannot be true when max-file is less than 2 or max-size is not set",
        ),
        (
            {"compress": "true", "max-file": "3"},
            "compress cannot be true when max-file is less than 2 or max-size is not set",
        ),
        ({"labels-regex": "("}, "error parsing regexp: "),
        ({"tag": "{{.Nope}}"}, "can't evaluate field Nope"),
    ],
)
def test_json_file_values_are_refused_as_its_logger_refuses_them(
    options: dict[str, str], message: str
) -> None:
    with pytest.raises(LogConfigError) as caught:
        validate("json-file", options)
    assert caught.value.message.startswith("failed to initialize logging driver: ")
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max-file": "1"}, "compression cannot be enabled when max file count is 1"),
        ({"max-file": "-1", "compress": "false"}, "max-file must not be negative"),
        ({"max-size": "big"}, "invalid value for max-size: big: invalid size: 'big'"),
        (
            {"compress": "x"},
            'invalid boolean value for compress: strconv.ParseBool: parsing "x": invalid syntax',
        ),
    ],
)
def test_local_values_are_refused_as_the_local_driver_refuses_them(
    options: dict[str, str], message: str
) -> None:
    with pytest.raises(LogConfigError) as caught:
        validate("local", options)
    assert caught.value.message == "failed to initialize logging driver: " + message


def test_none_takes_anything_as_moby_does() -> None:
    validate("none", {"max-size": "nonsense", "whatever": "1"})
    assert rotation("none", {"max-size": "1k"}) is None


def test_rotation_of_each_setting() -> None:
    assert rotation("json-file", {}) is None
    assert rotation("json-file", {"max-file": "3"}) is None  # no max-size: no rotation
    assert rotation("json-file", {"max-size": "10k"}) == Rotation(10_000, 1, False)
    assert rotation("", {"max-size": "1m", "max-file": "4", "compress": "1"}) == Rotation(
        1_000_000, 4, True
    )
    assert rotation("local", {}) == Rotation(LOCAL_MAX_SIZE, 5, True)
    assert rotation("local", {"max-size": "1k", "compress": "false", "max-file": "1"}) == (
        Rotation(1000, 1, False)
    )


def test_attributes_name_labels_and_env_as_moby_extra_attributes() -> None:
    labels = {"app": "web", "tier": "front", "owner": "me"}
    env = ["PATH=/bin", "REGION=eu", "ROLE=api", "BROKEN"]
    options = {"labels": "app,missing", "env": "REGION", "env-regex": "^RO"}
    assert attributes(options, labels, env, TAG) == {"app": "web", "REGION": "eu", "ROLE": "api"}
    assert attributes({"labels-regex": "^t"}, labels, env, TAG) == {"tier": "front"}
    assert attributes({}, labels, env, TAG) == {}


def test_tag_templates_render_container_fields() -> None:
    assert render_tag("{{.Name}}/{{.ID}}", TAG) == "web/0123456789ab"
    assert render_tag("{{ .ImageName }}@{{.ImageID}}", TAG) == "busybox@fedcba987654"
    assert render_tag("plain", TAG) == "plain"
    assert attributes({"tag": "{{.DaemonName}}"}, {}, [], TAG) == {"tag": "docker"}


def test_details_prefix_is_sorted_query_escaped_pairs_then_a_space() -> None:
    assert details_prefix({}) == b" "
    assert details_prefix({"b": "2", "a": "x y", "c/d": "é&"}) == b"a=x+y,b=2,c%2Fd=%C3%A9%26 "
