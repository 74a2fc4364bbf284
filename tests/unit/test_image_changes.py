"""`--change` lines (docker import / commit) as dockerd applies them: forms, expansion,
order, and errors in Docker's words at Docker's stage."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from essaim.errors import InvalidParameter
from essaim.image.changes import apply_changes, parse_duration
from essaim.model.image import HealthConfig, ImageConfig

SECOND = 1_000_000_000


def change(*lines: str, base: ImageConfig | None = None) -> ImageConfig:
    return apply_changes(base or ImageConfig(), list(lines))


def refused(*lines: str, base: ImageConfig | None = None) -> str:
    with pytest.raises(InvalidParameter) as info:
        apply_changes(base or ImageConfig(), list(lines))
    return str(info.value)


# -- CMD and ENTRYPOINT


def test_cmd_shell_form_runs_under_sh_with_the_text_verbatim() -> None:
    assert change('CMD echo "$HOME"  done').cmd == ["/bin/sh", "-c", 'echo "$HOME"  done']


def test_cmd_exec_form_is_taken_as_is() -> None:
    assert change('CMD ["echo", "$HOME"]').cmd == ["echo", "$HOME"]


def test_cmd_shell_form_uses_the_image_shell() -> None:
    base = ImageConfig(shell=["/bin/bash", "-eu", "-c"])
    assert change("CMD ls", base=base).cmd == ["/bin/bash", "-eu", "-c", "ls"]


def test_cmd_json_with_non_strings_is_refused() -> None:
    assert refused("CMD [1, 2]") == (
        "when using JSON array syntax, arrays must be comprised of strings only"
    )


def test_cmd_broken_json_falls_back_to_the_shell_form() -> None:
    assert change('CMD ["a", ').cmd == ["/bin/sh", "-c", '["a",']


def test_cmd_empty_json_array_is_an_empty_command() -> None:
    assert change("CMD []").cmd == []


def test_entrypoint_drops_the_inherited_cmd() -> None:
    config = change("ENTRYPOINT top -b", base=ImageConfig(cmd=["sh"]))
    assert config.entrypoint == ["/bin/sh", "-c", "top -b"]
    assert config.cmd is None


def test_entrypoint_keeps_a_cmd_given_before_it() -> None:
    config = change('CMD ["-b"]', 'ENTRYPOINT ["top"]', base=ImageConfig(cmd=["sh"]))
    assert config.entrypoint == ["top"]
    assert config.cmd == ["-b"]


def test_entrypoint_after_an_empty_cmd_still_drops_it() -> None:
    # moby sets cmdSet only for a CMD with arguments.
    config = change("CMD []", 'ENTRYPOINT ["top"]')
    assert config.cmd is None


def test_empty_entrypoint_json_clears_it() -> None:
    config = change("ENTRYPOINT []", base=ImageConfig(entrypoint=["x"], cmd=["y"]))
    assert config.entrypoint is None
    assert config.cmd is None


def test_cmd_and_entrypoint_reset_args_escaped() -> None:
    assert change("CMD ls", base=ImageConfig(args_escaped=True)).args_escaped is False


def test_cmd_with_an_unknown_flag_is_refused() -> None:
    assert refused("CMD --verbose ls") == "Unknown flag: verbose"


# -- ENV


def test_env_both_syntaxes() -> None:
    config = change("ENV A 1 2  3", 'ENV B=two C="with space" D=x\\ y')
    assert config.env == ["A=1 2  3", "B=two", "C=with space", "D=x y"]


def test_env_replaces_an_existing_name_in_place() -> None:
    config = change("ENV B=new", base=ImageConfig(env=["A=1", "B=old", "C=3"]))
    assert config.env == ["A=1", "B=new", "C=3"]


def test_env_expands_from_the_config_before_the_line() -> None:
    base = ImageConfig(env=["PATH=/bin", "A=old"])
    config = change("ENV A=new B=$A PATH=/opt:$PATH", "ENV C=${A}", base=base)
    # Within one line every value sees the environment before the line.
    assert config.env == ["PATH=/opt:/bin", "A=new", "B=old", "C=new"]


def test_env_single_quotes_stop_expansion() -> None:
    assert change("ENV A=x", "ENV B='$A' C=\"$A\" D=\\$A").env == ["A=x", "B=$A", "C=x", "D=$A"]


def test_env_expands_names_too() -> None:
    assert change("ENV N=NAME", "ENV ${N}_X=1").env == ["N=NAME", "NAME_X=1"]


def test_env_without_a_value_is_refused() -> None:
    assert refused("ENV ONLYNAME") == "ENV must have two arguments"


def test_env_without_anything_is_refused() -> None:
    assert refused("ENV") == "ENV requires at least one argument"


def test_env_mixed_forms_are_refused() -> None:
    assert refused("ENV A=1 B") == (
        'Syntax error - can\'t find = in "B". Must be of the form: name=value'
    )


def test_env_blank_name_is_refused() -> None:
    assert refused("ENV =x") == "ENV names can not be blank"


# -- LABEL


def test_label_sets_and_overrides() -> None:
    config = change('LABEL a=1 "b c"="d e"', "LABEL a=2", base=ImageConfig(labels={"z": "0"}))
    assert config.labels == {"z": "0", "a": "2", "b c": "d e"}


def test_label_legacy_form_and_expansion() -> None:
    config = change("ENV V=1.2", "LABEL version v$V and more")
    assert config.labels == {"version": "v1.2 and more"}


# -- EXPOSE


def test_expose_ports_ranges_and_protocols() -> None:
    config = change("EXPOSE 80 53/UDP 7000-7002/tcp", base=ImageConfig(exposed_ports=["80/tcp"]))
    assert sorted(config.exposed_ports) == sorted(
        ["80/tcp", "53/udp", "7000/tcp", "7001/tcp", "7002/tcp"]
    )


def test_expose_splits_a_variable_into_ports() -> None:
    config = change('ENV PORTS="80 443"', "EXPOSE $PORTS")
    assert sorted(config.exposed_ports) == ["443/tcp", "80/tcp"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("EXPOSE", "EXPOSE requires at least one argument"),
        ("EXPOSE 80/icmp", "invalid proto: icmp"),
        ("EXPOSE http", "invalid containerPort: http"),
        ("EXPOSE 70000", "invalid containerPort: 70000"),
        ("EXPOSE 90-80", "invalid containerPort: 90-80"),
    ],
)
def test_expose_errors(line: str, message: str) -> None:
    assert refused(line) == message


# -- VOLUME, WORKDIR, USER, STOPSIGNAL


def test_volume_both_forms_with_expansion() -> None:
    config = change("ENV D=/data", 'VOLUME ["/a", "$D"]', "VOLUME /b /a", base=ImageConfig())
    assert config.volumes == ["/a", "/data", "/b"]


def test_volume_empty_entry_is_refused() -> None:
    assert refused('VOLUME ["/a", " "]') == "VOLUME specified can not be an empty string"
    assert refused("VOLUME $NOTHING") == "VOLUME specified can not be an empty string"


def test_workdir_relative_joins_the_current_one() -> None:
    config = change("WORKDIR /srv", "WORKDIR app/../www", "WORKDIR ./x")
    assert config.working_dir == "/srv/www/x"


def test_workdir_is_cleaned_like_go() -> None:
    assert change("WORKDIR //a//b/").working_dir == "/a/b"


def test_workdir_expands_and_refuses_nothing() -> None:
    assert change("ENV H=/home", "WORKDIR $H/me").working_dir == "/home/me"
    assert refused("WORKDIR $UNSET") == "cannot normalize nothing"
    assert refused("WORKDIR") == "WORKDIR requires exactly one argument"


def test_user_takes_the_whole_rest_expanded() -> None:
    assert change("ENV U=daemon", "USER $U:adm").user == "daemon:adm"
    assert refused("USER") == "USER requires exactly one argument"


@pytest.mark.parametrize("name", ["SIGTERM", "term", "9", "SIGRTMIN+3", "RTMAX-1", "sigusr1"])
def test_stopsignal_accepts(name: str) -> None:
    assert change(f"STOPSIGNAL {name}").stop_signal == name


@pytest.mark.parametrize("name", ["SIGFOO", "0", "RTMIN+16", "SIGSIGTERM", "-"])
def test_stopsignal_refuses(name: str) -> None:
    assert refused(f"STOPSIGNAL {name}") == f"invalid signal: {name}"


def test_stopsignal_without_a_signal() -> None:
    assert refused("STOPSIGNAL") == "STOPSIGNAL requires exactly one argument"


# -- HEALTHCHECK


def test_healthcheck_shell_form_with_flags() -> None:
    config = change(
        "HEALTHCHECK --interval=30s --timeout=1m30s --start-period=1.5s "
        "--start-interval=500ms --retries=3 CMD curl -f http://localhost/ || exit 1"
    )
    assert config.healthcheck == HealthConfig(
        test=["CMD-SHELL", "curl -f http://localhost/ || exit 1"],
        interval=30 * SECOND,
        timeout=90 * SECOND,
        start_period=1_500_000_000,
        start_interval=500_000_000,
        retries=3,
    )


def test_healthcheck_exec_form() -> None:
    config = change('HEALTHCHECK cmd ["pg_isready", "-q"]')
    assert config.healthcheck == HealthConfig(test=["CMD", "pg_isready", "-q"])


def test_healthcheck_none_ignores_flags() -> None:
    config = change("HEALTHCHECK --interval=1s NONE")
    assert config.healthcheck == HealthConfig(test=["NONE"])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
        ("HEALTHCHECK NONE now", "HEALTHCHECK NONE takes no arguments"),
        ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
        ("HEALTHCHECK RUN x", 'Unknown type "RUN" in HEALTHCHECK (try CMD)'),
        ("HEALTHCHECK --every=1s CMD x", "Unknown flag: every"),
        ("HEALTHCHECK --retries=1 --retries=2 CMD x", "Duplicate flag specified: retries"),
        ("HEALTHCHECK --interval=1us CMD x", 'Interval "interval" cannot be less than 1ms'),
        ("HEALTHCHECK --timeout=-1s CMD x", 'Interval "timeout" cannot be less than 1ms'),
        ("HEALTHCHECK --interval=5 CMD x", 'time: missing unit in duration "5"'),
        ("HEALTHCHECK --interval=5y CMD x", 'time: unknown unit "y" in duration "5y"'),
        ("HEALTHCHECK --retries=-1 CMD x", "--retries cannot be negative (-1)"),
        ("HEALTHCHECK --retries=x CMD x", 'strconv.ParseInt: parsing "x": invalid syntax'),
    ],
)
def test_healthcheck_errors(line: str, message: str) -> None:
    assert refused(line) == message


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("0", 0),
        ("-0", 0),
        ("1h2m3s", 3723 * SECOND),
        ("1.5m", 90 * SECOND),
        (".5s", SECOND // 2),
        ("300ms", 300_000_000),
        ("2us", 2_000),
        ("2µs", 2_000),
        ("2μs", 2_000),
        ("7ns", 7),
        ("-2s", -2 * SECOND),
    ],
)
def test_parse_duration_like_go(text: str, nanoseconds: int) -> None:
    assert parse_duration(text) == nanoseconds


@pytest.mark.parametrize("text", ["", "s", ".s", "1..5s", "+"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(InvalidParameter):
        parse_duration(text)


# -- ONBUILD


def test_onbuild_keeps_the_trigger_text() -> None:
    config = change("onbuild  RUN echo $HOME", "ONBUILD COPY . /app")
    assert config.on_build == ["RUN echo $HOME", "COPY . /app"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("ONBUILD", "ONBUILD requires at least one argument"),
        ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("ONBUILD from busybox", "FROM isn't allowed as an ONBUILD trigger"),
        ("ONBUILD MAINTAINER me", "MAINTAINER isn't allowed as an ONBUILD trigger"),
    ],
)
def test_onbuild_errors(line: str, message: str) -> None:
    assert refused(line) == message


# -- the whole set of lines


@pytest.mark.parametrize("word", ["RUN", "run", "SHELL", "ADD", "COPY", "FROM", "ARG"])
def test_instructions_outside_the_commit_set_are_refused(word: str) -> None:
    assert refused(f"{word} x") == f"{word.lower()} is not a valid change command"


def test_unknown_instruction_is_not_a_valid_change_command() -> None:
    # dockerd checks the commit set before it types instructions, so an unknown word
    # never reaches "unknown instruction".
    assert refused("FROBNICATE x") == "frobnicate is not a valid change command"


def test_invalid_command_is_found_before_bad_arguments_earlier_in_the_list() -> None:
    assert refused("EXPOSE", "RUN x") == "run is not a valid change command"


def test_parse_errors_come_before_any_line_is_applied() -> None:
    assert refused("STOPSIGNAL SIGNOPE", "USER") == "USER requires exactly one argument"


def test_nothing_changes_when_a_later_line_fails() -> None:
    base = ImageConfig(env=["A=1"], labels={"x": "y"})
    refused("ENV A=2", "LABEL x=z", "STOPSIGNAL SIGNOPE", base=base)
    assert base == ImageConfig(env=["A=1"], labels={"x": "y"})


def test_the_base_config_is_never_mutated() -> None:
    base = ImageConfig(env=["A=1"], labels={"x": "y"}, volumes=["/v"], exposed_ports=["1/tcp"])
    change("ENV A=2", "LABEL x=z", "VOLUME /w", "EXPOSE 2", "ONBUILD RUN x", base=base)
    assert base == ImageConfig(
        env=["A=1"], labels={"x": "y"}, volumes=["/v"], exposed_ports=["1/tcp"]
    )


def test_no_lines_leave_the_config_as_it_is() -> None:
    base = ImageConfig(cmd=["sh"])
    assert apply_changes(base, []) is base


def test_lines_without_instructions_are_an_error() -> None:
    assert refused("", "  ", "# just a comment") == "file with no instructions"


def test_comments_and_blank_lines_are_skipped() -> None:
    assert change("# comment", "", "USER nobody").user == "nobody"


def test_a_backslash_continues_into_the_next_change() -> None:
    # dockerd joins the changes with newlines and parses them as one Dockerfile.
    assert change("ENV A=1 \\", "  B=2").env == ["A=1", "B=2"]


def test_a_change_with_a_newline_is_two_instructions() -> None:
    config = change("USER nobody\nWORKDIR /tmp")
    assert (config.user, config.working_dir) == ("nobody", "/tmp")


def test_instruction_words_are_case_insensitive_and_tabs_separate() -> None:
    config = change("user\tnobody", "Cmd ls")
    assert (config.user, config.cmd) == ("nobody", ["/bin/sh", "-c", "ls"])


@given(st.lists(st.text(max_size=20), max_size=4))
def test_any_input_is_either_applied_or_refused_cleanly(lines: list[str]) -> None:
    base = ImageConfig(env=["A=1"])
    with contextlib.suppress(InvalidParameter):
        apply_changes(base, lines)
    assert base == ImageConfig(env=["A=1"])
