"""Every duration flag of every command refuses bad text as bad input (exit 2), before anything runs."""

from __future__ import annotations

import argparse
import json

import pytest

from envci.cli import DURATION, build_parser, duration_flags, main
from envci.errors import ExitCode


def commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


CASES = [(cmd, flag) for cmd, p in commands().items() for flag in duration_flags(p).values()]


def test_the_known_duration_flags_are_all_found() -> None:
    assert sorted(CASES) == [("extend", "--ttl"), ("logs", "--since"), ("provision", "--timeout"), ("reap", "--suspend-after"), ("resume", "--timeout"),
                             ("teardown", "--deadline"), ("teardown", "--timeout"), ("wait-ready", "--timeout")]


def test_no_flag_takes_a_duration_without_being_marked_as_one() -> None:
    for cmd, p in commands().items():
        for a in p._actions:
            if a.dest in ("timeout", "ttl", "deadline"):
                assert a.metavar == DURATION, f"{cmd} {a.option_strings}"


def argv(cmd: str, bad_flag: str) -> list[str]:
    """The command with `bad_flag` wrong and every other required duration flag right."""
    p = commands()[cmd]
    out = [cmd] + (["--config", "/nonexistent/envci.yaml"] if any("--config" in a.option_strings for a in p._actions) else [])
    for a in p._actions:
        if a.metavar == DURATION and a.required and a.option_strings[-1] != bad_flag:
            out += [a.option_strings[-1], "1m"]
    return out + [bad_flag, "5x"]


@pytest.mark.parametrize(("cmd", "flag"), CASES)
def test_a_bad_duration_is_bad_input_with_the_flag_and_a_hint(cmd: str, flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv(cmd, flag)) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert f"envci {cmd}: error: {flag}: '5x' is not a duration" in err
    assert "hint: give" in err and "Traceback" not in err


@pytest.mark.parametrize(("cmd", "flag"), CASES)
def test_the_json_error_names_the_flag(cmd: str, flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv(cmd, flag), "--output", "json"]) == ExitCode.BAD_INPUT
    payload = json.loads(capsys.readouterr().out)
    assert payload["exit_code"] == 2 and payload["errors"][0]["field"] == flag


def test_a_good_duration_reaches_the_command_as_a_timedelta() -> None:
    from datetime import timedelta

    from envci.cli import read_durations

    args = build_parser().parse_args(["teardown", "--timeout", "2m30s"])
    read_durations(args)
    assert args.timeout == timedelta(minutes=2, seconds=30)
    args = build_parser().parse_args(["teardown"])
    read_durations(args)
    assert args.timeout == timedelta(minutes=5)  # the default is text too, and converted the same way
