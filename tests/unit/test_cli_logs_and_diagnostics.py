"""The CLI side of `envci logs` and of the diagnostics bundle: flags refused before the cluster is
touched, the bundle named in the JSON error, and `envci up`'s summary of a kept environment."""

from __future__ import annotations

import json

import pytest

from envci.cli import build_parser, error_payload, main
from envci.errors import ExitCode, NotReadyError
from envci.stages.up import format_result

NO_CONFIG = ["--env", "shop-pr-1", "--config", "/nonexistent/envci.yaml", "--kubeconfig", "/nonexistent/kubeconfig"]


@pytest.mark.parametrize(
    ("flags", "field"),
    [(["-f", "--previous"], "--previous"), (["--tail", "-5"], "--tail")],
)
def test_contradictory_or_bad_log_flags_are_bad_input_before_any_cluster(flags: list[str], field: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["logs", *flags, *NO_CONFIG, "-o", "json"]) == ExitCode.BAD_INPUT
    payload = json.loads(capsys.readouterr().out)
    assert payload["errors"][0]["field"] == field  # not a connection error: the kubeconfig was never read


def test_logs_takes_the_common_flags_and_a_component() -> None:
    args = build_parser().parse_args(["logs", "web", "-f", "--since", "10m", "--tail", "20", "--env", "e", "-c", "x.yaml", "--kubeconfig", "k", "-o", "json"])
    assert (args.component, args.follow, args.since, args.tail, args.env, args.config, args.kubeconfig, args.output) == (
        "web", True, "10m", 20, "e", "x.yaml", "k", "json",
    )
    assert build_parser().parse_args(["logs"]).component is None


@pytest.mark.parametrize("cmd", ["provision", "wait-ready", "seed", "test", "up"])
def test_every_stage_that_can_fail_takes_the_report_folder(cmd: str) -> None:
    assert build_parser().parse_args([cmd, "--output-dir", "out"]).output_dir == "out"


def test_the_json_error_names_the_bundle() -> None:
    e = NotReadyError("environment shop-pr-1 is not ready", hint="fix it")
    assert "diagnostics" not in error_payload(e)
    e.add_diagnostics("envci-report/diagnostics/summary.md")
    assert error_payload(e)["diagnostics"] == "envci-report/diagnostics/summary.md"
    assert str(e) == "environment shop-pr-1 is not ready\n  diagnostics: envci-report/diagnostics/summary.md\n  hint: fix it"


def test_up_summary_of_an_environment_kept_after_a_failure() -> None:
    res = {"name": "shop-pr-1", "namespace": "envci-shop-pr-1", "seconds": {"provision": 3.0, "wait-ready": 2.0}, "stages": {},
           "kept": True, "forward_commands": [], "diagnostics": "envci-report/diagnostics/summary.md"}
    text = format_result(res, keep=False)
    assert "kept; `envci teardown --env shop-pr-1` removes it" in text
    assert text.endswith("diagnostics: envci-report/diagnostics/summary.md")
