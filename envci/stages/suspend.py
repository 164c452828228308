"""suspend and resume: an environment kept, with its data, at no cost in pods.

Suspend scales each workload to zero (envci/suspension.py decides which and what to record),
keeping claims, Secrets, ConfigMaps and everything else in the namespace; resume scales them back
and waits until the environment is ready, as wait-ready does. Both hold the environment's Lease
while they change it, like every stage that changes an environment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from envci import state as st
from envci.errors import EnvciError, NotReadyError
from envci.kube import readiness
from envci.kube.client import Kube
from envci.kube.lease import Lease, LeaseSettings
from envci.namespace import LAST_ACTIVITY, SUSPENDED_AT, rfc3339
from envci.output import Reporter
from envci.redact import redact
from envci.stages.teardown import find_namespace
from envci.stages.wait_ready import judge, list_workloads, wait_for
from envci.suspension import RUNNING_KINDS, SCALED_KINDS, Plan, plan_resume, plan_suspend, suspended_at

Clock = Callable[[], datetime]
log = logging.getLogger("envci.stages")

RESUME_TIMEOUT = timedelta(minutes=5)
"""How long resume waits without envci.yaml and without --timeout: the default of a component's
`wait.timeout`, which is what wait-ready would give each component."""


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _find(kube: Kube, namespace: str | None, name: str | None) -> dict[str, Any]:
    ns = find_namespace(kube, namespace=namespace, name=name)
    label = name or namespace
    if ns is None:
        raise NotReadyError(f"environment {label} does not exist", hint="`envci list` shows the environments")
    if ns["metadata"].get("deletionTimestamp"):
        raise NotReadyError(f"environment {label} is being deleted (namespace {ns['metadata']['name']} is terminating)",
                            hint="provision it anew once it is gone")
    return ns


def _env_name(ns: dict[str, Any]) -> str:
    return str((ns["metadata"].get("labels") or {}).get("envci.io/env") or ns["metadata"]["name"])


def _objects(kube: Kube, namespace: str, kinds: tuple[tuple[str, str], ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for api_version, kind in kinds:
        for obj in kube.list(api_version, kind, namespace):
            obj.setdefault("kind", kind)
            obj.setdefault("apiVersion", api_version)
            out.append(obj)
    return out


def _apply_plan(kube: Kube, namespace: str, plan: Plan, rep: Reporter, check: Callable[[], None]) -> None:
    for change in plan.changes:
        check()  # a stage that lost the lease changes nothing more
        kube.patch_merge(change.api_version, change.kind, change.name, change.patch, namespace)
        rep.progress(f"  {change.ref}: {change.action}")


def suspend(
    kube: Kube,
    rep: Reporter,
    *,
    namespace: str | None = None,
    name: str | None = None,
    clock: Clock = _utcnow,
    lease_settings: LeaseSettings | None = None,
) -> dict[str, Any]:
    """Scale the environment to zero and mark it suspended. Suspending a suspended environment
    changes nothing (`changed` is False)."""
    ns = _find(kube, namespace, name)
    ns_name, env = ns["metadata"]["name"], _env_name(ns)
    with Lease(kube, ns_name, "suspend", settings=lease_settings, progress=rep.progress) as lease:
        ns = kube.namespace(ns_name) or ns  # as it is now: another stage may have changed it while this one waited
        plan = plan_suspend(_objects(kube, ns_name, SCALED_KINDS + RUNNING_KINDS))
        since = suspended_at(ns)
        if since and not plan.changes:
            rep.progress(f"environment {env} is suspended already (since {since}); nothing changed")
            return _suspend_result(env, ns_name, since, plan, changed=False)
        if not since:
            # The mark goes first: from here until resume ends, something may be at zero replicas,
            # and status, list, wait-ready and the janitor must say so.
            since = rfc3339(clock())
            kube.patch_merge("v1", "Namespace", ns_name, {"metadata": {"annotations": {SUSPENDED_AT: since}}})
        rep.progress(f"suspending environment {env} (namespace {ns_name}): {len(plan.changes)} workload(s)")
        _apply_plan(kube, ns_name, plan, rep, lease.check)
        for left in plan.left_running:
            rep.warn(f"{left['workload']} keeps running: {left['reason']}")
        _record(kube, ns_name, "suspend", f"{len(plan.changes)} workload(s)")
    return _suspend_result(env, ns_name, since, plan, changed=True)


def _suspend_result(env: str, ns_name: str, since: str, plan: Plan, *, changed: bool) -> dict[str, Any]:
    return {
        "name": env,
        "namespace": ns_name,
        "state": "suspended",
        "suspended_at": since,
        "changed": changed,
        "workloads": [c.as_dict() for c in plan.changes],
        "left_running": plan.left_running,
    }


def restore(kube: Kube, namespace: str, rep: Reporter, *, check: Callable[[], None] = lambda: None, now: datetime | None = None) -> dict[str, Any]:
    """Bring every workload back as suspend recorded it and clear the namespace's mark, last: a
    restore cut off half-way still shows as suspended, and running it again finishes it. Nothing
    suspended: nothing is written. The caller holds the lease (resume, or provision bringing back an
    environment the janitor suspended)."""
    ns = kube.namespace(namespace) or {}
    since = suspended_at(ns)
    plan = plan_resume(_objects(kube, namespace, SCALED_KINDS))
    if not since and not plan.changes:
        return {"suspended_at": None, "changed": False, "workloads": [], "skipped": plan.skipped}
    _apply_plan(kube, namespace, plan, rep, check)
    for s in plan.skipped:
        rep.warn(f"{s['workload']} is not restored: {s['reason']}; set its replicas by hand and remove the annotation")
    check()
    annotations: dict[str, Any] = {LAST_ACTIVITY: rfc3339(now or _utcnow())}
    if since:
        annotations[SUSPENDED_AT] = None
    kube.patch_merge("v1", "Namespace", namespace, {"metadata": {"annotations": annotations}})
    return {"suspended_at": since, "changed": bool(since or plan.changes), "workloads": [c.as_dict() for c in plan.changes],
            "skipped": plan.skipped}


def resume(
    kube: Kube,
    rep: Reporter,
    *,
    namespace: str | None = None,
    name: str | None = None,
    wait: Callable[[str, str], dict[str, Any]] | None = None,
    clock: Clock = _utcnow,
    lease_settings: LeaseSettings | None = None,
) -> dict[str, Any]:
    """Restore the workloads, then (unless `wait` is None) wait until the environment is ready:
    `wait(name, namespace)` raises NotReadyError when it is not. The lease is held while workloads
    change, not while waiting: wait-ready only reads, and may take minutes."""
    ns = _find(kube, namespace, name)
    ns_name, env = ns["metadata"]["name"], _env_name(ns)
    with Lease(kube, ns_name, "resume", settings=lease_settings, progress=rep.progress) as lease:
        since = suspended_at(kube.namespace(ns_name) or ns)
        if since:
            rep.progress(f"resuming environment {env} (namespace {ns_name}), suspended since {since}")
        res = restore(kube, ns_name, rep, check=lease.check, now=clock())
        if res["changed"]:
            _record(kube, ns_name, "resume", f"{len(res['workloads'])} workload(s)")
        else:
            rep.progress(f"environment {env} is not suspended; nothing to restore")
    out: dict[str, Any] = {"name": env, "namespace": ns_name, "state": "active", **res, "ready": None}
    if wait is not None:
        waited = wait(env, ns_name)
        out.update(ready=True, seconds=waited["seconds"], urls=waited.get("urls", {}))
    return out


def wait_recorded(
    kube: Kube,
    rep: Reporter,
    name: str,
    namespace: str,
    *,
    timeout: timedelta | None = None,
    rules: readiness.Rules | None = None,
    clock: Clock = _utcnow,
) -> dict[str, Any]:
    """Wait-ready without envci.yaml: for every component that has workloads in the namespace (and
    objects of none), each for `timeout`. A component with no workloads is not awaited: without
    envci.yaml nothing says it should have some."""
    state = st.load(kube, namespace)
    release_map = {(r.release or n): n for n, r in (state.components.items() if state else [])}
    rules = rules or readiness.Rules()
    present = judge(list_workloads(kube, namespace), kube.pods(namespace), release_map, now=clock(), rules=rules)
    limit = timeout or RESUME_TIMEOUT
    return wait_for(kube, rep, name=name, namespace=namespace, state=state, release_map=release_map,
                    timeouts={i.component: limit for i in present}, include_other=False, rules=rules, stage="resume",
                    clock=clock)


def _record(kube: Kube, namespace: str, stage: str, message: str) -> None:
    try:
        state = st.load(kube, namespace)
        if state is None:
            return
        state.record(stage, "succeeded", message)
        st.save(kube, state)
    except EnvciError as e:
        # History is a record, never a reason to hide what was done; the workloads say the rest.
        log.warning("could not record %s in the history of %s: %s", stage, namespace, redact(e.message))
    except ValueError as e:  # a state record someone edited by hand: leave it as it is
        log.warning("the state record of %s is unreadable (%s); %s is not recorded", namespace, e, stage)
