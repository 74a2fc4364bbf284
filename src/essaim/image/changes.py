"""`--change` lines of `docker import` and `docker commit`: the Dockerfile instructions
that only touch the image config (CMD, ENV, LABEL ...), applied like the builder does.

Pure functions: `apply_changes(config, lines)` validates every line, then returns a copy.
"""

from __future__ import annotations

import json
import posixpath
import re
import signal

import msgspec

from essaim.errors import InvalidParameter
from essaim.model.image import HealthConfig, ImageConfig

ALLOWED = frozenset(
    {
        "cmd",
        "entrypoint",
        "env",
        "expose",
        "healthcheck",
        "label",
        "onbuild",
        "stopsignal",
        "user",
        "volume",
        "workdir",
    }
)
KNOWN = ALLOWED | {
    "add",
    "arg",
    "copy",
    "from",
    "maintainer",
    "run",
    "shell",
}
DEFAULT_SHELL = ["/bin/sh", "-c"]
_NAME_START = re.compile(r"[A-Za-z_]")
_NAME_CHAR = re.compile(r"[A-Za-z0-9_]")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}


def split_words(text: str) -> list[str]:
    """Whitespace-separated words, quotes and escapes kept for `expand` to resolve."""
    words: list[str] = []
    word = ""
    quote: str | None = None
    escaped = False
    for ch in text:
        if escaped:
            word += ch
            escaped = False
            continue
        if quote is None and ch.isspace():
            if word:
                words.append(word)
                word = ""
            continue
        if ch == "\\" and quote != "'":
            escaped = True
        elif quote is None and ch in "\"'":
            quote = ch
        elif ch == quote:
            quote = None
        word += ch
    if word:
        words.append(word)
    return words


class _Lexer:
    """The builder's word processing: quotes removed, escapes applied, `$VAR`,
    `${VAR}`, `${VAR:-default}` and `${VAR:+alternative}` expanded from `env`."""

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

    def word(self) -> str:
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self.next()
            if ch == "'":
                end = self.text.find("'", self.pos)
                if end == -1:
                    raise InvalidParameter(
                        "unexpected end of statement while looking for matching single-quote"
                    )
                out.append(self.text[self.pos : end])
                self.pos = end + 1
            elif ch == '"':
                out.append(self.double_quoted())
            elif ch == "\\":
                out.append(self.next())
            elif ch == "$":
                out.append(self.variable())
            else:
                out.append(ch)
        return "".join(out)

    def double_quoted(self) -> str:
        out: list[str] = []
        while True:
            ch = self.next()
            if ch == "":
                raise InvalidParameter(
                    "unexpected end of statement while looking for matching double-quote"
                )
            if ch == '"':
                return "".join(out)
            if ch == "\\" and self.peek() in ('"', "$", "\\"):
                out.append(self.next())
            elif ch == "$":
                out.append(self.variable())
            else:
                out.append(ch)

    def name(self) -> str:
        start = self.pos
        if not _NAME_START.match(self.peek() or " "):
            return ""
        while self.peek() and _NAME_CHAR.match(self.peek()):
            self.pos += 1
        return self.text[start : self.pos]

    def variable(self) -> str:
        if self.peek() != "{":
            name = self.name()
            return self.env.get(name, "") if name else "$"
        self.pos += 1
        name = self.name()
        if not name:
            raise InvalidParameter(f"invalid variable substitution in {self.text!r}")
        if self.peek() == "}":
            self.pos += 1
            return self.env.get(name, "")
        colon = self.peek() == ":"
        if colon:
            self.pos += 1
        op = self.next()
        if op not in ("-", "+", "?"):
            raise InvalidParameter(f"unsupported modifier ({op}) in substitution")
        depth, start = 1, self.pos
        while depth:
            ch = self.next()
            if ch == "":
                raise InvalidParameter("missing '}' in variable substitution")
            depth += {"{": 1, "}": -1}.get(ch, 0)
        word = _Lexer(self.text[start : self.pos - 1], self.env).word()
        value = self.env.get(name)
        is_set = value is not None and (value != "" or not colon)
        if op == "-":
            return value if is_set and value is not None else word
        if op == "+":
            return word if is_set else ""
        if not is_set:
            raise InvalidParameter(f"{name}: {word or 'is not allowed to be unset'}")
        return value or ""


def expand(word: str, env_list: list[str]) -> str:
    env: dict[str, str] = {}
    for item in env_list:
        key, _, value = item.partition("=")
        env[key] = value
    return _Lexer(word, env).word()


def _parse_json_list(rest: str) -> list[str] | None:
    """The exec (JSON) form of CMD, ENTRYPOINT, VOLUME ..., or None for the shell form."""
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _name_values(instruction: str, rest: str, env: list[str]) -> list[tuple[str, str]]:
    words = split_words(rest)
    if not words:
        raise InvalidParameter(f"{instruction} requires at least one argument")
    if "=" not in words[0]:
        # The legacy form: `ENV NAME the rest of the line`.
        parts = rest.split(None, 1)
        if len(parts) < 2:
            raise InvalidParameter(f"{instruction} must have two arguments")
        pairs = [(parts[0], parts[1])]
    else:
        pairs = []
        for word in words:
            if "=" not in word:
                raise InvalidParameter(
                    f"Syntax error - can't find = in {word!r}. Must be of the form: name=value"
                )
            key, value = word.split("=", 1)
            pairs.append((key, value))
    out = []
    for key, value in pairs:
        name = expand(key, env)
        if not name:
            raise InvalidParameter(f"{instruction} names can not be blank")
        out.append((name, expand(value, env)))
    return out


def parse_duration(text: str, flag: str) -> int:
    """A Go duration ("30s", "1m30s", "500ms") in nanoseconds."""
    if text == "0":
        return 0
    pos, total = 0, 0.0
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if m is None:
            raise InvalidParameter(f'time: invalid duration "{text}"')
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not text:
        raise InvalidParameter(f'time: invalid duration "{text}"')
    value = int(total)
    if 0 < value < 1_000_000:
        raise InvalidParameter(f"{flag} cannot be less than 1ms")
    return value


def _healthcheck(rest: str) -> HealthConfig:
    words = rest.split()
    flags: dict[str, str] = {}
    while words and words[0].startswith("--"):
        flag, _, value = words.pop(0)[2:].partition("=")
        if flag not in ("interval", "timeout", "start-period", "start-interval", "retries"):
            raise InvalidParameter(f"Unknown flag: {flag}")
        flags[flag] = value
    if not words:
        raise InvalidParameter("Missing command after HEALTHCHECK")
    kind = words[0].upper()
    body = rest.split(words[0], 1)[1].strip() if kind == "CMD" else ""
    if kind == "NONE":
        if len(words) > 1 or flags:
            raise InvalidParameter("HEALTHCHECK NONE takes no arguments")
        return HealthConfig(test=["NONE"])
    if kind != "CMD":
        raise InvalidParameter(f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
    exec_form = _parse_json_list(body)
    test = ["CMD", *exec_form] if exec_form is not None else ["CMD-SHELL", body]
    retries = 0
    if "retries" in flags:
        try:
            retries = int(flags["retries"])
        except ValueError:
            raise InvalidParameter(f"invalid retries value: {flags['retries']}") from None
        if retries < 0:
            raise InvalidParameter("--retries cannot be negative")
    return HealthConfig(
        test=test,
        interval=parse_duration(flags.get("interval", "0"), "Interval"),
        timeout=parse_duration(flags.get("timeout", "0"), "Timeout"),
        start_period=parse_duration(flags.get("start-period", "0"), "StartPeriod"),
        start_interval=parse_duration(flags.get("start-interval", "0"), "StartInterval"),
        retries=retries,
    )


def validate_signal(name: str) -> None:
    """Docker's ParseSignal: a number, or a name with or without SIG."""
    if name.isdigit():
        if int(name) == 0:
            raise InvalidParameter(f"Invalid signal: {name}")
        return
    upper = name.upper()
    candidate = upper if upper.startswith("SIG") else "SIG" + upper
    if candidate not in signal.Signals.__members__ and not re.fullmatch(
        r"SIGRTM(IN|AX)([+-]\d+)?", candidate
    ):
        raise InvalidParameter(f"Invalid signal: {name}")


def _ports(words: list[str]) -> list[str]:
    out: list[str] = []
    for word in words:
        port, _, proto = word.partition("/")
        proto = proto.lower() or "tcp"
        if proto not in ("tcp", "udp", "sctp"):
            raise InvalidParameter(f"invalid proto: {proto}")
        low, _, high = port.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise InvalidParameter(f"invalid containerPort: {port}")
        start, end = int(low), int(high or low)
        if end < start or end > 65535:
            raise InvalidParameter(f"invalid range specified for container port: {port}")
        out.extend(f"{p}/{proto}" for p in range(start, end + 1))
    return out


class _Draft:
    """The config being changed, field by field, in the order of the lines."""

    def __init__(self, config: ImageConfig) -> None:
        self.config = msgspec.structs.replace(
            config,
            env=list(config.env),
            labels=dict(config.labels),
            exposed_ports=list(config.exposed_ports),
            volumes=list(config.volumes),
            on_build=list(config.on_build),
        )
        # ENTRYPOINT drops the inherited CMD unless a CMD was given before it.
        self.cmd_set = False

    def shell_form(self, rest: str) -> list[str]:
        return [*(self.config.shell or DEFAULT_SHELL), rest]

    def apply(self, instruction: str, rest: str) -> None:
        c = self.config
        if instruction == "cmd":
            exec_form = _parse_json_list(rest)
            c.cmd = exec_form if exec_form is not None else self.shell_form(rest)
            self.cmd_set = True
        elif instruction == "entrypoint":
            exec_form = _parse_json_list(rest)
            if exec_form is not None:
                c.entrypoint = exec_form
            else:
                c.entrypoint = self.shell_form(rest) if rest else None
            if not self.cmd_set:
                c.cmd = None
        elif instruction == "env":
            for key, value in _name_values("ENV", rest, c.env):
                entry = f"{key}={value}"
                for i, existing in enumerate(c.env):
                    if existing.split("=", 1)[0] == key:
                        c.env[i] = entry
                        break
                else:
                    c.env.append(entry)
        elif instruction == "label":
            for key, value in _name_values("LABEL", rest, c.env):
                c.labels[key] = value
        elif instruction == "expose":
            words = [expand(w, c.env) for w in split_words(rest)]
            if not words:
                raise InvalidParameter("EXPOSE requires at least one argument")
            for port in _ports(words):
                if port not in c.exposed_ports:
                    c.exposed_ports.append(port)
        elif instruction == "volume":
            exec_form = _parse_json_list(rest)
            raw = exec_form if exec_form is not None else split_words(rest)
            if not raw:
                raise InvalidParameter("VOLUME requires at least one argument")
            for word in raw:
                volume = expand(word, c.env).strip() if exec_form is None else word.strip()
                if not volume:
                    raise InvalidParameter("VOLUME specified can not be an empty string")
                if volume not in c.volumes:
                    c.volumes.append(volume)
        elif instruction == "user":
            c.user = expand(rest.strip(), c.env)
            if not c.user:
                raise InvalidParameter("USER requires exactly one argument")
        elif instruction == "workdir":
            requested = expand(rest.strip(), c.env)
            if not requested:
                raise InvalidParameter("WORKDIR requires exactly one argument")
            c.working_dir = posixpath.normpath(
                requested
                if requested.startswith("/")
                else posixpath.join("/", c.working_dir, requested)
            )
        elif instruction == "stopsignal":
            value = expand(rest.strip(), c.env)
            validate_signal(value)
            c.stop_signal = value
        elif instruction == "healthcheck":
            c.healthcheck = _healthcheck(rest)
        elif instruction == "onbuild":
            trigger = rest.split(None, 1)[0].lower() if rest.strip() else ""
            if not trigger:
                raise InvalidParameter("ONBUILD requires at least one argument")
            if trigger == "onbuild":
                raise InvalidParameter("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
            if trigger in ("from", "maintainer"):
                raise InvalidParameter(f"{trigger.upper()} isn't allowed as an ONBUILD trigger")
            c.on_build.append(rest.strip())


def parse_line(line: str) -> tuple[str, str]:
    """(instruction in lower case, the rest), refusing what is not a config change."""
    stripped = line.strip()
    if not stripped:
        raise InvalidParameter("file with no instructions")
    word, _, rest = stripped.partition(" ")
    head = word.split("\t", 1)
    if len(head) == 2:
        word, rest = head[0], head[1] + (" " + rest if rest else "")
    instruction = word.lower()
    if instruction not in KNOWN:
        raise InvalidParameter(f"unknown instruction: {word.upper()}")
    if instruction not in ALLOWED:
        raise InvalidParameter(f"{instruction} is not a valid change command")
    return instruction, rest.strip()


def apply_changes(config: ImageConfig, lines: list[str]) -> ImageConfig:
    """`config` with the change lines applied in order; nothing is returned if any line
    is invalid, so callers can validate before they change anything."""
    draft = _Draft(config)
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        instruction, rest = parse_line(line)
        draft.apply(instruction, rest)
    return draft.config
