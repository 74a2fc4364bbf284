"""Dockerfile words as BuildKit's shell lexer processes them (ProcessWord, ProcessWords):
quotes and escapes resolved, `$VAR` and `${VAR:-word}` forms expanded, words split.
"""

from __future__ import annotations

import json

from essaim.errors import InvalidParameter

_SPECIAL_PARAMS = frozenset("@*#?-$!0")


class _Lexer:
    """Quotes removed, escapes applied, `$VAR`, `${VAR}` and the `${VAR:-word}`,
    `${VAR-word}`, `${VAR:+word}`, `${VAR+word}`, `${VAR:?word}`, `${VAR?word}` forms
    expanded from `env`; also the words the result splits into."""

    def __init__(self, text: str, env: dict[str, str]) -> None:
        self.text = text
        self.pos = 0
        self.env = env

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1
        return ch

    def process(self) -> tuple[str, list[str]]:
        try:
            return self.until("")
        except InvalidParameter as exc:
            raise InvalidParameter(f"failed to process {_go_quote(self.text)}: {exc}") from None

    def until(self, stop: str) -> tuple[str, list[str]]:
        """The word up to `stop` (consumed) or the end, and its words."""
        result: list[str] = []
        words = _Words()
        while self.peek():
            ch = self.peek()
            if stop and ch == stop:
                self.pos += 1
                return "".join(result), words.done()
            if ch == "'":
                value = self.single_quoted()
                words.add_raw(value)
            elif ch == '"':
                value = self.double_quoted()
                words.add_raw(value)
            elif ch == "$":
                value = self.dollar()
                words.add_expanded(value)
            else:
                self.pos += 1
                if ch == "\\":
                    ch = self.next()
                    if not ch:
                        break  # an escape at the very end is dropped
                    words.add_raw(ch)
                else:
                    words.add_char(ch)
                value = ch
            result.append(value)
        if stop:
            raise InvalidParameter(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.done()

    def single_quoted(self) -> str:
        self.pos += 1
        end = self.text.find("'", self.pos)
        if end == -1:
            raise InvalidParameter(
                "unexpected end of statement while looking for matching single-quote"
            )
        value = self.text[self.pos : end]
        self.pos = end + 1
        return value

    def double_quoted(self) -> str:
        self.pos += 1
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                raise InvalidParameter(
                    "unexpected end of statement while looking for matching double-quote"
                )
            if ch == '"':
                self.pos += 1
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            self.pos += 1
            if ch == "\\":
                if not self.peek():
                    continue  # an escape at the very end is dropped
                if self.peek() in ('"', "$", "\\"):
                    ch = self.next()
            out.append(ch)

    def name(self) -> str:
        ch = self.peek()
        if ch.isdecimal():
            start = self.pos
            while self.peek().isdecimal():
                self.pos += 1
            return self.text[start : self.pos]
        if ch and ch in _SPECIAL_PARAMS:
            self.pos += 1
            return ch
        start = self.pos
        while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
            self.pos += 1
        return self.text[start : self.pos]

    def dollar(self) -> str:
        self.pos += 1
        if self.peek() != "{":
            name = self.name()
            return self.env.get(name, "") if name else "$"
        self.pos += 1
        if not self.peek():
            raise InvalidParameter("syntax error: missing '}'")
        if self.peek() in "{}:":
            raise InvalidParameter("syntax error: bad substitution")
        name = self.name()
        op = self.next()
        if op == "}":
            return self.env.get(name, "")
        if not op:
            raise InvalidParameter("syntax error: missing '}'")
        colon = op == ":"
        if colon:
            op = self.next()
        elif op not in ("-", "+", "?"):
            raise InvalidParameter(f"unsupported modifier ({op}) in substitution")
        try:
            word, _ = self.until("}")
        except InvalidParameter:
            if not self.peek():
                raise InvalidParameter("syntax error: missing '}'") from None
            raise
        if op not in ("-", "+", "?"):
            raise InvalidParameter(f"unsupported modifier ({op}) in substitution")
        value = self.env.get(name)
        # With a colon, an empty value counts as unset.
        is_set = value is not None and (value != "" or not colon)
        if op == "-":
            return value if is_set and value is not None else word
        if op == "+":
            return word if is_set else ""
        if not is_set:
            default = "is not allowed to be empty" if colon else "is not allowed to be unset"
            raise InvalidParameter(f"{name}: {word or default}")
        return value or ""


class _Words:
    """The word splitting of ProcessWords: unquoted blanks, including those a variable's
    value brings, separate words; quoted and escaped characters never do."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.word = ""
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word = ""
                self.in_word = False
        else:
            self.add_raw(ch)

    def add_raw(self, text: str) -> None:
        self.word += text
        self.in_word = True

    def add_expanded(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def done(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word = ""
            self.in_word = False
        return self.words


def _env_map(env_list: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in env_list:
        key, _, value = item.partition("=")
        env.setdefault(key, value)  # BuildKit keeps the first of a repeated name
    return env


def expand(word: str, env_list: list[str]) -> str:
    """ProcessWord: `word` with quotes, escapes and variables resolved."""
    return _Lexer(word, _env_map(env_list)).process()[0]


def expand_words(word: str, env_list: list[str]) -> list[str]:
    """ProcessWords: `word` expanded, then split into words (EXPOSE only)."""
    return _Lexer(word, _env_map(env_list)).process()[1]


def _go_quote(text: str) -> str:
    """Go's %q, near enough for the words of a Dockerfile."""
    return json.dumps(text, ensure_ascii=False)
