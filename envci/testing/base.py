"""What every suite runner gets (`SuiteContext`); the suites were checked when envci.yaml loaded.

A runner is one module with `run(suite, ctx) -> SuiteResult`. It never raises for a failing test:
test failures are results. It raises InfrastructureError only when the cluster or a tool it needs
fails, and the stage turns that into a suite that could not finish.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from envci.config.loader import LoadedConfig
from envci.config.model import CommandSuite, HelmTestSuite, JobSuite, suite_slug
from envci.kube.client import Kube
from envci.output import Reporter
from envci.report.model import Case, Status, clean

AnySuite = CommandSuite | JobSuite | HelmTestSuite
slug = suite_slug  # names a suite's Job and log file


def kind_of(suite: AnySuite) -> str:
    if isinstance(suite, CommandSuite):
        return "command"
    if isinstance(suite, JobSuite):
        return "job"
    return "helm-test"


@dataclass
class SuiteContext:
    cfg: LoadedConfig
    kube: Kube | None
    rep: Reporter
    env: dict[str, str]
    """The environment's facts for the tests: ENVCI_NAME, ENVCI_NAMESPACE, ENVCI_URL_*, KUBECONFIG."""
    out_dir: Path
    index: int = 0
    releases: dict[str, str] = field(default_factory=dict)
    """Component name -> Helm release name, from the environment's record."""

    @property
    def namespace(self) -> str:
        return self.cfg.identity.namespace

    def progress(self, name: str, message: str) -> None:
        self.rep.progress(f"  test[{name}]: {message}")

    def log_path(self, name: str) -> Path:
        d = self.out_dir / "logs"
        d.mkdir(parents=True, exist_ok=True)
        return d / f"{slug(name)}.log"


def failure_case(name: str, classname: str, message: str, detail: str = "", *, seconds: float = 0.0, status: Status = "failed") -> Case:
    """A synthetic test case for a suite that failed without telling us which test did."""
    return Case(
        name=name, classname=classname, seconds=seconds, status=status,
        message=clean(message, 500), detail=clean(detail),
    )


def output_tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])
