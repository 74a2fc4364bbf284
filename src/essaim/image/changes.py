"""`--change` lines of `docker import` and `docker commit`: the Dockerfile instructions
that only touch the image config (CMD, ENV, LABEL ...), applied as dockerd does.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from essaim.errors import InvalidParameter
from essaim.image.shellwords import expand, expand_words
from essaim.model.image import HealthConfig, ImageConfig

# moby's validCommitCommands.
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
DEFAULT_SHELL = ["/bin/sh", "-c"]
HEALTHCHECK_FLAGS = ("interval", "timeout", "start-period", "start-interval", "retries")
# Linux's signals as moby/sys/signal's SignalMap names them (without SIG).
SIGNALS = frozenset(
    {
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO",
        "IOT", "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP",
        "SYS", "TERM", "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM",
        "WINCH", "XCPU", "XFSZ", "RTMIN", "RTMAX",
        *(f"RTMIN+{n}" for n in range(1, 16)),
        *(f"RTMAX-{n}" for n in range(1, 15)),
    }
)  # fmt: skip
_NOT_STRING_ARRAY = "when using JSON array syntax, arrays must be comprised of strings only"
_CONTINUATION = re.compile(r"\\[ \t]*$")
_GO_INT = re.compile(r"[+-]?[0-9]+")
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)([^0-9.]*)")
_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_MINIMUM_DURATION = 1_000_000  # container.MinimumDuration, 1ms


def _go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


# -- the parser: logical lines to nodes


@dataclass
class _Node:
    """One instruction as the Dockerfile parser leaves it: the lower-case instruction,
    its `--flags`, its arguments, and whether they came in JSON form."""

    instruction: str
    original: str
    flags: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    json: bool = False


def _logical_lines(text: str) -> list[str]:
    """Lines joined across `\\` continuations; comments and blank lines dropped."""
    lines: list[str] = []
    current: str | None = None
    for raw in text.split("\n"):
        raw = raw.removesuffix("\r")
        stripped = raw.lstrip()
        if stripped.startswith("#") or not stripped:
            continue  # also inside a continuation, as the parser does
        piece = stripped if current is None else raw
        match = _CONTINUATION.search(piece)
        if match:
            current = (current or "") + piece[: match.start()]
            continue
        lines.append((current or "") + piece)
        current = None
    if current is not None and current.strip():
        lines.append(current)
    return lines


def _extract_flags(text: str) -> tuple[str, list[str]]:
    """BuildKit's extractBuilderFlags: the leading `--name[=value]` words (a value may
    also follow as the next word) and the rest of the line."""
    words: list[str] = []
    word = ""
    phase = "spaces"
    quote = ""
    blank_ok = False
    parsing_flag_arg = False
    need_flag_arg = True
    pos = 0
    n = len(text)
    while pos <= n:
        ch = text[pos] if pos < n else ""
        if phase == "spaces":
            if pos == n:
                break
            if ch.isspace():
                pos += 1
                continue
            if not parsing_flag_arg and (ch != "-" or pos + 1 == n or text[pos + 1] != "-"):
                return text[pos:], words
            phase = "word"
        if phase in ("word", "quote") and pos == n:
            if word != "--" and (blank_ok or word):
                words.append(word)
            break
        if phase == "word":
            if ch.isspace():
                phase = "spaces"
                if parsing_flag_arg:
                    words[-1] += "=" + word
                    parsing_flag_arg = False
                    need_flag_arg = True
                else:
                    if word == "--":
                        return text[pos:], words
                    if blank_ok or word:
                        if need_flag_arg:
                            parsing_flag_arg = True
                        words.append(word)
                word = ""
                blank_ok = False
                pos += 1
                continue
            if ch == "=" and need_flag_arg:
                need_flag_arg = False
            if ch in "'\"":
                quote = ch
                blank_ok = True
                phase = "quote"
                pos += 1
                continue
            if ch == "\\":
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = text[pos]
            word += ch
            pos += 1
            continue
        # phase == "quote"
        if ch == quote:
            phase = "word"
            pos += 1
            continue
        if ch == "\\":
            if pos + 1 == n:
                phase = "word"
                pos += 1
                continue
            pos += 1
            ch = text[pos]
        word += ch
        pos += 1
    return "", words


def _parse_json(rest: str) -> list[str] | None:
    """The JSON form, None when `rest` is not JSON; a JSON array of anything but
    strings is an error."""
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise InvalidParameter(_NOT_STRING_ARRAY)
    return value


def _parse_maybe_json(node: _Node, rest: str) -> None:
    if not rest:
        return
    exec_form = _parse_json(rest)
    if exec_form is None:
        node.args = [rest]
    else:
        node.args, node.json = exec_form, True


def _split_words(rest: str) -> list[str]:
    """The parser's parseWords: blank-separated words, quotes and escapes kept."""
    words: list[str] = []
    word = ""
    quote = ""
    in_word = False
    blank_ok = False
    pos = 0
    while pos < len(rest):
        ch = rest[pos]
        if not in_word:
            if ch.isspace():
                pos += 1
                continue
            in_word = True
        if quote:
            if ch == quote:
                quote = ""
            elif ch == "\\" and quote != "'":
                if pos + 1 == len(rest):
                    break
                word += ch
                pos += 1
                ch = rest[pos]
            word += ch
        elif ch.isspace():
            if blank_ok or word:
                words.append(word)
            word, in_word, blank_ok = "", False, False
        else:
            if ch in "'\"":
                quote, blank_ok = ch, True
            elif ch == "\\":
                if pos + 1 == len(rest):
                    pos += 1
                    continue
                word += ch
                pos += 1
                ch = rest[pos]
            word += ch
        pos += 1
    if in_word and (blank_ok or word):
        words.append(word)
    return words


def _parse_name_values(node: _Node, rest: str, what: str) -> None:
    words = _split_words(rest)
    if not words:
        return
    if "=" not in words[0]:
        # The legacy form: `ENV NAME the rest of the line`.
        parts = rest.split(None, 1)
        if len(parts) < 2:
            raise InvalidParameter(f"{what} must have two arguments")
        node.args = [parts[0], parts[1]]
        return
    for word in words:
        if "=" not in word:
            raise InvalidParameter(
                f"Syntax error - can't find = in {_go_quote(word)}. Must be of the form: name=value"
            )
        key, value = word.split("=", 1)
        node.args += [key, value]


def _parse_healthcheck_line(node: _Node, rest: str) -> None:
    if not rest:
        return
    kind = rest.split(None, 1)[0]
    command = rest[len(kind) :].lstrip()
    sub = _Node("", command)
    _parse_maybe_json(sub, command)
    node.args = [kind, *sub.args]
    node.json = sub.json


def _node_from_line(line: str) -> _Node:
    """newNodeFromLine: the instruction word, its flags, its arguments."""
    stripped = line.strip()
    head = stripped.split(None, 1)
    word = head[0] if head else ""
    node = _Node(instruction=word.lower(), original=stripped)
    rest = ""
    if len(head) == 2:
        rest, node.flags = _extract_flags(head[1])
        rest = rest.strip()
    instruction = node.instruction
    if instruction in ("env", "label"):
        _parse_name_values(node, rest, instruction.upper())
    elif instruction in ("cmd", "entrypoint"):
        _parse_maybe_json(node, rest)
    elif instruction == "healthcheck":
        _parse_healthcheck_line(node, rest)
    elif instruction == "expose":
        node.args = rest.split()
    elif instruction == "volume":
        exec_form = _parse_json(rest) if rest else None
        node.args = exec_form if exec_form is not None else rest.split()
        node.json = exec_form is not None
    elif instruction in ("user", "workdir", "stopsignal"):
        node.args = [rest] if rest else []
    elif instruction == "onbuild" and rest:
        trigger = _node_from_line(rest)
        node.args = [trigger.instruction, *trigger.args]
    # Other instructions are refused before their arguments matter.
    return node


# -- typed instructions


def _parse_flags(node: _Node, names: tuple[str, ...] = ()) -> dict[str, str]:
    """BFlags.Parse with string flags `names`: their values by name."""
    values: dict[str, str] = {}
    for arg in node.flags:
        if not arg.startswith("--"):
            raise InvalidParameter(f"Arg should start with -- : {arg}")
        if arg == "--":
            break
        name, eq, value = arg[2:].partition("=")
        if name not in names:
            raise InvalidParameter(f"Unknown flag: {name}")
        if name in values:
            raise InvalidParameter(f"Duplicate flag specified: {name}")
        if not eq:
            raise InvalidParameter(f"Missing a value on flag: {name}")
        values[name] = value
    return values


def _exactly_one(node: _Node, what: str) -> str:
    if len(node.args) != 1:
        raise InvalidParameter(f"{what} requires exactly one argument")
    return node.args[0]


def _at_least_one(node: _Node, what: str) -> None:
    if not node.args:
        raise InvalidParameter(f"{what} requires at least one argument")


def _key_values(node: _Node, what: str) -> list[tuple[str, str]]:
    _parse_flags(node)
    _at_least_one(node, what)
    pairs = list(zip(node.args[::2], node.args[1::2], strict=True))
    if any(not key for key, _ in pairs):
        raise InvalidParameter(f"{what} names can not be blank")
    return pairs


def _command_line(node: _Node, empty_as_none: bool) -> tuple[list[str] | None, bool]:
    """(the command line, whether the shell goes in front): the shell form is one word."""
    _parse_flags(node)
    args = node.args if node.json or not node.args else [" ".join(node.args)]
    if empty_as_none and not args:
        return None, not node.json
    return list(args), not node.json


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration ("30s", "1m30s", "500ms", "-1.5h"), in nanoseconds."""
    quoted = _go_quote(text)
    rest = text
    sign = 1
    if rest[:1] in ("+", "-"):
        sign = -1 if rest[0] == "-" else 1
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise InvalidParameter(f"time: invalid duration {quoted}")
    total = 0.0
    while rest:
        match = _DURATION_PART.match(rest)
        assert match is not None  # both groups may be empty
        number, unit = match.group(1), match.group(2)
        if number in ("", "."):
            raise InvalidParameter(f"time: invalid duration {quoted}")
        if not unit:
            raise InvalidParameter(f"time: missing unit in duration {quoted}")
        if unit not in _DURATION_UNITS:
            raise InvalidParameter(f"time: unknown unit {_go_quote(unit)} in duration {quoted}")
        total += float(number) * _DURATION_UNITS[unit]
        rest = rest[match.end() :]
    return sign * int(total)


def _interval(flags: dict[str, str], name: str) -> int:
    """parseOptInterval: 0 when absent; otherwise at least 1ms."""
    text = flags.get(name, "")
    if not text:
        return 0
    value = parse_duration(text)
    if value != 0 and value < _MINIMUM_DURATION:
        raise InvalidParameter(f"Interval {_go_quote(name)} cannot be less than 1ms")
    return value


def _healthcheck(node: _Node) -> HealthConfig:
    _at_least_one(node, "HEALTHCHECK")
    kind, args = node.args[0].upper(), node.args[1:]
    if kind == "NONE":
        if args:
            raise InvalidParameter("HEALTHCHECK NONE takes no arguments")
        return HealthConfig(test=["NONE"])  # its flags are not even read
    flags = _parse_flags(node, HEALTHCHECK_FLAGS)
    if kind != "CMD":
        raise InvalidParameter(f"Unknown type {_go_quote(kind)} in HEALTHCHECK (try CMD)")
    command = args if node.json or not args else [" ".join(args)]
    if not command:
        raise InvalidParameter("Missing command after HEALTHCHECK CMD")
    test = ["CMD", *command] if node.json else ["CMD-SHELL", *command]
    interval = _interval(flags, "interval")
    timeout = _interval(flags, "timeout")
    start_period = _interval(flags, "start-period")
    start_interval = _interval(flags, "start-interval")
    retries = 0
    if flags.get("retries"):
        text = flags["retries"]
        if not _GO_INT.fullmatch(text):
            raise InvalidParameter(f"strconv.ParseInt: parsing {_go_quote(text)}: invalid syntax")
        retries = int(text)
        if not -(2**31) <= retries < 2**31:
            raise InvalidParameter(
                f"strconv.ParseInt: parsing {_go_quote(text)}: value out of range"
            )
        if retries < 0:
            raise InvalidParameter(f"--retries cannot be negative ({retries})")
    return HealthConfig(
        test=test,
        interval=interval,
        timeout=timeout,
        start_period=start_period,
        start_interval=start_interval,
        retries=retries,
    )


def validate_signal(name: str) -> None:
    """moby/sys/signal's ParseSignal: a non-zero number, or a name with or without SIG."""
    if _GO_INT.fullmatch(name):
        if int(name) == 0:
            raise InvalidParameter(f"invalid signal: {name}")
        return
    if name.upper().removeprefix("SIG") not in SIGNALS:
        raise InvalidParameter(f"invalid signal: {name}")


def _port_range(text: str) -> tuple[int, int] | None:
    low, dash, high = text.partition("-")
    if not low.isdecimal() or (dash and not high.isdecimal()):
        return None
    start, end = int(low), int(high) if dash else int(low)
    if start > 65535 or end > 65535 or end < start:
        return None
    return start, end


def _ports(words: list[str]) -> list[str]:
    """nat.ParsePortSpecs for EXPOSE: `port[-port][/proto]`, as `port/proto`."""
    out: list[str] = []
    for word in words:
        port, _, proto = word.partition("/")
        proto = proto.lower() or "tcp"
        if not port:
            raise InvalidParameter(f"no port specified: {word}<empty>")
        if proto not in ("tcp", "udp", "sctp"):
            raise InvalidParameter(f"invalid proto: {proto}")
        span = _port_range(port)
        if span is None:
            raise InvalidParameter(f"invalid containerPort: {port}")
        out.extend(f"{p}/{proto}" for p in range(span[0], span[1] + 1))
    return out


def _normalize_workdir(current: str, requested: str) -> str:
    """normalizeWorkdir: relative to the current directory, cleaned as Go does."""
    if not requested:
        raise InvalidParameter("cannot normalize nothing")
    if not requested.startswith("/"):
        requested = posixpath.join("/", current, requested)
    cleaned = posixpath.normpath(requested)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("/") else cleaned


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
        # ENTRYPOINT drops the inherited CMD unless a CMD with arguments came before.
        self.cmd_set = False

    def resolve(self, command: list[str] | None, prepend_shell: bool) -> list[str] | None:
        if command is None or not prepend_shell:
            return command
        return [*(self.config.shell or DEFAULT_SHELL), *command]


_Change = Callable[[_Draft], None]


def _parse_command(node: _Node) -> _Change:
    """ParseCommand: the node checked and typed; what it does to a config, later."""
    instruction = node.instruction
    if instruction in ("env", "label"):
        pairs = _key_values(node, instruction.upper())

        def apply_pairs(draft: _Draft) -> None:
            c = draft.config
            expanded = [(expand(k, c.env), expand(v, c.env)) for k, v in pairs]
            for key, value in expanded:
                if instruction == "label":
                    c.labels[key] = value
                    continue
                entry = f"{key}={value}"
                for i, existing in enumerate(c.env):
                    if existing.split("=", 1)[0] == key:
                        c.env[i] = entry
                        break
                else:
                    c.env.append(entry)

        return apply_pairs
    if instruction in ("cmd", "entrypoint"):
        is_cmd = instruction == "cmd"
        command, prepend_shell = _command_line(node, empty_as_none=not is_cmd)

        def apply_command(draft: _Draft) -> None:
            c = draft.config
            c.args_escaped = False
            if is_cmd:
                c.cmd = draft.resolve(command, prepend_shell)
                if command:
                    draft.cmd_set = True
                return
            c.entrypoint = draft.resolve(command, prepend_shell)
            if not draft.cmd_set:
                c.cmd = None

        return apply_command
    if instruction == "healthcheck":
        health = _healthcheck(node)

        def apply_health(draft: _Draft) -> None:
            draft.config.healthcheck = health

        return apply_health
    if instruction == "expose":
        _at_least_one(node, "EXPOSE")
        _parse_flags(node)
        words = sorted(node.args)

        def apply_expose(draft: _Draft) -> None:
            c = draft.config
            expanded = [w for word in words for w in expand_words(word, c.env)]
            for port in _ports(expanded):
                if port not in c.exposed_ports:
                    c.exposed_ports.append(port)

        return apply_expose
    if instruction == "volume":
        _at_least_one(node, "VOLUME")
        _parse_flags(node)
        volumes = [v.strip() for v in node.args]
        if any(not v for v in volumes):
            raise InvalidParameter("VOLUME specified can not be an empty string")

        def apply_volume(draft: _Draft) -> None:
            c = draft.config
            expanded = [expand(v, c.env) for v in volumes]
            for volume in expanded:
                if not volume:
                    raise InvalidParameter("VOLUME specified can not be an empty string")
                if volume not in c.volumes:
                    c.volumes.append(volume)

        return apply_volume
    if instruction in ("user", "workdir", "stopsignal"):
        word = _exactly_one(node, instruction.upper())
        if instruction != "stopsignal":
            _parse_flags(node)

        def apply_word(draft: _Draft) -> None:
            c = draft.config
            value = expand(word, c.env)
            if instruction == "user":
                c.user = value
            elif instruction == "workdir":
                c.working_dir = _normalize_workdir(c.working_dir, value)
            else:
                validate_signal(value)
                c.stop_signal = value

        return apply_word
    # onbuild, the last of ALLOWED
    _at_least_one(node, "ONBUILD")
    _parse_flags(node)
    trigger = node.args[0].strip().upper()
    if trigger == "ONBUILD":
        raise InvalidParameter("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("MAINTAINER", "FROM"):
        raise InvalidParameter(f"{trigger} isn't allowed as an ONBUILD trigger")
    expression = re.sub(r"(?i)^\s*ONBUILD\s*", "", node.original)

    def apply_onbuild(draft: _Draft) -> None:
        draft.config.on_build.append(expression)

    return apply_onbuild


def apply_changes(config: ImageConfig, lines: list[str]) -> ImageConfig:
    """A copy of `config` with the change lines applied in order, or InvalidParameter
    with `config` untouched. As dockerd's BuildFromConfig: the lines are joined into one
    Dockerfile and parsed whole, any instruction outside the eleven allowed is refused,
    every instruction is typed, and only then are they applied; each error comes at the
    stage and in the words of dockerd's. No lines leave the config as it is; lines
    without an instruction are an error."""
    if not lines:
        return config
    nodes = [_node_from_line(line) for line in _logical_lines("\n".join(lines))]
    if not nodes:
        raise InvalidParameter("file with no instructions")
    for node in nodes:
        if node.instruction not in ALLOWED:
            raise InvalidParameter(f"{node.instruction} is not a valid change command")
    changes = [_parse_command(node) for node in nodes]
    draft = _Draft(config)
    for change in changes:
        change(draft)
    return draft.config
