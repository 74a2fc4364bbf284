"""COPY and ADD source wildcards as the classic builder reads them: Go's filepath.Match
(on Linux) and moby's test for whether a source has a wildcard at all. Pure.

Go's matcher commits to the leftmost place each chunk after a `*` matches; a regular
expression would backtrack further, so this is a port of its algorithm, not a regex.
"""

from __future__ import annotations


class BadPattern(Exception):
    """Go's filepath.ErrBadPattern: the classic builder takes it as "no match"."""


def contains_wildcards(name: str) -> bool:
    """moby's containsWildcards: a `*`, `?` or `[` not escaped by a backslash."""
    i = 0
    while i < len(name):
        ch = name[i]
        if ch == "\\":
            i += 1
        elif ch in "*?[":
            return True
        i += 1
    return False


def go_match(pattern: str, name: str) -> bool:
    """filepath.Match(pattern, name), a malformed pattern matching nothing."""
    try:
        return _match(pattern, name)
    except BadPattern:
        return False


def literal_prefix(pattern: str) -> list[str]:
    """The leading components of `pattern` made of plain characters only: every name
    the pattern matches starts with exactly these (a walk need not look elsewhere)."""
    parts = pattern.split("/")[:-1]
    prefix: list[str] = []
    for part in parts:
        if any(ch in part for ch in "*?[\\") or part in ("", ".", ".."):
            break
        prefix.append(part)
    return prefix


def fixed_depth(pattern: str) -> int | None:
    """How many components every match of `pattern` has, when the pattern says so:
    `*` and `?` never match `/`, but a negated class or an escape may."""
    if "[" in pattern or "\\" in pattern:
        return None
    return pattern.count("/") + 1


def _match(pattern: str, name: str) -> bool:
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and not chunk:
            # A trailing `*` takes the rest of the name unless it holds a `/`.
            return "/" not in name
        rest = _match_chunk(chunk, name)
        # The last chunk must use up the name; others may leave some for what follows.
        if rest is not None and (not rest or pattern):
            name = rest
            continue
        if star:
            found = False
            i = 0
            while i < len(name) and name[i] != "/":
                rest = _match_chunk(chunk, name[i + 1 :])
                if rest is not None and (pattern or not rest):
                    name = rest
                    found = True
                    break
                i += 1
            if found:
                continue
        # No match: Go still reports a malformed rest of the pattern.
        while pattern:
            _, chunk, pattern = _scan_chunk(pattern)
            _match_chunk(chunk, "")
        return False
    return not name


def _scan_chunk(pattern: str) -> tuple[bool, str, str]:
    """Leading stars, then the text up to the next star outside a class."""
    star = False
    while pattern.startswith("*"):
        pattern = pattern[1:]
        star = True
    in_range = False
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            if i + 1 < len(pattern):
                i += 1
        elif ch == "[":
            in_range = True
        elif ch == "]":
            in_range = False
        elif ch == "*" and not in_range:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def _match_chunk(chunk: str, s: str) -> str | None:
    """What is left of `s` after `chunk` (no stars) matched its start; None when it did
    not. The whole chunk is read either way, so a malformed one always raises."""
    failed = False
    while chunk:
        if not failed and not s:
            failed = True
        head = chunk[0]
        if head == "[":
            r = ""
            if not failed:
                r, s = s[0], s[1:]
            chunk = chunk[1:]
            negated = chunk.startswith("^")
            if negated:
                chunk = chunk[1:]
            matched = False
            ranges = 0
            while True:
                if chunk.startswith("]") and ranges > 0:
                    chunk = chunk[1:]
                    break
                lo, chunk = _get_escaped(chunk)
                hi = lo
                if chunk[0] == "-":
                    hi, chunk = _get_escaped(chunk[1:])
                if not failed and lo <= r <= hi:
                    matched = True
                ranges += 1
            if matched == negated:
                failed = True
        elif head == "?":
            if not failed:
                if s[0] == "/":
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
        else:
            if head == "\\":
                chunk = chunk[1:]
                if not chunk:
                    raise BadPattern(chunk)
            if not failed:
                if chunk[0] != s[0]:
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
    return None if failed else s


def _get_escaped(chunk: str) -> tuple[str, str]:
    """One character of a class (a backslash escapes the next); `-` and `]` may not
    start a range and the class must go on after it."""
    if not chunk or chunk[0] in "-]":
        raise BadPattern(chunk)
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if not chunk:
            raise BadPattern(chunk)
    r, rest = chunk[0], chunk[1:]
    if not rest:
        raise BadPattern(chunk)
    return r, rest
