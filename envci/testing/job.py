"""`job:` suites: a test container run as a Kubernetes Job inside the environment.

Results come back through the pod's log, the one channel every cluster offers without volumes,
exec rights or a sidecar: when `junit:` names a file in the container, envci wraps the command so
that, after it ends, the container prints each matching file between two marker lines and exits
with the command's exit code:

    --- envci-junit-begin ---
    <testsuites>...</testsuites>
    --- envci-junit-end ---

A container may also print the markers itself (then no `junit:` is needed). The Job is run by
envci.kube.jobs, which waits on a watch and explains a failure (reason, pod states, log tail).
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Iterable
from typing import Any

from envci.config.model import JobSuite, SuiteJob
from envci.durations import parse_duration
from envci.errors import InfrastructureError
from envci.kube import jobs
from envci.kube.client import Kube
from envci.redact import redact
from envci.report import junit
from envci.report.model import Case, SuiteResult
from envci.testing.base import SuiteContext, failure_case, output_tail, slug

BEGIN = "--- envci-junit-begin ---"
END = "--- envci-junit-end ---"
CONTAINER = "tests"
SUITE_LABEL = "envci.io/test-suite"
LOG_LIMIT_BYTES = 32 * 1024 * 1024
"""The most of a pod's log envci reads: large JUnit files fit, a runaway log does not fill memory."""
DEADLINE_MARGIN_SECONDS = 30
"""envci waits this much longer than the Job's own activeDeadlineSeconds, so the Job controller's
reason (DeadlineExceeded) reaches the report instead of envci's own timeout."""

WRAPPER = f"""sh -c "$ENVCI_TEST_COMMAND"
rc=$?
for f in $ENVCI_JUNIT; do
  [ -f "$f" ] || continue
  echo '{BEGIN}'
  cat "$f"
  echo
  echo '{END}'
done
exit $rc
"""
"""Runs the user's command, then prints every JUnit file matching $ENVCI_JUNIT (unquoted on purpose:
the shell expands a glob) between the markers, and exits with the command's code."""


def job_name(suite_name: str) -> str:
    return f"envci-test-{slug(suite_name)}"


def container_command(job: SuiteJob) -> tuple[list[str] | None, list[str] | None, dict[str, str]]:
    """Pure: (command, args, extra env) for the container, wrapped when `junit` is set."""
    cmd = job.command
    args = list(job.args) if job.args else None
    if not job.junit or not cmd:
        if isinstance(cmd, str):
            return ["sh", "-c", cmd], args, {}
        return (list(cmd) if cmd else None), args, {}
    text = cmd if isinstance(cmd, str) else shlex.join(cmd)
    return ["sh", "-c", WRAPPER], None, {"ENVCI_TEST_COMMAND": text, "ENVCI_JUNIT": job.junit}


def hidden_env(suite: JobSuite, secret_names: Iterable[str]) -> dict[str, str]:
    """Pure: the suite's env values that read a secret; envci's own variables never do."""
    extra = container_command(suite.job)[2]
    _, hidden = jobs.split_env(suite.job.env, secret_names)
    return {k: v for k, v in hidden.items() if k not in extra}


def env_secret(suite: JobSuite, secret_names: Iterable[str], *, env_name: str) -> dict[str, Any] | None:
    """Pure: the Secret passing the suite's secret env values to its Job, or None when none is."""
    hidden = hidden_env(suite, secret_names)
    if not hidden:
        return None
    labels = {SUITE_LABEL: slug(suite.name), "envci.io/environment": env_name}
    return jobs.env_secret_object(jobs.env_secret_name(job_name(suite.name)), hidden, labels)


def job_manifest(suite: JobSuite, env: dict[str, str], *, env_name: str, secret_names: Iterable[str] = ()) -> dict[str, Any]:
    """Pure: the Job that runs the suite; env values that read a secret come from env_secret's Secret."""
    spec = suite.job
    command, args, extra = container_command(spec)
    facts = {k: v for k, v in env.items() if k != "KUBECONFIG"}  # a runner's path means nothing in a pod
    labels = {"envci.io/managed": "true", SUITE_LABEL: slug(suite.name), "envci.io/environment": env_name}
    pod_labels = {**spec.labels, SUITE_LABEL: slug(suite.name)}
    secret_name = jobs.env_secret_name(job_name(suite.name))
    return jobs.job_object(
        job_name(suite.name),
        image=spec.image,
        command=command,
        args=args,
        env={**facts, **spec.env, **extra},
        secret_env={k: secret_name for k in hidden_env(suite, secret_names)},
        labels=labels,
        pod_labels=pod_labels,
        backoff_limit=spec.backoff_limit,
        deadline_seconds=int(parse_duration(suite.timeout).total_seconds()),
        service_account=spec.service_account,
        container=CONTAINER,
    )


def extract_junit(log: str) -> list[str]:
    """Pure: the text of every block between the markers; an unterminated last block counts too
    (the log may have been cut), and parsing will say if it is incomplete."""
    blocks: list[str] = []
    current: list[str] | None = None
    for line in log.splitlines():
        stripped = line.strip()
        if stripped == BEGIN:
            current = []
        elif stripped == END and current is not None:
            blocks.append("\n".join(current))
            current = None
        elif current is not None:
            current.append(line)
    if current:
        blocks.append("\n".join(current))
    return [b for b in blocks if b.strip()]


def strip_junit(log: str) -> str:
    """Pure: the log without the JUnit blocks, for the output tail of a failure."""
    out, inside = [], False
    for line in log.splitlines():
        if line.strip() == BEGIN:
            inside = True
        elif line.strip() == END:
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)


def results(suite: JobSuite, result: jobs.JobResult, log: str, pod: str) -> tuple[list[Case], str]:
    """Pure: the suite's cases from the Job's outcome and its last pod's log."""
    cases: list[Case] = []
    for i, block in enumerate(extract_junit(log)):
        try:
            cases.extend(junit.parse(block, f"JUnit block {i + 1} in the log of pod {pod}"))
        except junit.JUnitError as e:
            cases.append(failure_case("read JUnit results", suite.name, str(e), block[-2000:], status="error"))
    tail = output_tail(strip_junit(log))
    message = f"Job {result.state}" + (f": {result.reason}" if result.reason else "")
    if result.state != "succeeded":
        if not any(c.failed for c in cases):
            detail = result.describe() + ("\n\nlog of pod " + pod + ":\n" + tail if tail else "")
            cases.append(failure_case("job", suite.name, f"Job {result.name} failed: {result.reason or 'Failed'} {result.message}".strip(), detail, seconds=result.seconds))
        return cases, message
    if not cases:
        if suite.job.junit:
            where = f"the log of pod {pod}" if pod else "the Job's pods (none found)"
            cases.append(failure_case(
                "read JUnit results", suite.name,
                f"the Job succeeded but {where} holds no JUnit between {BEGIN!r} and {END!r} (is {suite.job.junit!r} written?)",
                tail, status="error",
            ))
        else:
            cases.append(Case(name="job", classname=suite.name, seconds=result.seconds))
    return cases, message


def read_log(kube: Kube, namespace: str, pod: str) -> str:
    """The whole log of the pod's test container (up to LOG_LIMIT_BYTES), redacted."""
    text = kube.read_log(namespace, pod, CONTAINER, limit_bytes=LOG_LIMIT_BYTES, timestamps=False)
    if text is None:
        raise InfrastructureError(f"cannot read the log of pod {namespace}/{pod}: the pod or its container is gone",
                                  hint="the pod may have been deleted; run the suite again")
    return redact(text)


def run(suite: JobSuite, ctx: SuiteContext) -> SuiteResult:
    say: Callable[[str], None] = lambda m: ctx.progress(suite.name, m)
    if ctx.kube is None:
        raise InfrastructureError(f"suite {suite.name} needs the cluster, and no connection was made")
    secret_names = ctx.cfg.secret_keys("test", ctx.index, "job", "env")
    obj = job_manifest(suite, ctx.env, env_name=ctx.cfg.identity.name, secret_names=secret_names)
    secret = env_secret(suite, secret_names, env_name=ctx.cfg.identity.name)
    timeout = parse_duration(suite.timeout).total_seconds() + DEADLINE_MARGIN_SECONDS
    t0 = time.monotonic()
    result = jobs.run_job(ctx.kube, ctx.namespace, obj, timeout=timeout, reuse_succeeded=False, log_lines=40, progress=say, secret=secret)
    pod = result.pods[-1] if result.pods else ""
    log = read_log(ctx.kube, ctx.namespace, pod) if pod else ""
    log_path = ctx.log_path(suite.name)
    log_path.write_text(log, encoding="utf-8")
    cases, message = results(suite, result, log, pod)
    say(f"{message}; {len(cases)} test case(s)")
    return SuiteResult(suite.name, "job", cases, seconds=time.monotonic() - t0, message=message, log_file=str(log_path))
