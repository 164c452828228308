"""`helm_test:` suites: `helm test` for a component's release; each test hook becomes a test case.

Helm prints one block per test hook (`TEST SUITE: <pod>`, `Phase: Succeeded|Failed`) and, with
`--logs`, each hook pod's log; `parse_output` reads those. When Helm fails before any hook ran
(release missing, timeout) the whole output becomes one failed case.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from envci.config.model import HelmTestSuite
from envci.helm import Helm
from envci.redact import redact
from envci.report.model import Case, SuiteResult
from envci.testing.base import SuiteContext, failure_case, output_tail

_SUITE = re.compile(r"^TEST SUITE:\s*(?P<name>\S+)\s*$")
_PHASE = re.compile(r"^Phase:\s*(?P<phase>\S+)\s*$")
_LOGS = re.compile(r"^POD LOGS:\s*(?P<name>\S+)\s*$")


def parse_output(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """Pure: ({hook pod: phase}, {hook pod: its log}) from `helm test --logs` output."""
    phases: dict[str, str] = {}
    logs: dict[str, list[str]] = {}
    current: str | None = None
    log_of: str | None = None
    for line in text.splitlines():
        if m := _SUITE.match(line):
            current, log_of = (None if m["name"] == "None" else m["name"]), None
            continue
        if (m := _PHASE.match(line)) and current:
            phases[current] = m["phase"]
            continue
        if m := _LOGS.match(line):
            log_of = m["name"]
            logs[log_of] = []
            continue
        if line.startswith(("NOTES:", "NAME:")):
            log_of = None
        if log_of is not None:
            logs[log_of].append(line)
    return phases, {k: "\n".join(v).strip() for k, v in logs.items()}


def results(suite: HelmTestSuite, release: str, returncode: int, stdout: str, stderr: str, seconds: float) -> tuple[list[Case], str]:
    """Pure: the suite's cases from `helm test`'s exit code and output."""
    phases, logs = parse_output(stdout)
    cases: list[Case] = []
    for pod, phase in phases.items():
        if phase == "Succeeded":
            cases.append(Case(name=pod, classname=suite.name))
        else:
            cases.append(failure_case(pod, suite.name, f"test hook {pod} of release {release}: {phase}", logs.get(pod, "")))
    err = output_tail(redact(stderr), 20)
    if returncode != 0 and not any(c.failed for c in cases):
        cases.append(failure_case("helm test", suite.name, f"helm test {release} exited with code {returncode}", err or output_tail(redact(stdout)), seconds=seconds))
    if returncode == 0 and not cases:
        cases.append(Case(name="helm test", classname=suite.name, seconds=seconds, status="skipped", message=f"release {release} has no test hooks"))
    return cases, f"exit code {returncode}"


def run(suite: HelmTestSuite, ctx: SuiteContext) -> SuiteResult:
    say: Callable[[str], None] = lambda m: ctx.progress(suite.name, m)
    comp = ctx.cfg.spec.component(suite.helm_test)
    release = ctx.releases.get(comp.name) or (comp.helm.release if comp.helm and comp.helm.release else comp.name)
    say(f"helm test {release}")
    t0 = time.monotonic()
    proc = Helm(ctx.env.get("KUBECONFIG")).test(release, ctx.namespace, timeout=suite.timeout)
    seconds = time.monotonic() - t0
    log_path = ctx.log_path(suite.name)
    log_path.write_text(redact(proc.stdout + ("\n" + proc.stderr if proc.stderr else "")), encoding="utf-8")
    cases, message = results(suite, release, proc.returncode, proc.stdout, proc.stderr, seconds)
    say(f"{message}; {len(cases)} test case(s)")
    return SuiteResult(suite.name, "helm-test", cases, seconds=seconds, message=message, log_file=str(log_path))
