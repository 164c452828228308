"""Pure readiness rules: a Kubernetes object (and its pods) -> ready | progressing | failed(reason).

Objects are plain dicts in API JSON shape. The rules follow what `kubectl rollout status` and
Helm's readiness checks consider done, plus the pod states that will not heal on their own
(crash loops, bad images, unschedulable pods), which fail fast instead of running out the clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

State = Literal["ready", "progressing", "failed"]

# Waiting reasons that no amount of waiting fixes.
FATAL_WAITING = {"InvalidImageName", "CreateContainerConfigError", "CreateContainerError", "RunContainerError", "ErrImageNeverPull"}
IMAGE_PULL = {"ImagePullBackOff", "ErrImagePull"}


@dataclass(frozen=True)
class Verdict:
    state: State
    reason: str
    message: str
    pods: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rules:
    image_pull_grace: timedelta = timedelta(seconds=60)
    """ImagePullBackOff/ErrImagePull fail after this long: registries hiccup, a typo'd tag does not heal."""
    crashloop_restarts: int = 2
    """CrashLoopBackOff fails once a container restarted this often: one restart can be a race at start-up."""
    unschedulable_grace: timedelta = timedelta(seconds=30)
    """Unschedulable fails after this long: long enough for a cluster autoscaler to react to a pending pod."""
    require_ingress_address: bool = False
    """Whether an Ingress needs a load-balancer address to count as ready (local clusters have none)."""


def _ts(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _name(obj: dict[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("name", "?")


def _cond(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return c
    return None


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    order = {"failed": 0, "progressing": 1, "ready": 2}
    vs = list(verdicts)
    if not vs:
        return Verdict("ready", "Ready", "nothing to wait for")
    return min(vs, key=lambda v: order[v.state])


# --- pods ---------------------------------------------------------------------------------------


def _container_problem(pod: dict[str, Any], cs: dict[str, Any], *, init: bool, now: datetime, rules: Rules) -> Verdict | None:
    pname, cname = _name(pod), cs.get("name", "?")
    what = f"pod {pname} {'init ' if init else ''}container {cname}"
    waiting = (cs.get("state") or {}).get("waiting") or {}
    reason = waiting.get("reason", "")
    restarts = int(cs.get("restartCount") or 0)
    last = (cs.get("lastState") or {}).get("terminated") or {}
    if reason == "CrashLoopBackOff":
        detail = f"restarted {restarts} times"
        if last:
            detail += f", last exit code {last.get('exitCode')}"
            if last.get("reason") and last.get("reason") != "Error":
                detail += f" ({last['reason']})"
        v = Verdict("failed", "CrashLoopBackOff", f"{what} is in CrashLoopBackOff ({detail})", (pname,))
        return v if restarts >= rules.crashloop_restarts else Verdict("progressing", "CrashLoopBackOff", v.message, (pname,))
    if reason in IMAGE_PULL:
        msg = f"{what} cannot pull image {cs.get('image', '')}: {reason}"
        if waiting.get("message"):
            msg += f" ({waiting['message']})"
        since = _ts((_cond(pod, "PodScheduled") or {}).get("lastTransitionTime")) or _ts((pod.get("status") or {}).get("startTime"))
        if since is None or now - since >= rules.image_pull_grace:
            return Verdict("failed", reason, msg, (pname,))
        return Verdict("progressing", reason, msg, (pname,))
    if reason in FATAL_WAITING:
        msg = f"{what}: {reason}" + (f" ({waiting['message']})" if waiting.get("message") else "")
        return Verdict("failed", reason, msg, (pname,))
    term = (cs.get("state") or {}).get("terminated") or {}
    if init and term and term.get("exitCode", 0) != 0 and restarts >= rules.crashloop_restarts:
        return Verdict("failed", term.get("reason") or "Error", f"{what} failed with exit code {term.get('exitCode')}", (pname,))
    return None


def assess_pod(pod: dict[str, Any], *, now: datetime, rules: Rules = Rules()) -> Verdict:
    name = _name(pod)
    status = pod.get("status") or {}
    phase = status.get("phase", "Pending")
    if phase == "Succeeded":
        return Verdict("ready", "Completed", f"pod {name} completed")
    if phase == "Failed":
        reason = status.get("reason") or "Failed"
        return Verdict("failed", reason, f"pod {name} failed: {status.get('message') or reason}", (name,))
    for init, key in ((True, "initContainerStatuses"), (False, "containerStatuses")):
        for cs in status.get(key) or []:
            problem = _container_problem(pod, cs, init=init, now=now, rules=rules)
            if problem:
                return problem
    sched = _cond(pod, "PodScheduled")
    if sched and sched.get("status") == "False" and sched.get("reason") == "Unschedulable":
        since = _ts(sched.get("lastTransitionTime"))
        msg = f"pod {name} cannot be scheduled: {sched.get('message', '')}".rstrip(": ")
        if since is None or now - since >= rules.unschedulable_grace:
            return Verdict("failed", "Unschedulable", msg, (name,))
        return Verdict("progressing", "Unschedulable", msg, (name,))
    ready = _cond(pod, "Ready")
    if ready and ready.get("status") == "True":
        return Verdict("ready", "Ready", f"pod {name} is ready")
    if phase == "Running":
        unready = [c.get("name") for c in status.get("containerStatuses") or [] if not c.get("ready")]
        hint = f"container {', '.join(unready)} is running but not ready (readiness probe failing?)" if unready else "not ready yet"
        return Verdict("progressing", "NotReady", f"pod {name}: {hint}", (name,))
    return Verdict("progressing", "Pending", f"pod {name} is {phase.lower()}")


def pods_of(obj: dict[str, Any], pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pods selected by the workload's selector (and not being deleted)."""
    spec = obj.get("spec") or {}
    selector = spec.get("selector") or {}
    if obj.get("kind") == "Job":
        uid = (obj.get("metadata") or {}).get("uid")
        by_owner = [p for p in pods if any(o.get("uid") == uid for o in (p.get("metadata") or {}).get("ownerReferences") or [])]
        if by_owner or not selector:
            return [p for p in by_owner if not p["metadata"].get("deletionTimestamp")]
    if obj.get("kind") == "Service":
        selector = {"matchLabels": spec.get("selector") or {}} if spec.get("selector") else {}
    if not selector:
        return []
    ns = (obj.get("metadata") or {}).get("namespace")
    return [
        p
        for p in pods
        if not (p.get("metadata") or {}).get("deletionTimestamp")
        and (ns is None or (p.get("metadata") or {}).get("namespace") in (None, ns))
        and _matches(selector, (p.get("metadata") or {}).get("labels") or {})
    ]


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return bool(selector.get("matchLabels") or selector.get("matchExpressions"))


def _pod_failure(pods: list[dict[str, Any]], now: datetime, rules: Rules, *, allow_failed_phase: bool = False) -> Verdict | None:
    for p in pods:
        if allow_failed_phase and (p.get("status") or {}).get("phase") == "Failed":
            continue
        v = assess_pod(p, now=now, rules=rules)
        if v.state == "failed":
            return v
    return None


def _pod_hint(pods: list[dict[str, Any]], now: datetime, rules: Rules) -> Verdict | None:
    """The most telling not-ready pod, to explain a workload that is still progressing."""
    vs = [assess_pod(p, now=now, rules=rules) for p in pods]
    pending = [v for v in vs if v.state != "ready"]
    return pending[0] if pending else None


# --- workloads ----------------------------------------------------------------------------------


def _replicas(obj: dict[str, Any], default: int = 1) -> int:
    r = (obj.get("spec") or {}).get("replicas")
    return default if r is None else int(r)


def _progressing(kind: str, name: str, what: str, pods: list[dict[str, Any]], now: datetime, rules: Rules) -> Verdict:
    failure = _pod_failure(pods, now, rules)
    if failure:
        return Verdict("failed", failure.reason, f"{kind} {name}: {what}; {failure.message}", failure.pods)
    hint = _pod_hint(pods, now, rules)
    if hint:
        return Verdict("progressing", hint.reason, f"{kind} {name}: {what}; {hint.message}", hint.pods)
    return Verdict("progressing", "Progressing", f"{kind} {name}: {what}")


def _deployment(obj: dict[str, Any], pods: list[dict[str, Any]], now: datetime, rules: Rules) -> Verdict:
    name, st = _name(obj), obj.get("status") or {}
    want = _replicas(obj)
    if (obj.get("spec") or {}).get("paused"):
        return Verdict("progressing", "Paused", f"Deployment {name} is paused")
    prog = _cond(obj, "Progressing")
    if prog and prog.get("reason") == "ProgressDeadlineExceeded":
        failure = _pod_failure(pods, now, rules)
        extra = f"; {failure.message}" if failure else ""
        return Verdict("failed", "ProgressDeadlineExceeded", f"Deployment {name}: {prog.get('message', 'progress deadline exceeded')}{extra}", failure.pods if failure else ())
    gen, observed = (obj.get("metadata") or {}).get("generation", 0), st.get("observedGeneration", 0)
    updated, available, total = st.get("updatedReplicas", 0), st.get("availableReplicas", 0), st.get("replicas", 0)
    if observed >= gen and updated >= want and available >= want and total <= updated:
        return Verdict("ready", "Ready", f"Deployment {name}: {available}/{want} replicas available")
    return _progressing("Deployment", name, f"{available}/{want} replicas available", pods, now, rules)


def _statefulset(obj: dict[str, Any], pods: list[dict[str, Any]], now: datetime, rules: Rules) -> Verdict:
    name, st, spec = _name(obj), obj.get("status") or {}, obj.get("spec") or {}
    want = _replicas(obj)
    ready = st.get("readyReplicas", 0)
    gen, observed = (obj.get("metadata") or {}).get("generation", 0), st.get("observedGeneration", 0)
    strategy = spec.get("updateStrategy") or {}
    rolled = True
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        partition = int(((strategy.get("rollingUpdate") or {}).get("partition")) or 0)
        if partition == 0:
            rolled = st.get("updateRevision") in (None, st.get("currentRevision")) or st.get("updatedReplicas", 0) >= want
        else:
            rolled = st.get("updatedReplicas", 0) >= want - partition
    if observed >= gen and ready >= want and rolled:
        return Verdict("ready", "Ready", f"StatefulSet {name}: {ready}/{want} replicas ready")
    return _progressing("StatefulSet", name, f"{ready}/{want} replicas ready", pods, now, rules)


def _daemonset(obj: dict[str, Any], pods: list[dict[str, Any]], now: datetime, rules: Rules) -> Verdict:
    name, st = _name(obj), obj.get("status") or {}
    desired, ready = st.get("desiredNumberScheduled", 0), st.get("numberReady", 0)
    gen, observed = (obj.get("metadata") or {}).get("generation", 0), st.get("observedGeneration", 0)
    if observed >= gen and ready >= desired and st.get("updatedNumberScheduled", desired) >= desired and not st.get("numberUnavailable"):
        return Verdict("ready", "Ready", f"DaemonSet {name}: {ready}/{desired} pods ready")
    return _progressing("DaemonSet", name, f"{ready}/{desired} pods ready", pods, now, rules)


def _replicaset(obj: dict[str, Any], pods: list[dict[str, Any]], now: datetime, rules: Rules) -> Verdict:
    name, st = _name(obj), obj.get("status") or {}
    want, avail = _replicas(obj), st.get("availableReplicas", 0)
    if avail >= want:
        return Verdict("ready", "Ready", f"ReplicaSet {name}: {avail}/{want} available")
    return _progressing("ReplicaSet", name, f"{avail}/{want} available", pods, now, rules)


def _job(obj: dict[str, Any], pods: list[dict[str, Any]], now: datetime, rules: Rules) -> Verdict:
    name = _name(obj)
    failed = _cond(obj, "Failed")
    if failed and failed.get("status") == "True":
        failed_pods = tuple(_name(p) for p in pods if (p.get("status") or {}).get("phase") == "Failed") or tuple(_name(p) for p in pods)
        reason = failed.get("reason") or "Failed"
        return Verdict("failed", reason, f"Job {name} failed: {failed.get('message') or reason}", failed_pods[-3:])
    complete = _cond(obj, "Complete")
    if complete and complete.get("status") == "True":
        return Verdict("ready", "Complete", f"Job {name} completed")
    # Failed pods of a Job are retried up to backoffLimit; only non-healing pod states fail early.
    failure = _pod_failure(pods, now, rules, allow_failed_phase=True)
    if failure:
        return Verdict("failed", failure.reason, f"Job {name}: {failure.message}", failure.pods)
    st = obj.get("status") or {}
    return Verdict("progressing", "Running", f"Job {name}: {st.get('succeeded', 0)} succeeded, {st.get('active', 0)} running")


def _service(obj: dict[str, Any], pods: list[dict[str, Any]], now: datetime, rules: Rules) -> Verdict:
    name, spec = _name(obj), obj.get("spec") or {}
    if spec.get("type") == "LoadBalancer" and not ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress"):
        return Verdict("progressing", "Pending", f"Service {name}: waiting for a load-balancer address")
    return Verdict("ready", "Ready", f"Service {name}")


def _pvc(obj: dict[str, Any], pods: list[dict[str, Any]], now: datetime, rules: Rules) -> Verdict:
    name, phase = _name(obj), (obj.get("status") or {}).get("phase", "Pending")
    if phase == "Bound":
        return Verdict("ready", "Bound", f"PersistentVolumeClaim {name} is bound")
    if phase == "Lost":
        return Verdict("failed", "Lost", f"PersistentVolumeClaim {name} lost its volume")
    return Verdict("progressing", phase, f"PersistentVolumeClaim {name} is {phase.lower()}")


def _ingress(obj: dict[str, Any], pods: list[dict[str, Any]], now: datetime, rules: Rules) -> Verdict:
    name = _name(obj)
    if rules.require_ingress_address and not ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress"):
        return Verdict("progressing", "Pending", f"Ingress {name}: waiting for an address")
    return Verdict("ready", "Ready", f"Ingress {name}")


_RULES = {
    "Deployment": _deployment,
    "StatefulSet": _statefulset,
    "DaemonSet": _daemonset,
    "ReplicaSet": _replicaset,
    "Job": _job,
    "Service": _service,
    "PersistentVolumeClaim": _pvc,
    "Ingress": _ingress,
}


def assess(obj: dict[str, Any], pods: list[dict[str, Any]], *, now: datetime, rules: Rules = Rules()) -> Verdict:
    kind = obj.get("kind", "")
    if kind == "Pod":
        return assess_pod(obj, now=now, rules=rules)
    rule = _RULES.get(kind)
    if rule is None:
        return Verdict("ready", "NoReadinessRule", f"{kind} {_name(obj)}: no readiness rule; assumed ready")
    return rule(obj, pods, now, rules)
