"""test: run the `test:` suites against the environment and always leave a report.

Suites run in file order; consecutive suites marked `parallel: true` run together (threads), so
the order a reader sees in envci.yaml is the order things happen. A suite that cannot finish
(the cluster or a tool failed) is recorded as an error and the next suite still runs: one broken
suite should not hide the results of the others.

The stage does not take the environment's lease: tests only read the environment, and several
CI jobs (test shards) may test the same environment at once. History is written at the end.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from envci import state as st
from envci.ci.outputs import flat_outputs
from envci.config.loader import LoadedConfig
from envci.config.model import CommandSuite, JobSuite
from envci.errors import EnvciError, NotReadyError
from envci.kube.client import Kube
from envci.namespace import rfc3339
from envci.output import Reporter
from envci.redact import redact, truncate
from envci.report.files import write_reports
from envci.report.model import RunResult, SuiteResult
from envci.suspension import refuse_suspended
from envci.testing import command, helm_test, job
from envci.testing.base import (
    AnySuite,
    SuiteContext,
    failure_case,
    kind_of,
    slug,
)
from envci.testing.forwards import forwarded

log = logging.getLogger("envci.stages")

MAX_PARALLEL = 8
"""Suites run at once in a parallel group: enough for typical suites, few enough not to starve
a shared runner or flood the API server with Job watches."""


def groups(suites: list[AnySuite]) -> list[list[AnySuite]]:
    """Pure: the suites in running order; consecutive parallel suites share a group."""
    out: list[list[AnySuite]] = []
    for s in suites:
        if s.parallel and out and out[-1][0].parallel:
            out[-1].append(s)
        else:
            out.append([s])
    return out


def select(suites: list[AnySuite], names: list[str] | None) -> list[AnySuite]:
    """The suites named (by name), in file order; all when `names` is empty."""
    if not names:
        return list(suites)
    known = {slug(s.name): s for s in suites}
    missing = [n for n in names if slug(n) not in known]
    if missing:
        from envci.errors import ConfigError

        raise ConfigError(f"no test suite named {', '.join(map(repr, missing))}", field="--suite",
                          hint="suites in envci.yaml: " + (", ".join(s.name for s in suites) or "none"))
    wanted = {slug(n) for n in names}
    return [s for s in suites if slug(s.name) in wanted]


def runner_environment(name: str, namespace: str, urls: dict[str, str], kubeconfig: str | None) -> dict[str, str]:
    """Pure: the variables a test sees: the same names `envci provision` publishes, plus KUBECONFIG."""
    env = flat_outputs(name, namespace, urls)
    if kubeconfig:
        env["KUBECONFIG"] = os.path.abspath(kubeconfig)
    return env


def run_suite(suite: AnySuite, ctx: SuiteContext) -> SuiteResult:
    """Run one suite; a failure outside the tests becomes a suite that could not finish."""
    t0 = time.monotonic()
    try:
        if isinstance(suite, CommandSuite):
            return command.run(suite, ctx)
        if isinstance(suite, JobSuite):
            return job.run(suite, ctx)
        return helm_test.run(suite, ctx)
    except EnvciError as e:
        message = redact(str(e))
    except Exception as e:  # noqa: BLE001 - one broken suite must not lose every other suite's results
        message = redact(f"{type(e).__name__}: {e}")
    ctx.progress(suite.name, f"could not finish: {message}")
    seconds = time.monotonic() - t0
    case = failure_case(kind_of(suite), suite.name, truncate(message, 500), message, seconds=seconds, status="error")
    return SuiteResult(suite.name, kind_of(suite), [case], seconds=seconds, error=truncate(message, 500), message="could not finish")


def test(
    cfg: LoadedConfig,
    kube: Kube,
    rep: Reporter,
    *,
    out_dir: Path,
    kubeconfig: str | None = None,
    suites: list[str] | None = None,
    runner: Callable[[AnySuite, SuiteContext], SuiteResult] = run_suite,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> tuple[RunResult, dict[str, str]]:
    """Run the suites, write the report folder, record the outcome. Returns the run and the files."""
    chosen = select(cfg.spec.test, suites)
    ident = cfg.identity
    ns = ident.namespace
    ns_obj = kube.namespace(ns)
    if ns_obj is None:
        raise NotReadyError(f"environment {ident.name} does not exist (namespace {ns})", hint="run `envci provision` and `envci wait-ready` first")
    refuse_suspended(ns_obj, ident.name)
    state = st.load(kube, ns)
    st.touch(kube, ns, now=clock())
    from envci.urls import environment_urls

    urls = (state.urls if state and state.urls else None) or environment_urls(cfg.spec.components, ns)
    releases = {n: r.release for n, r in (state.components.items() if state else []) if r.release}
    kubeconfig = kubeconfig or kube.kubeconfig or os.environ.get("KUBECONFIG")
    env = runner_environment(ident.name, ns, urls, kubeconfig)
    run = RunResult(
        name=ident.name, namespace=ns, urls=dict(urls), started_at=rfc3339(clock()),
        ci={k: v for k, v in ident.ctx.as_template_context().items() if v},
    )
    if not chosen:
        rep.warn(f"{cfg.file}: `test:` has no suites; the report will be empty")
    rep.progress(f"testing environment {ident.name} in {ns}: {len(chosen)} suite(s)")
    t0 = time.monotonic()
    written: dict[str, str] = {}
    forwards = contextlib.ExitStack()
    try:
        local: dict[str, str] = {}
        if any(isinstance(s, CommandSuite) for s in chosen):
            # Runner-side suites reach the environment through loopback ports (envci.testing.forwards);
            # a loopback URL means nothing inside a pod, so only they get them.
            local = forwards.enter_context(forwarded(kube, ns, cfg.spec.components, progress=rep.progress, warn=rep.warn))
        for group in groups(chosen):
            contexts = [
                SuiteContext(cfg, kube, rep, {**env, **local} if isinstance(s, CommandSuite) else env, out_dir,
                             index=cfg.spec.test.index(s), releases=releases)
                for s in group
            ]
            if len(group) == 1:
                run.suites.append(runner(group[0], contexts[0]))
                continue
            rep.progress(f"running {', '.join(s.name for s in group)} in parallel")
            with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(group)), thread_name_prefix="envci-suite") as pool:
                run.suites.extend(pool.map(runner, group, contexts))
    except BaseException:
        command.stop_all()
        raise
    finally:
        forwards.close()
        # Whatever happened, the suites that finished are reported.
        run.seconds = time.monotonic() - t0
        written = write_reports(run, out_dir, build_url=ident.ctx.build_url)
    c = run.counts
    line = f"{c.tests} tests, {c.passed} passed, {c.failed + c.errors} failed, {c.skipped} skipped"
    rep.progress(f"{run.outcome}: {line}; report in {out_dir}")
    _record(kube, state, run.outcome, line)
    return run, written


test.__test__ = False  # type: ignore[attr-defined]  # a stage, not a pytest test


def result_dict(run: RunResult, files: dict[str, str]) -> dict[str, Any]:
    return {
        "name": run.name,
        "namespace": run.namespace,
        "outcome": run.outcome,
        "counts": run.counts.as_dict(),
        "seconds": round(run.seconds, 2),
        "suites": [{"name": s.name, "kind": s.kind, "outcome": s.outcome, "counts": s.counts.as_dict(), "message": s.message} for s in run.suites],
        "failures": [{"suite": s.name, "test": c.title, "message": c.message} for s, c in run.failures()],
        "files": files,
    }


def format_result(run: RunResult, files: dict[str, str]) -> str:
    c = run.counts
    lines = [f"tests {run.outcome}: {c.tests} tests, {c.passed} passed, {c.failed + c.errors} failed, {c.skipped} skipped ({run.seconds:.1f}s)"]
    for s in run.suites:
        sc = s.counts
        lines.append(f"  {s.name} ({s.kind}): {s.outcome}, {sc.tests} tests, {sc.failed + sc.errors} failed" + (f": {s.error}" if s.error else ""))
    for s, case in run.failures()[:20]:
        lines.append(f"  FAILED {s.name} > {case.title}" + (f": {case.message}" if case.message else ""))
    lines.append(f"report: {files.get('junit', '')}, {files.get('summary', '')}, {files.get('json', '')}")
    return "\n".join(lines)


def _record(kube: Kube, state: st.EnvState | None, result: str, message: str) -> None:
    if state is None:
        return
    try:
        fresh = st.load(kube, state.namespace) or state  # re-read: another stage may have written meanwhile
        fresh.record("test", result, message)
        st.save(kube, fresh)
    except EnvciError as e:
        # Recording history must never hide the test outcome; say it is incomplete.
        log.warning("could not record the test outcome in the history of %s: %s", state.namespace, redact(e.message))
    except ValueError as e:  # a state record someone edited by hand: leave it as it is
        log.warning("the state record of %s is unreadable (%s); the test outcome is not recorded", state.namespace, e)
