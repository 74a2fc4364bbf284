"""The `filters` parameter in both client dialects and label matching."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from essaim.api.filters import Filters
from essaim.errors import InvalidParameter


def test_cli_and_sdk_dialects_parse_alike() -> None:
    cli = Filters.parse('{"label":{"x":true,"y=1":true},"status":{"exited":true}}')
    sdk = Filters.parse('{"label":["x","y=1"],"status":["exited"]}')
    assert sorted(cli.values("label")) == sorted(sdk.values("label"))
    assert cli.values("status") == sdk.values("status") == ["exited"]


def test_label_filters_need_key_or_exact_value() -> None:
    f = Filters.parse('{"label":["tier","env=prod"]}')
    assert f.match_labels({"tier": "db", "env": "prod"})
    assert not f.match_labels({"tier": "db", "env": "dev"})
    assert not f.match_labels({"env": "prod"})


def test_value_with_equals_sign_in_value() -> None:
    f = Filters.parse('{"label":["k=a=b"]}')
    assert f.match_labels({"k": "a=b"})


def test_malformed_and_unknown_filters_are_rejected() -> None:
    with pytest.raises(InvalidParameter):
        Filters.parse("{not json")
    with pytest.raises(InvalidParameter, match="invalid filter 'colour'"):
        Filters.parse('{"colour":["red"]}').validate(["status"])


@given(st.dictionaries(st.text(min_size=1), st.lists(st.text(), max_size=3), max_size=4))
def test_both_dialects_round_trip(data: dict[str, list[str]]) -> None:
    import json

    as_map = json.dumps({k: dict.fromkeys(v, True) for k, v in data.items()})
    as_list = json.dumps(data)
    for key, values in data.items():
        assert sorted(Filters.parse(as_map).values(key)) == sorted(set(values))
        assert Filters.parse(as_list).values(key) == values
