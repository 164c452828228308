"""up: the whole pipeline in one command, with teardown guaranteed.

provision -> wait-ready -> seed -> test -> teardown. Teardown runs after success, failure and
cancellation alike, unless `keep` asks to leave the environment for a person to look at, or
`keep_on_failure` does so after a failed stage or failed tests (the janitor still reaps it when
its TTL runs out). A failure writes the diagnostics bundle into the report folder first, while
there is still an environment to describe.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from envci.config.loader import LoadedConfig
from envci.config.model import Component
from envci.errors import CancelledError, EnvciError, ExitCode, SupersededError
from envci.kube.client import Kube
from envci.output import Reporter

CANCELLED_TEARDOWN_SECONDS = 60.0
"""How long teardown may take after a cancellation: runners kill a cancelled job's processes soon after
their signal (GitHub within about ten seconds, GitLab when after_script's own timeout ends), so
deletions start at once and the wait is short; the janitor removes anything left."""


@contextmanager
def _shielded() -> Iterator[None]:
    """Cleanup must not be cut short by a second Ctrl-C or SIGTERM from an impatient runner."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for s in previous:
            signal.signal(s, signal.SIG_IGN)
    except ValueError:  # not in the main thread: nothing to shield
        previous = {}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def up(
    cfg: LoadedConfig,
    kube: Kube,
    rep: Reporter,
    *,
    out_dir: Path,
    keep: bool = False,
    keep_on_failure: bool = False,
    kubeconfig: str | None = None,
    publish: Callable[[Any, dict[str, str]], Any] | None = None,
) -> tuple[int, dict[str, Any]]:
    from envci.report.diagnostics import should_collect
    from envci.stages.diagnose import Target, collect, summary_path
    from envci.stages.provision import provision
    from envci.stages.seed import seed
    from envci.stages.teardown import teardown
    from envci.stages.test import test
    from envci.stages.wait_ready import wait_for_dependency, wait_ready
    from envci.urls import environment_urls

    ident = cfg.identity
    result: dict[str, Any] = {
        "name": ident.name, "namespace": ident.namespace, "stages": {}, "seconds": {},
        "urls": environment_urls(cfg.spec.components, ident.namespace),
    }
    code = ExitCode.OK
    current = {"stage": ""}

    def diagnose(stage_name: str, error: str, failures: list[dict[str, Any]] | None = None) -> str | None:
        target = Target.of(cfg, stage_name, keep="kept" if keep or keep_on_failure else "torn-down", kubeconfig=kubeconfig)
        path = collect(kube, rep, target, out_dir, error=error, failures=failures)
        if path is None:
            return None
        diagnostics = summary_path(path)
        result["diagnostics"] = diagnostics
        return diagnostics

    def stage(name: str, fn: Callable[[], Any]) -> Any:
        current["stage"] = name
        rep.progress(f"== {name}")
        t0 = time.monotonic()
        try:
            return fn()
        finally:
            result["seconds"][name] = round(time.monotonic() - t0, 1)
            rep.progress(f"== {name}: {result['seconds'][name]:.1f}s")

    try:
        result["stages"]["provision"] = stage(
            "provision", lambda: provision(cfg, kube, rep, wait_for_dependency=lambda names: wait_for_dependency(cfg, kube, rep, names))
        )
        result["urls"] = result["stages"]["provision"].get("urls") or result["urls"]
        result["stages"]["wait-ready"] = stage("wait-ready", lambda: wait_ready(cfg, kube, rep))
        result["stages"]["seed"] = stage("seed", lambda: seed(cfg, kube, rep))
        run, files = stage("test", lambda: test(cfg, kube, rep, out_dir=out_dir, kubeconfig=kubeconfig))
        result["stages"]["test"] = {
            "outcome": run.outcome, "files": files, "counts": run.counts.as_dict(),
            "failures": [{"suite": s.name, "test": c.title, "message": c.message} for s, c in run.failures()[:10]],
        }
        if publish:
            result["published"] = publish(run, files)
        code = {"passed": ExitCode.OK, "failed": ExitCode.TESTS_FAILED}.get(run.outcome, ExitCode.INFRASTRUCTURE)
        if run.outcome != "passed":
            c = run.counts
            diagnose("test", f"tests {run.outcome}: {c.tests} tests, {c.failed + c.errors} failed (the test report is beside diagnostics/)")
    except SupersededError:
        raise  # the newer build owns the environment: never tear it down from here
    except (EnvciError, KeyboardInterrupt) as e:
        failed = isinstance(e, EnvciError) and should_collect(e)
        if failed:
            assert isinstance(e, EnvciError)
            bundle = diagnose(current["stage"], str(e), getattr(e, "failures", None))
            if bundle:
                e.add_diagnostics(bundle)
        result["error"] = getattr(e, "message", "cancelled")
        if keep_on_failure and failed:
            result["kept"] = True
            rep.progress(f"keeping environment {ident.name} after the failure (--keep-on-failure); `envci teardown --env {ident.name}` removes it")
            _say_how_to_look(cfg, rep)
        elif not keep:
            cancelled = isinstance(e, (KeyboardInterrupt, CancelledError))
            rep.progress("tearing down after cancellation" if cancelled else "tearing down after the failure")
            with _shielded():
                _teardown_quietly(kube, rep, ident.namespace, ident.ctx.build, teardown, deadline=CANCELLED_TEARDOWN_SECONDS if cancelled else None)
        else:
            _say_how_to_look(cfg, rep)
        raise
    if keep or (keep_on_failure and code != ExitCode.OK):
        result["forward_commands"] = forward_commands(cfg.spec.components, ident.namespace)
        result["kept"] = True
        why = "--keep" if keep else "--keep-on-failure"
        rep.progress(f"keeping environment {ident.name} ({why}); `envci teardown --env {ident.name}` removes it")
    else:
        with _shielded():
            result["stages"]["teardown"] = stage("teardown", lambda: teardown(kube, rep, namespace=ident.namespace, build=ident.ctx.build))
        result["leftovers"] = leftovers(kube, ident.namespace)
    return int(code), result


def forward_commands(components: list[Component], namespace: str) -> list[dict[str, str]]:
    """Pure: for each exposed component, the `kubectl port-forward` a person runs to open it, and the URL.

    The local port is the Service's port when it is not a privileged one (below 1024), so the
    command reads like the Service; otherwise 8080 upwards.
    """
    out: list[dict[str, str]] = []
    taken: set[int] = set()
    for c in components:
        if not c.expose:
            continue
        e = c.expose
        local = e.port if e.port >= 1024 else 8080
        while local in taken:
            local += 1
        taken.add(local)
        path = e.path if e.path.startswith("/") else f"/{e.path}"
        out.append({
            "component": c.name,
            "command": f"kubectl -n {namespace} port-forward svc/{e.service or c.name} {local}:{e.port}",
            "url": f"{e.scheme}://127.0.0.1:{local}{path}",
        })
    return out


def leftovers(kube: Kube, namespace: str) -> list[str]:
    """What of the environment still exists after teardown: the namespace, or volumes its claims made.

    Volumes are cluster-scoped and released by their provisioner after the claims go, so one may
    linger for a few seconds; a runner without the right to list them is told nothing rather than
    failing a finished run.
    """
    found: list[str] = []
    try:
        if kube.namespace(namespace) is not None:
            found.append(f"namespace {namespace}")
        for pv in kube.list("v1", "PersistentVolume"):
            claim = (pv.get("spec") or {}).get("claimRef") or {}
            if claim.get("namespace") == namespace:
                phase = (pv.get("status") or {}).get("phase", "?")
                found.append(f"PersistentVolume {pv['metadata']['name']} ({phase}, was {namespace}/{claim.get('name')})")
    except EnvciError:
        pass
    return found


def _say_how_to_look(cfg: LoadedConfig, rep: Reporter) -> None:
    for f in forward_commands(cfg.spec.components, cfg.identity.namespace):
        rep.progress(f"  {f['component']}: {f['command']}  then open {f['url']}")


def format_result(res: dict[str, Any], *, keep: bool) -> str:
    """Pure: what a person reads at the end of `envci up`: stages and their times, URLs, tests, report, what is left."""
    lines = [f"environment {res['name']} (namespace {res['namespace']})"]
    test = res["stages"].get("test") or {}
    for name, seconds in res.get("seconds", {}).items():
        note = ""
        if name == "test" and test:
            c = test.get("counts") or {}
            note = f"  {test.get('outcome')}: {c.get('tests', 0)} tests, {c.get('passed', 0)} passed, {c.get('failed', 0) + c.get('errors', 0)} failed"
        lines.append(f"  {name:<11} {seconds:6.1f}s{note}")
    for f in test.get("failures") or []:
        lines.append(f"    FAILED {f['suite']} > {f['test']}" + (f": {f['message']}" if f.get("message") else ""))
    if res.get("urls"):
        lines.append("urls (inside the cluster):")
        lines += [f"  {k}: {v}" for k, v in res["urls"].items()]
    files = test.get("files") or {}
    if files:
        lines.append(f"report: {files.get('summary', '')} (JUnit: {files.get('junit', '')})")
    if keep or res.get("kept"):
        lines.append(f"kept; `envci teardown --env {res['name']}` removes it. To open it in a browser:")
        lines += [f"  {f['command']}   then {f['url']}" for f in res.get("forward_commands") or []]
    if res.get("diagnostics"):
        lines.append(f"diagnostics: {res['diagnostics']}")
    elif "teardown" in res["stages"]:
        left = res.get("leftovers") or []
        lines.append("teardown: nothing left" if not left else "teardown: still there: " + "; ".join(left))
    return "\n".join(lines)


def _teardown_quietly(kube: Kube, rep: Reporter, namespace: str, build: str, teardown: Callable[..., Any], *, deadline: float | None) -> None:
    try:
        teardown(kube, rep, namespace=namespace, build=build, deadline=deadline)
    except EnvciError as e:
        rep.warn(f"teardown after the failure did not finish: {e.message}; the janitor (`envci reap`) removes the rest")
