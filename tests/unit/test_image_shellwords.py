"""Dockerfile word processing as BuildKit's lexer does it: quotes, escapes, the `${VAR}`
forms and their errors, and the word splitting EXPOSE relies on."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from essaim.errors import InvalidParameter
from essaim.image.shellwords import expand, expand_words


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("$A", "1"),
        ("${A}", "1"),
        ("${UNSET:-d}", "d"),
        ("${EMPTY:-d}", "d"),
        ("${EMPTY-d}", ""),
        ("${UNSET-d}", "d"),
        ("${A:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET:-${A}x}", "1x"),
        ("a$", "a$"),
        ("$1", ""),
        ("'$A'", "$A"),
        ('"$A $A"', "1 1"),
        ('"a\\"b"', 'a"b'),
        ('"a\\b"', "a\\b"),
        ("a\\ b", "a b"),
        ("x\\", "x"),
    ],
)
def test_expand(word: str, expected: str) -> None:
    assert expand(word, ["A=1", "EMPTY="]) == expected


@pytest.mark.parametrize(
    ("word", "message"),
    [
        ("${", "syntax error: missing '}'"),
        ("${}", "syntax error: bad substitution"),
        ("${A", "syntax error: missing '}'"),
        ("${A:-x", "syntax error: missing '}'"),
        ("${A%x}", "unsupported modifier (%) in substitution"),
        ("${UNSET?}", "UNSET: is not allowed to be unset"),
        ("${EMPTY:?must be set}", "EMPTY: must be set"),
        ("'open", "unexpected end of statement while looking for matching single-quote"),
        ('"open', "unexpected end of statement while looking for matching double-quote"),
    ],
)
def test_expand_errors_name_the_word(word: str, message: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        expand(word, ["A=1", "EMPTY="])
    assert str(info.value) == f"failed to process {json.dumps(word)}: {message}"


def test_expand_words_splits_unquoted_values() -> None:
    assert expand_words('$P "a b" c\\ d', ["P=80  443"]) == ["80", "443", "a b", "c d"]


@given(st.text(alphabet=st.characters(blacklist_characters="$'\"\\"), max_size=30))
def test_expand_leaves_plain_text_alone(text: str) -> None:
    assert expand(text, ["A=1"]) == text
