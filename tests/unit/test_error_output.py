"""What a failed command prints is redacted, and history that cannot be written is said, not hidden."""

from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from envci import cli
from envci import state as st
from envci.errors import ConfigError, InfrastructureError, NotReadyError
from envci.output import Reporter
from envci.redact import register
from envci.stages import test as test_stage
from envci.stages import wait_ready

SECRET = "hunter2-very-secret"


@pytest.fixture(autouse=True)
def _registered() -> None:
    register(SECRET)


def failing_with(error: Exception, monkeypatch: pytest.MonkeyPatch) -> None:
    def run(args: argparse.Namespace, rep: Reporter) -> int:
        raise error

    monkeypatch.setattr(cli, "run", run)


@pytest.mark.parametrize("error", [
    InfrastructureError(f"Kubernetes API refused: password {SECRET} is wrong", hint=f"try {SECRET}"),
    ConfigError(f"bad value {SECRET}", file="envci.yaml", line=3, field="values.x", hint=SECRET),
    NotReadyError(f"db failed: {SECRET}", failures=[{"workload": "db", "logs": f"FATAL: password {SECRET}"}]),
])
@pytest.mark.parametrize("output", ["text", "json"])
def test_errors_are_redacted_on_both_streams(error: Exception, output: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    failing_with(error, monkeypatch)
    code = cli.main(["status", "--env", "x", "--config", "/nonexistent.yaml", "--output", output])
    out, err = capsys.readouterr()
    assert code == int(error.exit_code)  # type: ignore[attr-defined]
    assert SECRET not in out and SECRET not in err
    assert "***" in err
    if output == "json":
        assert json.loads(out)["exit_code"] == code


def test_an_internal_error_is_redacted_too(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    failing_with(RuntimeError(f"boom {SECRET}"), monkeypatch)
    assert cli.main(["status", "--env", "x", "--config", "/nonexistent.yaml"]) == 4
    err = capsys.readouterr().err
    assert SECRET not in err and "internal error: boom ***" in err
    assert "Traceback" not in err  # one line for the user; the story goes to a file for the report
    details = Path(re.search(r"with the details in (\S+)\)", err).group(1))  # type: ignore[union-attr]
    kept = details.read_text()
    assert "Traceback" in kept and "RuntimeError" in kept and SECRET not in kept
    assert details.stat().st_mode & 0o077 == 0
    details.unlink()


class UnwritableKube:
    """st.save fails the way a real API failure reaches it: as an EnvciError."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def apply(self, obj: dict[str, Any], namespace: str | None) -> dict[str, Any]:
        raise self.error

    def get(self, *args: Any, **kwargs: Any) -> None:
        return None


def state() -> st.EnvState:
    return st.EnvState(name="shop-pr-1", namespace="envci-shop-pr-1", app="shop")


def test_wait_ready_says_when_its_history_cannot_be_written(caplog: pytest.LogCaptureFixture) -> None:
    kube = UnwritableKube(InfrastructureError("Kubernetes API refused to apply ConfigMap envci-state: forbidden"))
    with caplog.at_level(logging.WARNING, logger="envci.stages"):
        wait_ready._record(kube, state(), "wait-ready", "succeeded", "1s")  # type: ignore[arg-type]
    assert "could not record wait-ready succeeded in the history of envci-shop-pr-1: Kubernetes API refused" in caplog.text


def test_test_stage_says_when_its_history_cannot_be_written(caplog: pytest.LogCaptureFixture) -> None:
    kube = UnwritableKube(InfrastructureError("Kubernetes API refused to apply ConfigMap envci-state: forbidden"))
    with caplog.at_level(logging.WARNING, logger="envci.stages"):
        test_stage._record(kube, state(), "passed", "3 tests")  # type: ignore[arg-type]
    assert "could not record the test outcome in the history of envci-shop-pr-1" in caplog.text


@pytest.mark.parametrize("record", [
    lambda kube: wait_ready._record(kube, state(), "wait-ready", "failed", ""),
    lambda kube: test_stage._record(kube, state(), "failed", ""),
])
def test_a_bug_while_recording_is_not_swallowed(record: Any) -> None:
    with pytest.raises(TypeError):
        record(UnwritableKube(TypeError("a programming error must surface")))
