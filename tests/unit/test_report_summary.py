"""The Markdown summary, the report folder, and secrets kept out of every report file."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from envci import redact
from envci.report import files, summary
from envci.report.model import Case, RunResult, SuiteResult


def run_with(*suites: SuiteResult, urls: dict[str, str] | None = None) -> RunResult:
    return RunResult("shop-pr-7", "envci-shop-pr-7", urls=urls or {}, suites=list(suites), seconds=75.0, started_at="2024-05-01T10:00:00Z")


def failing_run() -> RunResult:
    smoke = SuiteResult("smoke", "command", [
        Case("test_a", "checks", 0.5), Case("test_b", "checks", 0.25),
        Case("test_total", "checks", 0.1, "failed", "AssertionError: checkout total is off by one", "AssertionError", "line 1\nline 2\n>  assert 21 == 20"),
        Case("test_s3", "checks", status="skipped", message="needs S3"),
    ], seconds=12.0)
    e2e = SuiteResult("e2e", "job", [Case("job", "e2e", status="error", message="Job envci-test-e2e failed: DeadlineExceeded")], seconds=60, error="cluster said no")
    return run_with(smoke, e2e, urls={"web": "http://shop-pr-7.preview.local/"})


def test_summary_has_totals_suites_failures_durations_and_urls() -> None:
    md = summary.render(failing_run())
    assert md.startswith("### ⚠️ envci tests could not finish: `shop-pr-7`")
    assert "**4** tests" not in md and "**5** tests, **2** passed, **1** failed, **1** errors, **1** skipped in 1m15s" in md
    assert "| smoke | command | ❌ failed | 4 | 1 | 1 | 12.0s |" in md
    assert "| e2e | job | ⚠️ error | 1 | 1 | 0 | 1m |" in md
    assert "- **e2e**: cluster said no" in md
    assert "<b>smoke</b> › checks.test_total: AssertionError: checkout total is off by one</summary>" in md
    assert ">  assert 21 == 20" in md
    assert "- **web**: http://shop-pr-7.preview.local/" in md


def test_a_green_run_says_passed_and_lists_no_failures() -> None:
    md = summary.render(run_with(SuiteResult("smoke", "command", [Case("t", "c", 1.0)], seconds=1.0)))
    assert md.startswith("### ✅ envci tests passed")
    assert "Failures" not in md


def test_test_output_cannot_break_out_of_the_fence_or_the_table() -> None:
    nasty = Case("t|x", "c", status="failed", message="a | b\nsecond line", detail="```\n# heading\n````")
    md = summary.render(run_with(SuiteResult("s|1", "command", [nasty])))
    assert "| s\\|1 | command |" in md
    assert "`````text" in md  # a fence longer than any backtick run in the detail
    assert "a \\| b second line" in md


def test_many_failures_are_cut_and_counted() -> None:
    cases = [Case(f"t{i}", "c", status="failed", message=f"m{i}", detail="x\n" * 50) for i in range(30)]
    md = summary.render(run_with(SuiteResult("big", "command", cases)), max_failures=5)
    assert md.count("<details>") == 5
    assert "…and 25 more failures" in md


def test_render_within_fits_the_comment_limit_by_showing_less() -> None:
    cases = [Case(f"t{i}", "c", status="failed", message=f"m{i}", detail=("long line " * 30 + "\n") * 15) for i in range(40)]
    run = run_with(SuiteResult("big", "command", cases))
    full = summary.render(run)
    fitted = summary.render_within(run, 20_000)
    assert len(full) > 20_000 >= len(fitted)
    assert fitted.count("```") % 2 == 0 and fitted.count("<details>") == fitted.count("</details>")
    tiny = summary.render_within(run, 300)
    assert len(tiny) <= 300 and tiny.endswith("artifacts)\n")


def test_report_folder_has_every_file_and_the_json_round_trips(tmp_path: Path) -> None:
    run = failing_run()
    paths = files.write_reports(run, tmp_path / "out", build_url="https://ci.example.com/b/9")
    assert sorted(Path(p).name for p in paths.values()) == ["junit.xml", "report.json", "summary.md", "test.env"]
    data = json.loads(Path(paths["json"]).read_text())
    assert data["version"] == 1 and data["outcome"] == "error"
    assert data["counts"] == {"tests": 5, "passed": 2, "failed": 1, "errors": 1, "skipped": 1}
    assert data["environment"]["urls"] == {"web": "http://shop-pr-7.preview.local/"}
    assert data["suites"][0]["cases"][2]["message"] == "AssertionError: checkout total is off by one"
    again = files.read_report(tmp_path / "out")
    assert files.report_dict(again) == data
    assert Path(paths["dotenv"]).read_text() == (
        "ENVCI_TESTS_OUTCOME=error\nENVCI_TESTS_TOTAL=5\nENVCI_TESTS_PASSED=2\nENVCI_TESTS_FAILED=2\nENVCI_TESTS_SKIPPED=1\n"
    )
    assert "[build](https://ci.example.com/b/9)" in Path(paths["summary"]).read_text()
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_a_report_of_another_version_is_refused(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text(json.dumps({"version": 99}))
    with pytest.raises(ValueError, match="version 99"):
        files.read_report(tmp_path)


def test_secrets_never_reach_any_report_file(tmp_path: Path) -> None:
    secret = "s3cr3t-db-Passw0rd&<x>"
    redact.register(secret)
    # a secret arriving through parsed JUnit (escaped in XML), a synthetic case and a suite error
    from envci.report import junit

    xml_text = f'<testsuite><testcase name="login"><failure message="auth with {secret.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")} failed">{secret.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")}</failure></testcase></testsuite>'
    parsed = junit.parse(xml_text, "x.xml")
    assert secret not in parsed[0].message and secret not in parsed[0].detail
    from envci.testing.base import failure_case

    synthetic = failure_case("command", "deploy", f"exit 1: curl -u admin:{secret}", f"output\n{secret}\n")
    run = run_with(SuiteResult("deploy", "command", parsed + [synthetic], error=redact.redact(f"boom {secret}")))
    paths = files.write_reports(run, tmp_path)
    for p in paths.values():
        text = Path(p).read_text()
        assert secret not in text, p
        assert "***" in text or p.endswith("test.env")
    # the JUnit file is still well-formed after masking
    ET.fromstring(Path(paths["junit"]).read_text())
