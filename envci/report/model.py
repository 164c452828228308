"""What a test run produced, as plain data: test cases, suites and the whole run.

Every runner (command, job, helm-test) returns a `SuiteResult`; the report writers (JUnit, Markdown,
JSON) and the publishers read only these types, so they never care how a suite ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from envci.errors import ExitCode
from envci.redact import redact, truncate

Status = Literal["passed", "failed", "error", "skipped"]
Outcome = Literal["passed", "failed", "error"]
"""A suite's outcome: `error` means it could not run to the end (the cluster or a tool failed),
`failed` that it ran and some test failed."""


def outcome_exit_code(outcome: Outcome) -> ExitCode:
    """What CI sees of a test run: failed tests are the code's fault, not the environment's; a suite
    that could not run to the end is the infrastructure's."""
    return {"passed": ExitCode.OK, "failed": ExitCode.TESTS_FAILED}.get(outcome, ExitCode.INFRASTRUCTURE)


DETAIL_LIMIT = 4000
"""Characters kept of a failure's body (a stack trace or an output tail): enough to act on, and a
report of a thousand failures stays small enough for CI systems to show."""


def clean(text: str | None, limit: int = DETAIL_LIMIT) -> str:
    """Redacted and cut: the only way text from tests or tools enters a report."""
    return truncate(redact(text or ""), limit) if text else ""


@dataclass
class Case:
    name: str
    classname: str = ""
    seconds: float = 0.0
    status: Status = "passed"
    message: str = ""
    """One line: the failure's or skip's message attribute."""
    kind: str = ""
    """The failure's type attribute, e.g. AssertionError."""
    detail: str = ""
    """The failure's body: a stack trace or output tail (redacted, cut to DETAIL_LIMIT)."""
    file: str = ""

    @property
    def failed(self) -> bool:
        return self.status in ("failed", "error")

    @property
    def title(self) -> str:
        return f"{self.classname}.{self.name}" if self.classname and not self.name.startswith(self.classname) else self.name

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "classname": self.classname, "status": self.status, "seconds": round(self.seconds, 3)}
        for key in ("message", "kind", "detail", "file"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out


@dataclass
class Counts:
    tests: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0

    @classmethod
    def of(cls, cases: list[Case]) -> Counts:
        c = cls(tests=len(cases))
        for case in cases:
            if case.status == "passed":
                c.passed += 1
            elif case.status == "failed":
                c.failed += 1
            elif case.status == "error":
                c.errors += 1
            else:
                c.skipped += 1
        return c

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple())))

    def as_tuple(self) -> tuple[int, int, int, int, int]:
        return (self.tests, self.passed, self.failed, self.errors, self.skipped)

    def as_dict(self) -> dict[str, int]:
        return {"tests": self.tests, "passed": self.passed, "failed": self.failed, "errors": self.errors, "skipped": self.skipped}


@dataclass
class SuiteResult:
    name: str
    kind: str
    """command | job | helm-test"""
    cases: list[Case] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""
    """Set when the suite could not run to the end for a reason outside the tests (exit code 4)."""
    message: str = ""
    """One line on how the suite ended ("exit code 1", "Job failed: BackoffLimitExceeded")."""
    junit_files: list[str] = field(default_factory=list)
    log_file: str = ""

    @property
    def counts(self) -> Counts:
        return Counts.of(self.cases)

    @property
    def outcome(self) -> Outcome:
        if self.error:
            return "error"
        return "failed" if any(c.failed for c in self.cases) else "passed"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "outcome": self.outcome,
            "seconds": round(self.seconds, 3),
            "counts": self.counts.as_dict(),
            "message": self.message,
            "cases": [c.as_dict() for c in self.cases],
        }
        if self.error:
            out["error"] = self.error
        if self.junit_files:
            out["junit_files"] = self.junit_files
        if self.log_file:
            out["log_file"] = self.log_file
        return out


@dataclass
class RunResult:
    """The whole `envci test` run: the environment it ran against and every suite's result."""

    name: str
    namespace: str
    urls: dict[str, str] = field(default_factory=dict)
    suites: list[SuiteResult] = field(default_factory=list)
    seconds: float = 0.0
    started_at: str = ""
    ci: dict[str, str] = field(default_factory=dict)

    @property
    def counts(self) -> Counts:
        total = Counts()
        for s in self.suites:
            total = total + s.counts
        return total

    @property
    def outcome(self) -> Outcome:
        outcomes = {s.outcome for s in self.suites}
        if "error" in outcomes:
            return "error"
        return "failed" if "failed" in outcomes else "passed"

    def failures(self) -> list[tuple[SuiteResult, Case]]:
        return [(s, c) for s in self.suites for c in s.cases if c.failed]
