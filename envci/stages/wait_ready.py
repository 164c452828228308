"""wait-ready: watch the environment's workloads until all are ready, one fails for good, or time runs out.

It wakes on pod changes (a watch), re-lists and re-judges with the pure rules in
kube/readiness.py; on failure it explains each failing workload with its reason, recent events
and the last log lines of the pods involved.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from envci.config.loader import LoadedConfig
from envci.durations import format_duration, parse_duration
from envci.errors import NotReadyError
from envci.kube import readiness
from envci.kube.client import WORKLOAD_KINDS, Kube
from envci.manifests import OTHER, component_of
from envci.output import Reporter
from envci import state as st



@dataclass
class Item:
    component: str
    obj: dict[str, Any]
    verdict: readiness.Verdict

    @property
    def ref(self) -> str:
        return f"{self.obj['kind']}/{self.obj['metadata']['name']}"


def judge(
    workloads: list[dict[str, Any]], pods: list[dict[str, Any]], release_map: dict[str, str], *, now: datetime, rules: readiness.Rules
) -> list[Item]:
    """Pure: each workload with its component and verdict."""
    items = []
    for obj in workloads:
        if obj.get("kind") == "Pod":
            continue
        v = readiness.assess(obj, readiness.pods_of(obj, pods), now=now, rules=rules)
        items.append(Item(component_of(obj, release_map), obj, v))
    owned = {p["metadata"]["name"] for o in workloads for p in readiness.pods_of(o, pods)}
    for p in pods:  # bare pods, owned by no workload we know
        if p["metadata"]["name"] not in owned and not (p["metadata"].get("ownerReferences")):
            items.append(Item(component_of(p, release_map), p, readiness.assess_pod(p, now=now, rules=rules)))
    return items


def timed_out_verdict(v: readiness.Verdict, waited: str) -> readiness.Verdict:
    """A deadline turns progressing into failed; a specific reason (ImagePullBackOff, NotReady) is kept."""
    generic = {"Progressing", "Pending", "Running", ""}
    reason = "Timeout" if v.reason in generic else v.reason
    return readiness.Verdict("failed", reason, f"not ready within {waited}: {v.message}", v.pods)


def list_workloads(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for api_version, kind in WORKLOAD_KINDS:
        out.extend(kube.list(api_version, kind, namespace))
    return out


def diagnose(kube: Kube, namespace: str, item: Item, events: list[dict[str, Any]], log_lines: int = 20) -> dict[str, Any]:
    """What a person needs to fix a failing workload: reason, the latest events, log tails."""
    names = {item.obj["metadata"]["name"], *item.verdict.pods}
    related = [
        e for e in events if (e.get("involvedObject") or {}).get("name") in names and e.get("type") == "Warning"
    ] or [e for e in events if (e.get("involvedObject") or {}).get("name") in names]
    related.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    ev = [
        f"{(e.get('involvedObject') or {}).get('kind')}/{(e.get('involvedObject') or {}).get('name')}: "
        f"{e.get('reason')}: {e.get('message', '').strip()}"
        for e in related[-5:]
    ]
    logs = {p: kube.log_tail(namespace, p, lines=log_lines) for p in list(item.verdict.pods)[:3]}
    return {
        "component": item.component,
        "workload": item.ref,
        "reason": item.verdict.reason,
        "message": item.verdict.message,
        "events": ev,
        "logs": logs,
    }


def format_failure(f: dict[str, Any]) -> str:
    lines = [f"  {f['component']}: {f['workload']} {f['reason']}: {f['message']}"]
    if f["events"]:
        lines.append("    events:")
        lines += [f"      {e}" for e in f["events"]]
    for pod, text in f["logs"].items():
        lines.append(f"    last log lines of pod {pod}:")
        lines += [f"      | {line}" for line in (text.rstrip().splitlines() or ["(empty)"])]
    return "\n".join(lines)


def wait_ready(
    cfg: LoadedConfig,
    kube: Kube,
    rep: Reporter,
    *,
    components: list[str] | None = None,
    timeout: timedelta | None = None,
    rules: readiness.Rules | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
) -> dict[str, Any]:
    ns = cfg.identity.namespace
    rules = rules or readiness.Rules()
    spec = cfg.spec
    wanted = [c for c in spec.components if c.wait.enabled and (components is None or c.name in components)]
    wanted_names = {c.name for c in wanted}
    state = st.load(kube, ns)
    if kube.namespace(ns) is None:
        raise NotReadyError(f"environment {cfg.identity.name} does not exist (namespace {ns})", hint="run `envci provision` first")
    release_map = {(r.release or n): n for n, r in (state.components.items() if state else [])}
    release_map.update({(c.helm.release or c.name): c.name for c in spec.components if c.helm})
    start = clock()
    deadlines = {c.name: start + (timeout or parse_duration(c.wait.timeout)) for c in wanted}
    last_seen: dict[str, str] = {}
    rep.progress(f"waiting for {', '.join(sorted(wanted_names)) or 'the namespace'} in {ns}")
    while True:
        now = clock()
        items = [
            i for i in judge(list_workloads(kube, ns), kube.pods(ns), release_map, now=now, rules=rules)
            if i.component in wanted_names or (components is None and i.component == OTHER)
        ]
        for i in items:
            key = f"{i.component}/{i.ref}"
            summary = f"{i.verdict.state}: {i.verdict.message}"
            if last_seen.get(key) != summary:
                rep.progress(f"  {key} {summary}")
                last_seen[key] = summary
        failed = [i for i in items if i.verdict.state == "failed"]
        timed_out = [i for i in items if i.verdict.state == "progressing" and now >= deadlines.get(i.component, now)]
        if failed or timed_out:
            events = kube.events(ns)
            failures = [diagnose(kube, ns, i, events) for i in failed]
            for i in timed_out:
                i.verdict = timed_out_verdict(i.verdict, format_duration(deadlines[i.component] - start))
                failures.append(diagnose(kube, ns, i, events))
            _record(kube, state, "wait-ready", "failed", "; ".join(f"{f['workload']}: {f['reason']}" for f in failures))
            raise NotReadyError(
                f"environment {cfg.identity.name} is not ready:\n" + "\n".join(format_failure(f) for f in failures),
                failures=failures,
                hint="fix the workload named above; `envci status` shows the environment, `envci teardown` removes it",
            )
        pending_components = wanted_names - {i.component for i in items}
        if pending_components and now >= min(deadlines[c] for c in pending_components):
            raise NotReadyError(
                f"environment {cfg.identity.name}: no workloads found for {', '.join(sorted(pending_components))}",
                hint="check that the component created Deployments/StatefulSets/Jobs in the namespace",
            )
        if all(i.verdict.state == "ready" for i in items) and not pending_components:
            elapsed = (clock() - start).total_seconds()
            rep.progress(f"ready after {elapsed:.1f}s")
            _record(kube, state, "wait-ready", "succeeded", f"{elapsed:.1f}s")
            return {
                "name": cfg.identity.name,
                "namespace": ns,
                "ready": True,
                "seconds": round(elapsed, 2),
                "workloads": [{"component": i.component, "workload": i.ref, "state": i.verdict.state} for i in items],
                "urls": state.urls if state else {},
            }
        remaining = min(deadlines.values(), default=now) - now
        _wake_on_change(kube, ns, max(1, min(2, int(remaining.total_seconds()) + 1)))


def _wake_on_change(kube: Kube, namespace: str, seconds: int) -> None:
    """Block until a pod in the namespace changes, or `seconds` pass (workload status lags pods)."""
    rv = kube.call(lambda: kube.core.list_namespaced_pod(namespace, limit=1), "list pods").metadata.resource_version
    end = time.monotonic() + seconds
    for _ in kube.watch_pods(namespace, seconds, resource_version=rv):
        return
    left = end - time.monotonic()
    if left > 0:
        time.sleep(min(left, 0.2))


def _record(kube: Kube, state: st.EnvState | None, stage: str, result: str, message: str) -> None:
    if state is None:
        return
    state.record(stage, result, message)
    try:
        st.save(kube, state)
    except Exception:  # noqa: BLE001 - recording history must never hide the real outcome
        pass
