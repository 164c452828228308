"""The report folder: `junit.xml`, `summary.md`, `report.json` and `test.env`, written together.

`report.json` is the machine-readable record (schema version 1); `envci report` reads it back to
publish again from a later job, so it holds everything the summary needs. `test.env` is a dotenv
file of totals for GitLab's `reports: dotenv` and for Jenkins' `readProperties`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from envci.redact import redact
from envci.report import junit, summary
from envci.report.model import Case, RunResult, SuiteResult

SCHEMA_VERSION = 1
JUNIT_FILE = "junit.xml"
SUMMARY_FILE = "summary.md"
REPORT_FILE = "report.json"
DOTENV_FILE = "test.env"


def report_dict(run: RunResult) -> dict[str, Any]:
    return {
        "version": SCHEMA_VERSION,
        "environment": {"name": run.name, "namespace": run.namespace, "urls": run.urls},
        "ci": run.ci,
        "outcome": run.outcome,
        "started_at": run.started_at,
        "seconds": round(run.seconds, 3),
        "counts": run.counts.as_dict(),
        "suites": [s.as_dict() for s in run.suites],
    }


def run_from_dict(data: dict[str, Any]) -> RunResult:
    """The inverse of `report_dict`, for `envci report` (publishing from a saved report)."""
    if data.get("version") != SCHEMA_VERSION:
        raise ValueError(f"report version {data.get('version')!r} is not {SCHEMA_VERSION}")
    env = data.get("environment") or {}
    suites = []
    for s in data.get("suites") or []:
        cases = [
            Case(
                name=c["name"], classname=c.get("classname", ""), seconds=float(c.get("seconds", 0)), status=c.get("status", "passed"),
                message=c.get("message", ""), kind=c.get("kind", ""), detail=c.get("detail", ""), file=c.get("file", ""),
            )
            for c in s.get("cases") or []
        ]
        suites.append(
            SuiteResult(
                name=s["name"], kind=s.get("kind", ""), cases=cases, seconds=float(s.get("seconds", 0)), error=s.get("error", ""),
                message=s.get("message", ""), junit_files=list(s.get("junit_files") or []), log_file=s.get("log_file", ""),
            )
        )
    return RunResult(
        name=env.get("name", ""), namespace=env.get("namespace", ""), urls=dict(env.get("urls") or {}), suites=suites,
        seconds=float(data.get("seconds", 0)), started_at=data.get("started_at", ""), ci=dict(data.get("ci") or {}),
    )


def dotenv(run: RunResult) -> str:
    c = run.counts
    values = {
        "ENVCI_TESTS_OUTCOME": run.outcome,
        "ENVCI_TESTS_TOTAL": c.tests,
        "ENVCI_TESTS_PASSED": c.passed,
        "ENVCI_TESTS_FAILED": c.failed + c.errors,
        "ENVCI_TESTS_SKIPPED": c.skipped,
    }
    return "".join(f"{k}={v}\n" for k, v in values.items())


def _write(path: Path, text: str) -> None:
    """Write through a temporary file, so a reader (or a killed run) never sees half a report."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(redact(text), encoding="utf-8")
    os.replace(tmp, path)


def report_paths(out_dir: Path) -> dict[str, Path]:
    """{kind: path} of the report files in `out_dir`; `envci report` finds a report written earlier by them."""
    return {"junit": out_dir / JUNIT_FILE, "summary": out_dir / SUMMARY_FILE, "json": out_dir / REPORT_FILE, "dotenv": out_dir / DOTENV_FILE}


def write_reports(run: RunResult, out_dir: Path, *, build_url: str = "") -> dict[str, str]:
    """Write every report file; returns {kind: path}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = report_paths(out_dir)
    _write(paths["junit"], junit.render(run))
    _write(paths["summary"], summary.render(run, build_url=build_url))
    _write(paths["json"], json.dumps(report_dict(run), indent=2, sort_keys=True) + "\n")
    _write(paths["dotenv"], dotenv(run))
    return {k: str(v) for k, v in paths.items()}


def read_report(out_dir: Path) -> RunResult:
    path = out_dir / REPORT_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise FileNotFoundError(f"{path}: {e.strerror}") from None
    return run_from_dict(data)
