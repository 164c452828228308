"""The CLI's table of commands, and the decisions its handlers leave to small modules: which
forge token reap uses, which environment a command without envci.yaml means, which files
`envci report` reads, and what a test outcome exits with."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

import pytest

from envci.ci.tokens import forge_token, pr_state_check
from envci.cli import build_parser, main
from envci.commands import HANDLERS
from envci.errors import ConfigError, ExitCode
from envci.locate import Located, locate
from envci.report.files import report_paths, write_reports
from envci.report.model import Case, RunResult, SuiteResult, outcome_exit_code


def parser_commands() -> set[str]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def test_every_command_of_the_parser_has_a_handler_and_every_handler_a_command() -> None:
    commands = parser_commands()
    assert commands - set(HANDLERS) == set(), "commands the parser offers that nothing runs"
    assert set(HANDLERS) - commands == set(), "handlers no command line reaches"


def test_help_loads_neither_the_handlers_nor_a_cluster_client() -> None:
    # `envci --help` is what a person types first, and what every wrapper runs to check an install.
    code = ("import sys\nfrom envci.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('envci.commands', 'envci.invocation', 'kubernetes', 'requests', 'pydantic') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "[]"


def test_the_github_token_is_chosen_first_with_its_api_address() -> None:
    env = {"ENVCI_GITHUB_TOKEN": "gh", "ENVCI_GITLAB_TOKEN": "gl", "CI_API_V4_URL": "https://gitlab.example/api/v4"}
    t = forge_token(env)
    assert t is not None and (t.system, t.api, t.token) == ("github", "https://api.github.com", "gh")
    t = forge_token({**env, "GITHUB_API_URL": "https://ghe.example/api/v3"})
    assert t is not None and t.api == "https://ghe.example/api/v3"


def test_a_gitlab_token_needs_the_api_address() -> None:
    assert forge_token({"ENVCI_GITLAB_TOKEN": "gl"}) is None
    t = forge_token({"ENVCI_GITLAB_TOKEN": "gl", "CI_API_V4_URL": "https://gitlab.example/api/v4"})
    assert t is not None and (t.system, t.api) == ("gitlab", "https://gitlab.example/api/v4")
    assert forge_token({"ENVCI_GITHUB_TOKEN": ""}) is None


def test_a_token_never_shows_in_its_repr() -> None:
    assert "s3cr3t" not in repr(forge_token({"ENVCI_GITHUB_TOKEN": "s3cr3t"}))


def test_closed_prs_without_a_token_is_bad_input_naming_the_flag() -> None:
    with pytest.raises(ConfigError) as ei:
        pr_state_check({})
    assert ei.value.field == "--closed-prs" and ei.value.exit_code == ExitCode.BAD_INPUT


def test_reap_refuses_closed_prs_without_a_token_before_reading_the_kubeconfig(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("ENVCI_GITHUB_TOKEN", "ENVCI_GITLAB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    assert main(["reap", "--closed-prs", "--kubeconfig", "/nonexistent/kubeconfig", "-o", "json"]) == ExitCode.BAD_INPUT
    assert json.loads(capsys.readouterr().out)["errors"][0]["field"] == "--closed-prs"


def never() -> NoReturn:
    raise AssertionError("called")


def test_an_env_name_without_envci_yaml_needs_neither_file_nor_cluster(tmp_path: Path) -> None:
    found = locate(config=str(tmp_path / "envci.yaml"), env_name="shop-pr-1", load=never, kube=never, progress=lambda m: None)
    assert found == Located("shop-pr-1", None)


def test_no_environment_for_the_context_is_said_not_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class NoNamespaces:
        def namespaces(self, label_selector: str) -> list[dict[str, Any]]:
            return []

    said: list[str] = []
    found = locate(config=str(tmp_path / "envci.yaml"), env_name=None, load=never, kube=NoNamespaces,  # type: ignore[arg-type]
                   progress=said.append, env={"ENVCI_BRANCH": "main"})
    assert found.name is None and found.missing and said and "by its labels" in said[0]


def run_result(status: str) -> RunResult:
    return RunResult(name="shop-pr-1", namespace="envci-shop-pr-1",
                     suites=[SuiteResult(name="api", kind="command", cases=[Case(name="t", status=status)])])  # type: ignore[arg-type]


def test_report_reads_the_files_test_wrote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import envci.ci.publish

    monkeypatch.setattr(envci.ci.publish, "publish_report", lambda *a, **kw: {"summary": "skipped"})
    written = write_reports(run_result("failed"), tmp_path)
    assert written == {k: str(p) for k, p in report_paths(tmp_path).items()}
    assert main(["report", "--output-dir", str(tmp_path), "-o", "json"]) == ExitCode.TESTS_FAILED
    assert json.loads(capsys.readouterr().out)["files"] == written


@pytest.mark.parametrize(("outcome", "code"), [("passed", ExitCode.OK), ("failed", ExitCode.TESTS_FAILED), ("error", ExitCode.INFRASTRUCTURE)])
def test_a_test_outcome_exits_with_its_code(outcome: Any, code: ExitCode) -> None:
    assert outcome_exit_code(outcome) == code
