"""What every suite runner gets (`SuiteContext`) and the checks made before any suite runs.

A runner is one module with `run(suite, ctx) -> SuiteResult`. It never raises for a failing test:
test failures are results. It raises InfrastructureError only when the cluster or a tool it needs
fails, and the stage turns that into a suite that could not finish.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envci.config.loader import LoadedConfig
from envci.config.model import CommandSuite, HelmTestSuite, JobSuite
from envci.errors import ConfigError
from envci.kube.client import Kube
from envci.output import Reporter
from envci.report.model import Case, clean

AnySuite = CommandSuite | JobSuite | HelmTestSuite

JOB_KEYS: dict[str, str] = {
    "image": "container image (required)",
    "command": "command: a list, or a string run by `sh -c`",
    "args": "arguments after the image's entrypoint (list)",
    "env": "environment variables (mapping of strings)",
    "junit": "path of the JUnit XML file inside the container, printed to the log when the command ends",
    "labels": "extra pod labels (mapping)",
    "service_account": "ServiceAccount the pod runs as",
    "backoff_limit": "retries after the first attempt (default 0)",
}


def kind_of(suite: AnySuite) -> str:
    if isinstance(suite, CommandSuite):
        return "command"
    if isinstance(suite, JobSuite):
        return "job"
    return "helm-test"


def slug(name: str, limit: int = 40) -> str:
    """A suite name as a DNS-1123 label fragment and a safe file name."""
    s = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:limit].rstrip("-")
    return s or "suite"


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


def failure_case(name: str, classname: str, message: str, detail: str = "", *, seconds: float = 0.0, status: str = "failed") -> Case:
    """A synthetic test case for a suite that failed without telling us which test did."""
    return Case(
        name=name, classname=classname, seconds=seconds, status=status,  # type: ignore[arg-type]
        message=clean(message, 500), detail=clean(detail),
    )


def output_tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


# --- checks before running ----------------------------------------------------------------------


def check_suites(cfg: LoadedConfig) -> list[ConfigError]:
    """Pure: every problem in `test:` that would otherwise surface halfway through the run."""
    errors: list[ConfigError] = []
    file = str(cfg.file)

    def err(message: str, *path: str | int, hint: str | None = None) -> None:
        dotted = "test" + "".join(f".{p}" if isinstance(p, str) else f"[{p}]" for p in path)
        errors.append(ConfigError(message, file=file, line=cfg.line("test", *path), field=dotted, hint=hint))

    seen: dict[str, int] = {}
    for i, suite in enumerate(cfg.spec.test):
        if slug(suite.name) in seen:
            err(f"suite name {suite.name!r} is used twice (also test[{seen[slug(suite.name)]}])", i, "name", hint="give each suite its own name")
        seen.setdefault(slug(suite.name), i)
        if isinstance(suite, JobSuite):
            _check_job(suite.job, lambda m, *p, hint=None, i=i: err(m, i, "job", *p, hint=hint))
        elif isinstance(suite, HelmTestSuite):
            try:
                comp = cfg.spec.component(suite.helm_test)
            except KeyError:
                known = ", ".join(c.name for c in cfg.spec.components if c.helm) or "none"
                err(f"unknown component {suite.helm_test!r}", i, "helm_test", hint=f"name a component installed with helm (helm components: {known})")
                continue
            if comp.helm is None:
                err(f"component {suite.helm_test!r} is installed from manifests, not a Helm chart", i, "helm_test",
                    hint="`helm test` needs a Helm release; use a job or command suite for this component")
    return errors


def _check_job(job: dict[str, Any], err: Any) -> None:
    for key in job:
        if key not in JOB_KEYS:
            err(f"unknown key {key!r}", key, hint="known keys: " + ", ".join(sorted(JOB_KEYS)))
    if not isinstance(job.get("image"), str) or not job.get("image"):
        err("`image` is required: the container image that runs the tests", hint="e.g. image: registry.example.com/shop-e2e:1.4")
    cmd = job.get("command")
    if cmd is not None and not (isinstance(cmd, str) or (isinstance(cmd, list) and all(isinstance(x, str) for x in cmd))):
        err("`command` must be a string or a list of strings", "command")
    args = job.get("args")
    if args is not None and not (isinstance(args, list) and all(isinstance(x, str) for x in args)):
        err("`args` must be a list of strings", "args")
    for key in ("env", "labels"):
        val = job.get(key)
        if val is not None and not (isinstance(val, dict) and all(isinstance(k, str) and isinstance(v, (str, int, float, bool)) for k, v in val.items())):
            err(f"`{key}` must map names to strings", key)
    junit_path = job.get("junit")
    if junit_path is not None and (not isinstance(junit_path, str) or not junit_path.startswith("/")):
        err("`junit` must be an absolute path inside the container", "junit", hint="e.g. junit: /reports/junit.xml")
    if job.get("junit") and job.get("args") and not job.get("command"):
        err("`junit` needs `command`: envci wraps the command so the container prints the file when it ends", "junit")
    bl = job.get("backoff_limit")
    if bl is not None and (not isinstance(bl, int) or isinstance(bl, bool) or bl < 0):
        err("`backoff_limit` must be a whole number >= 0", "backoff_limit")
