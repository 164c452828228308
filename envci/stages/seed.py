"""seed: run the `seed:` steps of envci.yaml in order, under the environment's lease.

Each step is guarded by its seeder so a re-run does not double the data (SQL file checksums, S3
ETags, a Job that already succeeded). Every step's outcome goes into the environment's history
in the cluster; the first failing step stops the stage, and the steps after it do not run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from envci import state as st
from envci.config.loader import LoadedConfig
from envci.errors import EnvciError, NotReadyError
from envci.kube.client import Kube
from envci.kube.lease import Lease
from envci.output import Reporter
from envci.redact import redact
from envci.seeders import SeedContext, SeedError, kind_of, seeder
from envci.suspension import refuse_suspended


def describe(step: Any, kind: str) -> str:
    """Short, secret-free name of a step for progress lines and history."""
    if kind == "sql":
        return "sql " + ", ".join(step.sql)
    if kind == "restore":
        from envci.seeders.restore import source_of

        return f"restore {source_of(step).id}"
    if kind == "s3":
        return f"s3 {step.copy_from or step.s3}"
    if kind == "job":
        return f"job {step.job}"
    if kind == "http":
        return f"http {step.method.upper()} {step.component + ':' if step.component else ''}{step.http}"
    return f"exec in {step.component}"


def seed(cfg: LoadedConfig, kube: Kube, rep: Reporter, *, only: list[int] | None = None) -> dict[str, Any]:
    """Run the seed steps (all, or the indexes in `only`); returns what each did."""
    ident = cfg.identity
    ns = kube.namespace(ident.namespace)
    if ns is None:
        raise NotReadyError(f"environment {ident.name} does not exist (namespace {ident.namespace})", hint="run `envci provision` first")
    refuse_suspended(ns, ident.name)
    steps = [(i, s) for i, s in enumerate(cfg.spec.seed) if only is None or i in only]
    if not steps:
        rep.progress("no seed steps in envci.yaml")
        return {"name": ident.name, "namespace": ident.namespace, "steps": []}
    with Lease(kube, ident.namespace, "seed", progress=rep.progress) as lease:
        st.touch(kube, ident.namespace)
        return _seed_locked(cfg, kube, rep, steps, still_held=lease.check)


def _seed_locked(
    cfg: LoadedConfig, kube: Kube, rep: Reporter, steps: list[tuple[int, Any]], *, still_held: Callable[[], None] = lambda: None
) -> dict[str, Any]:
    ident = cfg.identity
    # Without a record (provision crashed before writing it), start one: an S3 bucket must be findable.
    state = st.load(kube, ident.namespace) or st.EnvState(name=ident.name, namespace=ident.namespace, app=ident.app)
    results: list[dict[str, Any]] = []
    started = time.monotonic()
    for i, step in steps:
        still_held()  # a stage that lost the lease stops before its next step changes data
        kind = kind_of(step)
        name = describe(step, kind)
        rep.progress(f"seed[{i}] {name}")
        ctx = SeedContext(cfg=cfg, kube=kube, rep=rep, state=state, index=i)
        t0 = time.monotonic()
        try:
            res = seeder(kind)(step, ctx)
        except BaseException as e:
            if isinstance(e, SeedError):
                e.step = i
                e.kind = e.kind or kind
            text = e.message if isinstance(e, EnvciError) else f"{type(e).__name__}: {e}"
            _record(kube, state, "failed", f"seed[{i}] {name}: {redact(text)}")
            raise
        seconds = round(time.monotonic() - t0, 2)
        rep.progress(f"seed[{i}] {res.summary} ({seconds}s)")
        _record(kube, state, "succeeded", f"seed[{i}] {name}: {res.summary}")
        results.append({"step": i, "name": name, "seconds": seconds, **res.as_dict()})
    return {
        "name": ident.name,
        "namespace": ident.namespace,
        "seconds": round(time.monotonic() - started, 2),
        "steps": results,
    }


def _record(kube: Kube, state: st.EnvState, result: str, message: str) -> None:
    state.record("seed", result, redact(message))
    try:
        st.save(kube, state)
    except EnvciError:
        pass  # history is a record, never a reason to hide the step's real outcome


def format_result(res: dict[str, Any]) -> str:
    lines = [f"environment {res['name']} seeded ({len(res['steps'])} step(s))"]
    for s in res["steps"]:
        lines.append(f"  seed[{s['step']}] {s['name']}: {s['summary']}")
    return "\n".join(lines)
