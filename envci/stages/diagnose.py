"""Diagnostics after a failed stage: read how the environment looks and write the bundle.

What goes in, where, and what the summary says are decided in envci/report/diagnostics.py; this
module reads the cluster through the `Kube` adapter and writes files, every one through the
redactor. Collecting never hides the failure it documents: whatever goes wrong while collecting
becomes a line in the summary, or one warning when nothing could be written at all.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from envci import state as st
from envci.config.loader import LoadedConfig
from envci.errors import EnvciError
from envci.kube import readiness
from envci.kube.client import Kube, RetryPolicy
from envci.output import Reporter
from envci.plan import CycleError, install_order
from envci.redact import redact
from envci.report import diagnostics as dx
from envci.stages.wait_ready import judge, list_workloads

COLLECT_SECONDS = 60.0
"""How long collecting may take in all: no retry starts past it. A stage that failed because the
cluster is unreachable must not spend minutes more failing to read it."""
COLLECT_BACKOFFS = (0.5, 1.0, 2.0)
"""Retries of each read while collecting: a blip is ridden out, an outage is not waited for."""


@dataclass(frozen=True)
class Target:
    """The environment a bundle is about, and how the run that failed treats it."""

    name: str
    namespace: str
    stage: str
    component_order: tuple[str, ...] = ()
    releases: dict[str, str] = field(default_factory=dict)
    """Helm release -> component, as the config names them (the state record adds the rest)."""
    keep: dx.Keep = "left"
    kubeconfig: str | None = None
    """Given on the command line: then the commands in the summary need it too."""

    @classmethod
    def of(cls, cfg: LoadedConfig, stage: str, *, keep: dx.Keep = "left", kubeconfig: str | None = None) -> Target:
        try:
            order = tuple(n for wave in install_order(cfg.spec.components) for n in wave)
        except CycleError:
            order = tuple(c.name for c in cfg.spec.components)
        releases = {(c.helm.release or c.name): c.name for c in cfg.spec.components if c.helm}
        return cls(cfg.identity.name, cfg.identity.namespace, stage, order, releases, keep, kubeconfig)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(redact(text), encoding="utf-8")


def write_bundle(
    kube: Kube,
    target: Target,
    out_dir: Path,
    *,
    error: str,
    failures: list[dict[str, Any]] | None = None,
    limits: dx.Limits | None = None,
    rules: readiness.Rules | None = None,
    now: datetime | None = None,
) -> Path | None:
    """Read the environment and write `<out_dir>/diagnostics/`; returns its path, or None when
    there is no environment to describe (its namespace does not exist).

    The folder is written beside the old one and swapped in at the end, so a reader never sees
    a mix of two failures. Raises EnvciError only when the cluster cannot be read at all."""
    kube = kube.with_retry(RetryPolicy(backoffs=COLLECT_BACKOFFS, deadline=time.monotonic() + COLLECT_SECONDS))
    now = now or datetime.now(timezone.utc)
    rules = rules or readiness.Rules()
    limits = limits or dx.Limits()
    ns_obj = kube.namespace(target.namespace)
    if ns_obj is None:
        return None
    ns = target.namespace
    problems: list[str] = []

    def read(what: str, fn: Callable[[], Any], default: Any) -> Any:
        try:
            return fn()
        except EnvciError as e:
            problems.append(f"{what}: {e.message}")
            return default

    pods: list[dict[str, Any]] = read("pods", lambda: kube.pods(ns), [])
    workloads: list[dict[str, Any]] = read("workloads", lambda: list_workloads(kube, ns), [])
    events: list[dict[str, Any]] = read("events", lambda: kube.events(ns), [])
    state = read("the environment record", lambda: st.load(kube, ns), None)
    releases = {(r.release or n): n for n, r in (state.components.items() if state else [])}
    releases.update(target.releases)

    items = judge(workloads, pods, releases, now=now, rules=rules)
    seen_now = dx.causes_from_items(items, events)
    causes = dx.merge_causes(dx.causes_from_failures(failures or []), seen_now)
    cause = dx.first_cause(causes, target.component_order)
    objects = dx.not_ready_objects(items, pods, now=now, rules=rules)[: limits.max_objects]
    urgent = {p for c in causes for p in c.pods} | {o["metadata"]["name"] for o in objects if o.get("kind") == "Pod"}
    requests, left_out = dx.log_requests(pods, first=urgent, limits=limits)

    files: dict[str, str] = {dx.EVENTS_FILE: dx.events_text(events, limits=limits)}
    for obj in objects:
        files[dx.object_path(obj)] = dx.object_yaml(obj)
    for r in requests:
        text = read(
            f"log of {r.pod}/{r.container}",
            partial(kube.read_log, ns, r.pod, r.container, previous=r.previous, tail_lines=limits.log_lines, limit_bytes=4 * limits.log_chars),
            None,
        )
        files[r.path] = dx.log_text(text, limits=limits)
    warnings = tuple(dx.event_line(e, limit=300) for e in dx.sorted_events(events) if e.get("type") == "Warning")
    summary = dx.Summary(
        stage=target.stage, name=target.name, namespace=ns, error=error, collected_at=now, cause=cause, causes=tuple(causes),
        warnings=warnings, keep=target.keep,
        expires_at=str(((ns_obj.get("metadata") or {}).get("annotations") or {}).get("envci.io/expires-at") or ""),
        kubeconfig=target.kubeconfig, files=tuple(files), left_out_pods=tuple(left_out), problems=tuple(problems),
    )
    files[dx.SUMMARY_FILE] = dx.render_summary(summary, limits=limits)

    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / dx.DIAGNOSTICS_DIR
    staging = Path(tempfile.mkdtemp(prefix=f".{dx.DIAGNOSTICS_DIR}-", dir=out_dir))
    try:
        for rel, text in files.items():
            _write(staging / rel, text)
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def collect(
    kube: Kube,
    rep: Reporter,
    target: Target,
    out_dir: Path,
    *,
    error: str,
    failures: list[dict[str, Any]] | None = None,
    rules: readiness.Rules | None = None,
) -> Path | None:
    """`write_bundle`, announced; a bundle that cannot be written is one warning, never an error."""
    rep.progress(f"collecting diagnostics of {target.namespace} into {out_dir / dx.DIAGNOSTICS_DIR}")
    try:
        path = write_bundle(kube, target, out_dir, error=error, failures=failures, rules=rules)
    except (EnvciError, OSError) as e:
        rep.warn(f"no diagnostics written: {getattr(e, 'message', None) or e}")
        return None
    if path is None:
        rep.progress(f"no diagnostics: namespace {target.namespace} does not exist")
    return path


def summary_path(bundle: Path) -> str:
    return str(bundle / dx.SUMMARY_FILE)


@contextmanager
def on_failure(kube: Kube, rep: Reporter, target: Target, out_dir: Path, *, rules: readiness.Rules | None = None) -> Iterator[None]:
    """Write the bundle when the stage inside fails, and say where in the stage's own error."""
    try:
        yield
    except EnvciError as e:
        if dx.should_collect(e):
            path = collect(kube, rep, target, out_dir, error=str(e), failures=getattr(e, "failures", None), rules=rules)
            if path is not None:
                e.add_diagnostics(summary_path(path))
        raise
