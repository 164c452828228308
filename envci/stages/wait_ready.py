"""wait-ready: watch the environment's workloads until all are ready, one fails for good, or time runs out.

The namespace's pods and workloads are listed once and then kept current by watches (kube/mirror.py);
each change is judged at once with the pure rules in kube/readiness.py. On failure it explains each
failing workload with its reason, recent events and the last log lines of the pods involved.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from envci.config.loader import LoadedConfig
from envci.durations import format_duration, parse_duration
from envci.errors import EnvciError, NotReadyError
from envci.kube import readiness
from envci.kube.client import WORKLOAD_KINDS, Kube
from envci.manifests import OTHER, component_of
from envci.output import Reporter
from envci.redact import redact, truncate
from envci.suspension import refuse_suspended
from envci import state as st

log = logging.getLogger("envci.stages")

@dataclass
class Item:
    component: str
    obj: dict[str, Any]
    verdict: readiness.Verdict

    @property
    def ref(self) -> str:
        return f"{self.obj['kind']}/{self.obj['metadata']['name']}"


Obj = dict[str, Any]
_ORDINAL = re.compile(r"-(\d+)$")
WATCH_SECONDS = 2
"""The longest a wait goes without judging again when nothing changes: verdicts that depend on the
clock (a deadline, a pod pending too long) move on by themselves."""
MIRRORED_KINDS: tuple[tuple[str, str], ...] = (("v1", "Pod"), *WORKLOAD_KINDS)


def _controller_ref(obj: Obj) -> Obj | None:
    refs = [r for r in (obj.get("metadata") or {}).get("ownerReferences") or [] if isinstance(r, dict)]
    return next((r for r in refs if r.get("controller")), refs[0] if refs else None)


def _claim_template_owner(claim: Obj, statefulsets: list[Obj]) -> Obj | None:
    """The StatefulSet whose volumeClaimTemplates made this claim: "<template>-<statefulset>-<ordinal>".

    Claims a StatefulSet creates carry no owner reference unless its retention policy deletes
    them, so their name is what ties them to it."""
    name = str((claim.get("metadata") or {}).get("name") or "")
    found = _ORDINAL.search(name)
    if not found:
        return None
    stem = name[: found.start()]
    for sts in statefulsets:
        sts_name = sts["metadata"]["name"]
        for tpl in (sts.get("spec") or {}).get("volumeClaimTemplates") or []:
            if stem == f"{(tpl.get('metadata') or {}).get('name')}-{sts_name}":
                return sts
    return None


def attribution(objects: list[Obj], release_map: dict[str, str]) -> Callable[[Obj], str]:
    """Pure: which component each object belongs to, following the objects that made it.

    Controllers do not copy envci's label or Helm's annotation onto what they create: claims from
    a StatefulSet's volumeClaimTemplates, a Deployment's ReplicaSets and pods, a CronJob's Jobs.
    Those belong to the component of their creator, found by owner reference (a ReplicaSet that
    was not listed stands for its Deployment) or, for template claims, by name. What leads to no
    component is `OTHER`.
    """
    by_uid = {o["metadata"]["uid"]: o for o in objects if (o.get("metadata") or {}).get("uid")}
    by_name = {(o.get("kind"), o["metadata"]["name"]): o for o in objects}
    statefulsets = [o for o in objects if o.get("kind") == "StatefulSet"]

    def owner(obj: Obj) -> Obj | None:
        ref = _controller_ref(obj)
        if ref is None:
            return _claim_template_owner(obj, statefulsets) if obj.get("kind") == "PersistentVolumeClaim" else None
        found = by_uid.get(ref.get("uid")) or by_name.get((ref.get("kind"), ref.get("name")))
        if found is None and ref.get("kind") == "ReplicaSet":
            # "<deployment>-<pod-template-hash>"
            found = by_name.get(("Deployment", str(ref.get("name", "")).rpartition("-")[0]))
        return found

    def of(obj: Obj) -> str:
        seen: set[int] = set()
        current: Obj | None = obj
        while current is not None and id(current) not in seen:
            seen.add(id(current))
            component = component_of(current, release_map)
            if component != OTHER:
                return component
            current = owner(current)
        return OTHER

    return of


def judge(
    workloads: list[dict[str, Any]], pods: list[dict[str, Any]], release_map: dict[str, str], *, now: datetime, rules: readiness.Rules
) -> list[Item]:
    """Pure: each workload with its component and verdict."""
    component = attribution(workloads + pods, release_map)
    items = []
    for obj in workloads:
        if obj.get("kind") == "Pod":
            continue
        v = readiness.assess(obj, readiness.pods_of(obj, pods), now=now, rules=rules)
        items.append(Item(component(obj), obj, v))
    owned = {p["metadata"]["name"] for o in workloads for p in readiness.pods_of(o, pods)}
    for p in pods:  # bare pods, owned by no workload we know
        if p["metadata"]["name"] not in owned and not (p["metadata"].get("ownerReferences")):
            items.append(Item(component(p), p, readiness.assess_pod(p, now=now, rules=rules)))
    return items


def timed_out_verdict(v: readiness.Verdict, waited: str) -> readiness.Verdict:
    """A deadline turns progressing into failed; a specific reason (ImagePullBackOff, NotReady) is kept."""
    generic = {"Progressing", "Pending", "Running", ""}
    reason = "Timeout" if v.reason in generic else v.reason
    return readiness.Verdict("failed", reason, f"not ready within {waited}: {v.message}", v.pods)


@dataclass(frozen=True)
class Decision:
    """What one look at the environment amounts to."""

    failed: list[Item]
    """Failed for good, or out of time (their verdict then says "not ready within ...")."""
    related: list[Item]
    """Not ready yet, in a component that failed: often the cause (a claim that cannot be provisioned)."""
    missing: list[str]
    """Wanted components with no objects at all by their deadline."""
    ready: bool
    items: list[Item]
    """The objects that count, each once."""


def decide(
    items: list[Item],
    *,
    wanted: set[str],
    deadlines: dict[str, datetime],
    start: datetime,
    now: datetime,
    include_other: bool,
) -> Decision:
    """Pure: which objects failed or ran out of time, and whether the environment is ready.

    Objects of no component (`OTHER`: not made by envci, Helm or anything they made) count only
    when the whole environment is awaited, with the latest deadline of any component: they have
    no timeout of their own, and must not fail the moment they are seen.
    """
    latest = max(deadlines.values(), default=None)
    counted = [
        i for i in items if i.component in wanted or (include_other and latest is not None and i.component == OTHER)
    ]

    def deadline(i: Item) -> datetime:
        return deadlines.get(i.component) or latest or start

    failed = [i for i in counted if i.verdict.state == "failed"]
    for i in counted:
        if i.verdict.state == "progressing" and now >= deadline(i):
            waited = format_duration(deadline(i) - start)
            failed.append(Item(i.component, i.obj, timed_out_verdict(i.verdict, waited)))
    failed_refs = {(i.component, i.ref) for i in failed}
    failing_components = {i.component for i in failed}
    related = [
        i for i in counted
        if i.verdict.state != "ready" and i.component in failing_components and (i.component, i.ref) not in failed_refs
    ]
    present = {i.component for i in counted}
    missing = sorted(c for c in wanted - present if now >= deadlines.get(c, now))
    ready = not failed and not (wanted - present) and all(i.verdict.state == "ready" for i in counted)
    return Decision(failed, related, missing, ready, counted)


def list_workloads(kube: Kube, namespace: str) -> list[Obj]:
    return [o for objs in workloads_by_kind(kube, namespace).values() for o in objs]


def workloads_by_kind(kube: Kube, namespace: str) -> dict[str, list[Obj]]:
    """Kind -> the namespace's objects of that kind, for every kind wait-ready judges."""
    return {kind: kube.list(api_version, kind, namespace) for api_version, kind in WORKLOAD_KINDS}


def diagnose(
    kube: Kube, namespace: str, item: Item, events: list[dict[str, Any]], pods: list[dict[str, Any]], log_lines: int = 20
) -> dict[str, Any]:
    """What a person needs to fix a failing workload: reason (in the kubelet's words), the latest events, log tails.

    Logs come from the containers that explain the pods (readiness.log_sources): for a restarted
    container, the instance that crashed, since the new one has not printed the error (yet)."""
    verdict = readiness.explain(item.verdict, item.obj, events)
    names = {item.obj["metadata"]["name"], *verdict.pods}
    related = [
        e for e in events if (e.get("involvedObject") or {}).get("name") in names and e.get("type") == "Warning"
    ] or [e for e in events if (e.get("involvedObject") or {}).get("name") in names]
    related.sort(key=lambda e: readiness.event_time(e) or datetime.min.replace(tzinfo=timezone.utc))
    ev = [
        f"{(e.get('involvedObject') or {}).get('kind')}/{(e.get('involvedObject') or {}).get('name')}: "
        f"{e.get('reason')}: {truncate(redact(str(e.get('message') or '').strip()), 500)}"
        for e in related[-5:]
    ]
    by_name = {p["metadata"]["name"]: p for p in pods}
    logs: dict[str, str] = {}
    for name in list(verdict.pods)[:3]:
        pod = by_name.get(name)
        for src in readiness.log_sources(pod) if pod else []:
            label = f"{src.pod} {'init container' if src.init else 'container'} {src.container}"
            if src.previous:
                label += " (the instance that crashed)"
            logs[label] = kube.log_tail(namespace, src.pod, container=src.container, lines=log_lines, previous=src.previous)
    return {
        "component": item.component,
        "workload": item.ref,
        "reason": verdict.reason,
        "message": verdict.message,
        "events": ev,
        "logs": logs,
    }


FIX_WORKLOAD = "fix the workload named above; `envci status` shows the environment, `envci teardown` removes it"
IMAGE_NOT_ON_NODE = (
    "the node cannot pull an image: push it where the cluster pulls from, or load it into the nodes "
    "(`envci cluster load-image ARCHIVE` on envci's local cluster, `kind load docker-image` on kind; "
    "`python -m envci.images load` builds and loads envci's own envci.local/* images)"
)


NO_LOAD_BALANCER_HINT = (
    "this cluster has no load-balancer controller: make the Service `type: ClusterIP` (envci's `expose:` "
    "reaches it through a port-forward or an Ingress), or install one such as MetalLB"
)


def failure_hint(reasons: list[str]) -> str:
    """What to do first about the failures whose reasons are `reasons`."""
    if any(r in readiness.IMAGE_PULL_WAITING or r == "ErrImageNeverPull" for r in reasons):
        return f"{IMAGE_NOT_ON_NODE}; then {FIX_WORKLOAD}"
    if readiness.NO_LOAD_BALANCER in reasons:
        return f"{NO_LOAD_BALANCER_HINT}; then {FIX_WORKLOAD}"
    return FIX_WORKLOAD


def format_failure(f: dict[str, Any]) -> str:
    lines = [f"  {f['component']}: {f['workload']} {f['reason']}: {f['message']}"]
    if f["events"]:
        lines.append("    events:")
        lines += [f"      {e}" for e in f["events"]]
    for source, text in f["logs"].items():
        lines.append(f"    last log lines of pod {source}:")
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
    """Wait for the components of envci.yaml (or those named), each for its own `wait.timeout`."""
    ns = cfg.identity.namespace
    spec = cfg.spec
    wanted = [c for c in spec.components if c.wait.enabled and (components is None or c.name in components)]
    state = st.load(kube, ns)
    ns_obj = kube.namespace(ns)
    if ns_obj is None:
        raise NotReadyError(f"environment {cfg.identity.name} does not exist (namespace {ns})", hint="run `envci provision` first")
    refuse_suspended(ns_obj, cfg.identity.name)
    release_map = {(r.release or n): n for n, r in (state.components.items() if state else [])}
    release_map.update({(c.helm.release or c.name): c.name for c in spec.components if c.helm})
    return wait_for(
        kube, rep, name=cfg.identity.name, namespace=ns, state=state, release_map=release_map,
        timeouts={c.name: timeout or parse_duration(c.wait.timeout) for c in wanted}, include_other=components is None,
        rules=rules, clock=clock,
    )


def wait_for_dependency(cfg: LoadedConfig, kube: Kube, rep: Reporter, components: list[str]) -> None:
    """Provision's wait for the components others depend on: provision has just made the namespace
    and records the outcome in the history itself, so this reads neither and writes nothing."""
    spec = cfg.spec
    wait_for(
        kube, rep, name=cfg.identity.name, namespace=cfg.identity.namespace, state=None,
        release_map={(c.helm.release or c.name): c.name for c in spec.components if c.helm},
        timeouts={c.name: parse_duration(c.wait.timeout) for c in spec.components if c.wait.enabled and c.name in components},
        include_other=False,
    )


def wait_for(
    kube: Kube,
    rep: Reporter,
    *,
    name: str,
    namespace: str,
    state: st.EnvState | None,
    release_map: dict[str, str],
    timeouts: dict[str, timedelta],
    include_other: bool,
    rules: readiness.Rules | None = None,
    stage: str = "wait-ready",
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
) -> dict[str, Any]:
    """The wait itself, for whoever knows what to wait for: `timeouts` maps each awaited component
    to how long it may take; `include_other` also counts objects of no component (see `decide`).
    Records the outcome in the environment's history under `stage`."""
    ns = namespace
    rules = rules or readiness.Rules()
    wanted_names = set(timeouts)
    start = clock()
    deadlines = {c: start + t for c, t in timeouts.items()}
    last_seen: dict[str, str] = {}
    rep.progress(f"waiting for {', '.join(sorted(wanted_names)) or 'the namespace'} in {ns}")
    with kube.mirror(ns, MIRRORED_KINDS) as seen:
        while True:
            listed = seen.objects()
            pods = listed.pop("Pod")
            now = clock()
            items = judge([o for objs in listed.values() for o in objs], pods, release_map, now=now, rules=rules)
            decision = decide(items, wanted=wanted_names, deadlines=deadlines, start=start, now=now, include_other=include_other)
            for i in decision.items:
                key = f"{i.component}/{i.ref}"
                summary = f"{i.verdict.state}: {i.verdict.message}"
                if last_seen.get(key) != summary:
                    rep.progress(f"  {key} {summary}")
                    last_seen[key] = summary
            if decision.failed:
                seen.close()  # nothing more to watch while the failure is explained
                events = kube.events(ns)
                failures = [diagnose(kube, ns, i, events, pods) for i in decision.failed]
                failures += [{**diagnose(kube, ns, i, events, pods), "related": True} for i in decision.related]
                _record(kube, state, stage, "failed", "; ".join(f"{f['workload']}: {f['reason']}" for f in failures if not f.get("related")))
                text = "\n".join(format_failure(f) for f in failures if not f.get("related"))
                also = [format_failure(f) for f in failures if f.get("related")]
                if also:
                    text += "\n  not ready either, in the same component:\n" + "\n".join(also)
                raise NotReadyError(
                    f"environment {name} is not ready:\n{text}",
                    failures=failures,
                    hint=failure_hint([f["reason"] for f in failures if not f.get("related")]),
                )
            if decision.missing:
                raise NotReadyError(
                    f"environment {name}: no workloads found for {', '.join(decision.missing)}",
                    hint="check that the component created Deployments/StatefulSets/Jobs in the namespace",
                )
            if decision.ready:
                seen.close()
                elapsed = (clock() - start).total_seconds()
                rep.progress(f"ready after {elapsed:.1f}s")
                _record(kube, state, stage, "succeeded", f"{elapsed:.1f}s")
                return {
                    "name": name,
                    "namespace": ns,
                    "ready": True,
                    "seconds": round(elapsed, 2),
                    "workloads": [{"component": i.component, "workload": i.ref, "state": i.verdict.state} for i in decision.items],
                    "urls": state.urls if state else {},
                }
            remaining = (min(deadlines.values(), default=now) - now).total_seconds()
            seen.wait(max(0.05, min(WATCH_SECONDS, remaining + 0.05)))


def _record(kube: Kube, state: st.EnvState | None, stage: str, result: str, message: str) -> None:
    if state is None:
        return
    state.record(stage, result, message)
    try:
        st.save(kube, state)
    except EnvciError as e:
        # History is a record, never a reason to hide the real outcome; say it is incomplete.
        log.warning("could not record %s %s in the history of %s: %s", stage, result, state.namespace, redact(e.message))
