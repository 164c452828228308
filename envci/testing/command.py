"""`command:` suites: a command on the CI runner, with the environment's facts in its environment.

The command's output is streamed to progress (so CI logs show it live) and saved, redacted, to
`<output dir>/logs/<suite>.log`. Results come from the JUnit files it writes (`junit:`, a glob
relative to envci.yaml); JUnit files older than the run are ignored, since a stale file from an
earlier run would report tests that did not run. Without JUnit, the exit code is the result: one
test case, failed with the output's tail when the command failed.
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from envci.config.model import CommandSuite
from envci.durations import parse_duration
from envci.redact import redact
from envci.report import junit
from envci.report.model import Case, SuiteResult
from envci.testing.base import SuiteContext, failure_case, output_tail

KILL_GRACE_SECONDS = 10
"""How long a timed-out command gets between SIGTERM and SIGKILL to write its reports."""

_running: set[subprocess.Popen[str]] = set()
_running_lock = threading.Lock()


def stop_all() -> None:
    """Stop every command still running (the stage was cancelled): each runs in its own process
    group, so nothing would otherwise stop it with envci."""
    with _running_lock:
        procs = list(_running)
    for proc in procs:
        _stop(proc)


def find_junit(pattern: str, base: Path, since: float) -> tuple[list[str], list[str]]:
    """(fresh, stale) files matching `pattern` (relative to `base`); fresh ones changed at or after `since`."""
    full = pattern if os.path.isabs(pattern) else str(base / pattern)
    fresh: list[str] = []
    stale: list[str] = []
    for path in sorted(glob.glob(full, recursive=True)):
        if not os.path.isfile(path):
            continue
        # one second of slack: some filesystems store whole-second modification times
        (fresh if os.path.getmtime(path) >= since - 1 else stale).append(path)
    return fresh, stale


def results(suite: CommandSuite, *, returncode: int | None, output: str, fresh: list[str], stale: list[str], seconds: float, timeout: str) -> tuple[list[Case], list[str], str]:
    """Pure: the suite's test cases, the JUnit files read, and a one-line message.

    A non-zero exit with passing JUnit still fails the suite (one extra case), since a crash after
    the tests, or a tool that stopped early, would otherwise look green.
    """
    cases: list[Case] = []
    used: list[str] = []
    for path in fresh:
        try:
            cases.extend(junit.parse_file(path))
            used.append(path)
        except junit.JUnitError as e:
            cases.append(failure_case("read JUnit results", suite.name, str(e), status="error"))
    tail = output_tail(output)
    if returncode is None:
        message = f"timed out after {timeout}"
        cases.append(failure_case("command", suite.name, f"the command did not finish within {timeout} and was stopped", tail, seconds=seconds))
        return cases, used, message
    message = f"exit code {returncode}"
    if suite.junit and not fresh:
        why = f"no JUnit file matched {suite.junit!r}"
        if stale:
            why += f" that was written by this run ({len(stale)} older file(s) ignored: {', '.join(stale[:3])})"
        if returncode == 0:
            cases.append(failure_case("read JUnit results", suite.name, why, tail, seconds=seconds, status="error"))
        else:
            cases.append(failure_case("command", suite.name, f"the command exited with code {returncode}; {why}", tail, seconds=seconds))
        return cases, used, message
    if returncode != 0 and not any(c.failed for c in cases):
        cases.append(failure_case("command", suite.name, f"the command exited with code {returncode}", tail, seconds=seconds))
    if not suite.junit and returncode == 0:
        cases.append(Case(name="command", classname=suite.name, seconds=seconds))
    return cases, used, message


def _stream(proc: subprocess.Popen[str], sink: Callable[[str], None], buf: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        line = redact(line.rstrip("\n"))
        buf.append(line)
        sink(line)


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM the command's whole process group, then SIGKILL what is left after the grace period."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=KILL_GRACE_SECONDS)
    except (ProcessLookupError, PermissionError):
        pass
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()


def run(suite: CommandSuite, ctx: SuiteContext, *, clock: Callable[[], float] = time.time) -> SuiteResult:
    say: Callable[[str], None] = lambda m: ctx.progress(suite.name, m)
    log_path = ctx.log_path(suite.name)
    timeout = parse_duration(suite.timeout).total_seconds()
    env = {**os.environ, **ctx.env}
    shell = isinstance(suite.command, str)
    shown = suite.command if shell else " ".join(suite.command)
    say(f"running {shown}")
    started = clock()
    t0 = time.monotonic()
    buf: list[str] = []
    try:
        proc = subprocess.Popen(
            suite.command, shell=shell, cwd=ctx.cfg.base_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, text=True, errors="replace", start_new_session=True,
        )
    except OSError as e:
        message = f"cannot start {shown}: {e.strerror or e}"
        say(message)
        case = failure_case("command", suite.name, message, hint_text(suite), status="error")
        return SuiteResult(suite.name, "command", [case], message=message)
    with _running_lock:
        _running.add(proc)
    reader = threading.Thread(target=_stream, args=(proc, lambda line: say(f"| {line}"), buf), daemon=True)
    reader.start()
    try:
        returncode: int | None = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        say(f"timed out after {suite.timeout}; stopping it")
        _stop(proc)
        returncode = None
    except BaseException:
        _stop(proc)  # cancelled (SIGTERM, Ctrl-C): do not leave the command running
        raise
    finally:
        with _running_lock:
            _running.discard(proc)
    reader.join(timeout=KILL_GRACE_SECONDS)
    seconds = time.monotonic() - t0
    output = "\n".join(buf)
    log_path.write_text(output + "\n", encoding="utf-8")
    fresh, stale = find_junit(suite.junit, ctx.cfg.base_dir, started) if suite.junit else ([], [])
    cases, used, message = results(suite, returncode=returncode, output=output, fresh=fresh, stale=stale, seconds=seconds, timeout=suite.timeout)
    say(f"{message}; {len(cases)} test case(s) from {len(used)} JUnit file(s)" if suite.junit else message)
    return SuiteResult(suite.name, "command", cases, seconds=seconds, message=message, junit_files=used, log_file=str(log_path))


def hint_text(suite: CommandSuite) -> str:
    if isinstance(suite.command, str):
        return "the command runs in `sh -c`; check that the programs it names are installed on the runner"
    return f"{suite.command[0]!r} must be an executable on the runner's PATH (or give the command as a string to run it in a shell)"
