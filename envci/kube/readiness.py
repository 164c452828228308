"""Pure readiness rules: a Kubernetes object (and its pods) -> ready | progressing | failed(reason).

Objects are plain dicts in API JSON shape (camelCase, as `kubectl get -o json` prints them). The
workload rules follow what `kubectl rollout status` and Helm's readiness checks count as done. On
top of that, pod states that will not heal on their own (crash loops, images that cannot be pulled,
pods no node can take, missing config) fail the workload early, so a broken build stops in seconds
instead of running out the clock, and the verdict names the pod and container to look at.

Nothing here does I/O or reads the clock: the caller passes `now`, so every threshold is testable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from envci.timestamps import aware as _aware
from envci.timestamps import parse_time

State = Literal["ready", "progressing", "failed"]
Obj = dict[str, Any]

# Waiting reasons that no amount of waiting fixes: the pod spec itself is wrong.
FATAL_WAITING = frozenset({"InvalidImageName", "ErrImageNeverPull", "RunContainerError"})
# Registries hiccup and tags get pushed late: these fail only after `Rules.image_pull_grace`.
IMAGE_PULL_WAITING = frozenset({"ImagePullBackOff", "ErrImagePull"})
# A Secret/ConfigMap created a moment later by an operator heals these: `Rules.create_error_grace`.
CREATE_WAITING = frozenset({"CreateContainerConfigError", "CreateContainerError"})
# Reasons that only say "not there yet"; a hint with a more specific reason explains more.
_GENERIC = frozenset({"Pending", "Progressing", "Running", "ContainerCreating", "PodInitializing", "Settling"})

_ORDER: dict[str, int] = {"failed": 0, "progressing": 1, "ready": 2}
# The Progressing condition names the new ReplicaSet: 'ReplicaSet "web-7c5ddbdf54" is progressing.',
# 'Created new replica set "web-7c5ddbdf54"', 'Found new replica set ...'.
_NEW_REPLICA_SET = re.compile(r'replica ?set "([^"]+)"', re.IGNORECASE)


@dataclass(frozen=True)
class Verdict:
    """What one object amounts to right now."""

    state: State
    reason: str
    """Short and, when Kubernetes has a word for it, spelled as Kubernetes spells it (CrashLoopBackOff)."""
    message: str
    """One sentence naming the object and what is wrong or awaited."""
    pods: tuple[str, ...] = ()
    """Pods that explain a failure or a wait, so the caller can show their events and last log lines."""


@dataclass(frozen=True)
class Rules:
    """When a bad state stops being worth waiting for. The waiter's own deadline bounds everything else."""

    image_pull_grace: timedelta = timedelta(seconds=60)
    """ImagePullBackOff/ErrImagePull fail after this long, measured from the pod's start.

    Registries hiccup and CI sometimes pushes an image a moment after deploying it; the kubelet's own
    retries (10s, 20s, 40s...) get two or three attempts in a minute. A mistyped tag never heals."""

    crashloop_failures: int = 2
    """A container fails its pod once it has ended badly this many times (see `failed_starts`).

    Counted from restartCount and the last termination, never from the word CrashLoopBackOff:
    a recent kubelet restarts a crashing container within seconds and reports it as terminated
    ("Error" in kubectl) or running between restarts, and only says CrashLoopBackOff once its
    back-off has grown past a minute. One crash can be a race at start-up (a database not
    accepting connections yet); a second crash of the same container is almost always a real
    bug or a bad configuration."""

    crashloop_recovered_after: timedelta = timedelta(seconds=60)
    """A container that crashed but has now been running and ready this long has recovered.

    Between two crashes a restarted container runs, and without a readiness probe it is even
    ready, for a moment; judging it by that moment would let a crash loop pass as ready. An
    instance that stays up past the kubelet's early back-offs is not looping any more."""

    settle: timedelta = timedelta(seconds=5)
    """A pod with a container that has no readiness probe counts as ready once it has stayed Ready
    this long, as with a Deployment's minReadySeconds.

    A container without a readiness probe is Ready the moment it starts: one that exits a moment
    later (a missing setting, a bad flag) is Ready for that moment, and its Deployment counts it as
    available. Waiting a few seconds lets the crash show; without it a crash loop passes as ready.
    A pod whose containers all have readiness probes is Ready only once they passed, which says
    more than any wait: it is not kept waiting."""

    unschedulable_grace: timedelta = timedelta(seconds=30)
    """A pod no node can take fails after this long, measured from its PodScheduled transition.

    Without a cluster autoscaler nothing changes the nodes, so a short grace only covers pods
    freed by a rollout. With an autoscaler, set this above its scale-up time (minutes)."""

    create_error_grace: timedelta = timedelta(seconds=30)
    """CreateContainerConfigError/CreateContainerError fail after this long, measured from the pod's start.

    The usual cause is a missing Secret or ConfigMap key; operators (external secrets, cert
    managers) create those a few seconds after the workload, so they deserve a short wait."""

    replica_failure_grace: timedelta = timedelta(seconds=30)
    """A controller that cannot create pods (ReplicaFailure: quota, admission) fails after this long.

    During a rolling update a surge pod can briefly exceed a quota until an old pod goes away;
    a pod security violation never heals."""

    require_load_balancer_address: bool = True
    """Whether a Service of type LoadBalancer needs status.loadBalancer.ingress to count as ready.

    Turn off on clusters without a load-balancer controller, where the address never comes."""

    load_balancer_grace: timedelta = timedelta(seconds=120)
    """A Service of type LoadBalancer with no address fails after this long, measured from its creation.

    Bare-metal controllers (MetalLB, kube-vip, the local cluster's agent) set an address within
    seconds, cloud ones within a minute or two; a cluster with none never does, and waiting out the
    whole deadline (5m by default) only hides that."""

    require_ingress_address: bool = False
    """Whether an Ingress needs status.loadBalancer.ingress to count as ready.

    Off by default: local clusters often run no ingress controller that would publish an address."""


# --- small helpers ------------------------------------------------------------------------------


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _status(obj: Obj) -> Obj:
    return obj.get("status") or {}


def _spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def _name(obj: Obj) -> str:
    return str(_meta(obj).get("name") or "?")


def _int(value: object, default: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return default
    try:
        return int(value)
    except ValueError:
        return default


def _cond(obj: Obj, kind: str) -> Obj | None:
    for c in _status(obj).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == kind:
            return c
    return None


def _true(cond: Obj | None) -> bool:
    return cond is not None and cond.get("status") == "True"


def _elapsed_since(since: datetime | None, now: datetime) -> timedelta | None:
    return None if since is None else _aware(now) - since


def _past(since: datetime | None, now: datetime, grace: timedelta) -> bool:
    """Whether `grace` has run out; an unknown start never runs out (the waiter's deadline still does)."""
    elapsed = _elapsed_since(since, now)
    return elapsed is not None and elapsed >= grace


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _deleting(obj: Obj) -> bool:
    return bool(_meta(obj).get("deletionTimestamp"))


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """The verdict that decides a summary: failed over progressing over ready; the first among equals."""
    vs = list(verdicts)
    if not vs:
        return Verdict("ready", "Ready", "nothing to wait for")
    return min(vs, key=lambda v: _ORDER[v.state])


# --- pods ---------------------------------------------------------------------------------------


def _pod_started(pod: Obj) -> datetime | None:
    """When the kubelet started working on the pod: the clock for image pulls and container creation."""
    st = _status(pod)
    return (
        parse_time(st.get("startTime"))
        or parse_time((_cond(pod, "PodScheduled") or {}).get("lastTransitionTime"))
        or parse_time(_meta(pod).get("creationTimestamp"))
    )


def _with_message(text: str, message: object) -> str:
    return f"{text} ({message})" if message else text


def _container_spec(pod: Obj, name: object, *, init: bool) -> Obj:
    for c in _spec(pod).get("initContainers" if init else "containers") or []:
        if isinstance(c, dict) and c.get("name") == name:
            return c
    return {}


def _long_running(pod: Obj, cs: Obj, *, init: bool) -> bool:
    """Whether this container is meant to run until the pod stops, so that any exit is a failure.

    Regular containers of a pod with restartPolicy Always (Deployments, StatefulSets, DaemonSets)
    and sidecars (init containers with their own restartPolicy Always) are; a Job's containers and
    ordinary init containers are meant to exit, and only a non-zero code is a failure for them.
    """
    if init:
        return _container_spec(pod, cs.get("name"), init=True).get("restartPolicy") == "Always"
    return (_spec(pod).get("restartPolicy") or "Always") == "Always"


def _last_termination(cs: Obj) -> Obj:
    """The termination of the most recent instance that ended: the current one if it has, else the one before."""
    return (cs.get("state") or {}).get("terminated") or (cs.get("lastState") or {}).get("terminated") or {}


def failed_starts(cs: Obj, *, long_running: bool) -> int:
    """How many instances of this container have ended badly, as far as its status tells.

    restartCount counts the instances that were replaced. The instance the status describes counts
    too once it has ended: `state.terminated` right after a crash, or `state.waiting` (any reason:
    CrashLoopBackOff, none, ContainerCreating) with `lastState.terminated` while the kubelet waits
    to restart it. A running instance has not failed (yet); its predecessors are counted by
    restartCount when the one before it ended badly. An exit counts as bad when its code is not
    zero, or for a long-running container at all (it was meant never to exit).
    """
    state = cs.get("state") or {}
    restarts = _int(cs.get("restartCount"))
    last = (cs.get("lastState") or {}).get("terminated") or {}

    def bad(term: Obj) -> bool:
        return bool(term) and (long_running or _int(term.get("exitCode")) != 0)

    if state.get("terminated"):
        return restarts + 1 if bad(state["terminated"]) else 0
    if "running" in state:
        return restarts if bad(last) else 0
    if bad(last) or (state.get("waiting") or {}).get("reason") == "CrashLoopBackOff":
        return restarts + 1
    return 0


def _quantity(pod: Obj, cs: Obj, *, init: bool, key: str) -> str:
    return str(((_container_spec(pod, cs.get("name"), init=init).get("resources") or {}).get("limits") or {}).get(key) or "")


def _termination_words(pod: Obj, cs: Obj, term: Obj, *, init: bool) -> str:
    """Exit code, the kubelet's reason when it says more than "Error", and its message, e.g.
    "code 137, OOMKilled at memory limit 64Mi" or "code 128, StartError: exec: ...: not found"."""
    words = f"code {term['exitCode']}" if "exitCode" in term else "no code"
    reason = term.get("reason") or ""
    if reason == "OOMKilled":
        limit = _quantity(pod, cs, init=init, key="memory")
        words += f", OOMKilled at memory limit {limit}" if limit else ", OOMKilled without a memory limit (the node ran out of memory)"
    elif reason and reason not in {"Error", "Completed"}:
        words += f", {reason}"
    message = str(term.get("message") or "").strip()
    if message:
        # The kubelet's own message (StartError) or the container's termination message file.
        words += f": {_cut(message)}"
    return words


def _cut(text: str, limit: int = 300) -> str:
    """One line of at most `limit` characters: verdicts are read in a CI log, a line each."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _image(pod: Obj, cs: Obj, *, init: bool) -> str:
    return str(cs.get("image") or _container_spec(pod, cs.get("name"), init=init).get("image") or "")


def _container_verdict(pod: Obj, cs: Obj, *, init: bool, now: datetime, rules: Rules) -> Verdict | None:
    """A verdict when this container is in a bad state (failed, or bad but within its grace); else None."""
    pname = _name(pod)
    what = f"pod {pname} {'init container' if init else 'container'} {cs.get('name', '?')}"
    state = cs.get("state") or {}
    waiting = state.get("waiting") or {}
    reason = waiting.get("reason") or ""
    crashes = failed_starts(cs, long_running=_long_running(pod, cs, init=init))
    running_since = parse_time((state.get("running") or {}).get("startedAt"))
    recovered = bool(cs.get("ready")) and _past(running_since, now, rules.crashloop_recovered_after)
    if crashes and not recovered:
        term = _last_termination(cs)
        why = "OOMKilled" if term.get("reason") == "OOMKilled" else "CrashLoopBackOff"
        state_: State = "failed" if crashes >= rules.crashloop_failures else "progressing"
        detail = f"{_plural(crashes, 'failed start')}, last exit {_termination_words(pod, cs, term, init=init)}"
        return Verdict(state_, why, f"{what} is in a crash loop ({detail})", (pname,))
    if reason in IMAGE_PULL_WAITING:
        msg = _with_message(f"{what} cannot pull image {_image(pod, cs, init=init)}: {reason}", waiting.get("message"))
        state_ = "failed" if _past(_pod_started(pod), now, rules.image_pull_grace) else "progressing"
        return Verdict(state_, reason, msg, (pname,))
    if reason in CREATE_WAITING:
        msg = _with_message(f"{what} cannot be created: {reason}", waiting.get("message"))
        state_ = "failed" if _past(_pod_started(pod), now, rules.create_error_grace) else "progressing"
        return Verdict(state_, reason, msg, (pname,))
    if reason in FATAL_WAITING:
        return Verdict("failed", reason, _with_message(f"{what}: {reason}", waiting.get("message")), (pname,))
    return None


def _container_verdicts(pod: Obj, now: datetime, rules: Rules) -> list[Verdict]:
    st = _status(pod)
    out = []
    for init, key in ((True, "initContainerStatuses"), (False, "containerStatuses")):
        for cs in st.get(key) or []:
            v = _container_verdict(pod, cs, init=init, now=now, rules=rules)
            if v is not None:
                out.append(v)
    return out


def _unschedulable(pod: Obj, now: datetime, rules: Rules) -> Verdict | None:
    sched = _cond(pod, "PodScheduled")
    if not sched or sched.get("status") != "False" or sched.get("reason") != "Unschedulable":
        return None
    name = _name(pod)
    msg = f"pod {name} cannot be scheduled" + (f": {sched['message']}" if sched.get("message") else "")
    since = parse_time(sched.get("lastTransitionTime")) or parse_time(_meta(pod).get("creationTimestamp"))
    state: State = "failed" if _past(since, now, rules.unschedulable_grace) else "progressing"
    return Verdict(state, "Unschedulable", msg, (name,))


def _failed_pod(pod: Obj) -> Verdict:
    """A pod in phase Failed: evicted, past its deadline, or (restartPolicy Never) a container exited non-zero."""
    name, st = _name(pod), _status(pod)
    why = st.get("message") or ""
    reason = st.get("reason") or ""
    if not why:
        statuses = [(True, cs) for cs in st.get("initContainerStatuses") or []]
        statuses += [(False, cs) for cs in st.get("containerStatuses") or []]
        for init, cs in statuses:
            term = (cs.get("state") or {}).get("terminated") or {}
            if term and _int(term.get("exitCode")) != 0:
                reason = reason or term.get("reason") or "Error"
                kind = "init container" if init else "container"
                why = f"{kind} {cs.get('name', '?')} exited with {_termination_words(pod, cs, term, init=init)}"
                break
    reason = reason or "Failed"
    return Verdict("failed", reason, f"pod {name} failed: {why or reason}", (name,))


def _not_ready(pod: Obj) -> Verdict:
    """Running but not Ready: say which containers and the likely cause, and leave it to the deadline."""
    name, st = _name(pod), _status(pod)
    statuses = st.get("containerStatuses") or []
    running = [c.get("name", "?") for c in statuses if not c.get("ready") and "running" in (c.get("state") or {})]
    waiting = [
        f"container {c.get('name', '?')} is waiting ({((c.get('state') or {}).get('waiting') or {}).get('reason', 'unknown')})"
        for c in statuses
        if not c.get("ready") and "waiting" in (c.get("state") or {})
    ]
    parts = []
    if running:
        noun = "container" if len(running) == 1 else "containers"
        verb = "is" if len(running) == 1 else "are"
        parts.append(f"{noun} {', '.join(running)} {verb} running but not ready (readiness probe failing?)")
    parts += waiting
    restarts = sum(_int(c.get("restartCount")) for c in statuses)
    if restarts:
        parts.append(f"restarted {_plural(restarts, 'time')}")
    if not parts:
        gates = [g.get("conditionType") for g in _spec(pod).get("readinessGates") or []]
        unmet = [g for g in gates if g and not _true(_cond(pod, g))]
        parts.append(f"readiness gates not met: {', '.join(unmet)}" if unmet else "not ready yet")
    return Verdict("progressing", "NotReady", f"pod {name}: {'; '.join(parts)}", (name,))


def _pending(pod: Obj) -> Verdict:
    """Not running yet: name what it is busy with (init containers, ContainerCreating...), and the pod, whose
    events say more (a volume that cannot be mounted, a sandbox that cannot be created)."""
    name, st = _name(pod), _status(pod)
    inits = st.get("initContainerStatuses") or []
    done = sum(1 for c in inits if ((c.get("state") or {}).get("terminated") or {}).get("exitCode") == 0)
    if inits and done < len(inits):
        return Verdict("progressing", "PodInitializing", f"pod {name} is initializing ({done}/{len(inits)} init containers done)", (name,))
    for c in st.get("containerStatuses") or []:
        reason = ((c.get("state") or {}).get("waiting") or {}).get("reason")
        if reason:
            return Verdict("progressing", reason, f"pod {name} is pending: container {c.get('name', '?')} is {reason}", (name,))
    sched = _cond(pod, "PodScheduled")
    if sched and sched.get("status") == "False" and sched.get("reason"):
        # SchedulingGated and the like: waiting on something outside the pod.
        return Verdict("progressing", sched["reason"], _with_message(f"pod {name} is not scheduled yet", sched.get("message")), (name,))
    phase = st.get("phase") or "Pending"
    return Verdict("progressing", "Pending", f"pod {name} is {phase.lower()}", (name,))


def _unprobed(pod: Obj) -> bool:
    """Whether a container of the pod is Ready merely by running (see Rules.settle)."""
    return any(not c.get("readinessProbe") for c in (pod.get("spec") or {}).get("containers") or [])


def assess_pod(pod: Obj, *, now: datetime, rules: Rules = Rules()) -> Verdict:
    """One pod: Succeeded is ready (a finished one-off), Failed is failed, else its containers decide."""
    name, st = _name(pod), _status(pod)
    phase = st.get("phase") or "Pending"
    if phase == "Succeeded":
        return Verdict("ready", "Completed", f"pod {name} completed")
    if phase == "Failed":
        return _failed_pod(pod)
    containers = _container_verdicts(pod, now, rules)
    failed = [v for v in containers if v.state == "failed"]
    if failed:
        return failed[0]
    unschedulable = _unschedulable(pod, now, rules)
    if unschedulable is not None:
        return unschedulable
    ready = _cond(pod, "Ready")
    if _true(ready):
        assert ready is not None
        since = parse_time(ready.get("lastTransitionTime"))
        if since is not None and _unprobed(pod) and not _past(since, now, rules.settle):
            return Verdict("progressing", "Settling", f"pod {name} has just become ready; waiting {_seconds(rules.settle)} to see it stay up", (name,))
        return Verdict("ready", "Ready", f"pod {name} is ready")
    if containers:  # bad but within its grace: the specific reason explains the wait best
        return containers[0]
    if phase == "Running":
        return _not_ready(pod)
    return _pending(pod)


# --- which pods belong to a workload ------------------------------------------------------------


def _matches(selector: Obj, labels: dict[str, str]) -> bool:
    """Label selector semantics; an empty selector selects nothing (a workload never has one)."""
    match_labels = selector.get("matchLabels") or {}
    exprs = selector.get("matchExpressions") or []
    if not match_labels and not exprs:
        return False
    if any(labels.get(k) != v for k, v in match_labels.items()):
        return False
    return all(_expression(e, labels) for e in exprs)


def _expression(expr: Obj, labels: dict[str, str]) -> bool:
    key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
    if op == "In":
        return key in labels and labels[key] in values
    if op == "NotIn":
        return key not in labels or labels[key] not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    return False  # an operator we do not know must not widen the selection


def _controller(pod: Obj) -> Obj | None:
    for ref in _meta(pod).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller"):
            return ref
    return None


def _owned_by(obj: Obj, pod: Obj) -> bool:
    """Whether the pod's controller is this workload, when the pod names one.

    Overlapping selectors are common (two StatefulSets selecting only `app: redis`); the owner
    reference tells their pods apart. A pod without a controller is judged by its labels alone.
    """
    ref = _controller(pod)
    if ref is None:
        return True
    kind, name, uid = obj.get("kind"), _name(obj), _meta(obj).get("uid")
    if kind == "Deployment":
        # Deployment pods belong to its ReplicaSets, named "<deployment>-<pod-template-hash>".
        return ref.get("kind") == "ReplicaSet" and str(ref.get("name", "")).rpartition("-")[0] == name
    if kind in {"StatefulSet", "DaemonSet", "ReplicaSet", "Job"}:
        if ref.get("kind") != kind:
            return False
        return ref.get("uid") == uid if uid and ref.get("uid") else ref.get("name") == name
    return True


def _selector(obj: Obj) -> Obj:
    spec = _spec(obj)
    if obj.get("kind") == "Service":  # a Service's selector is a bare label map
        return {"matchLabels": spec.get("selector") or {}}
    return spec.get("selector") or {}


def pods_of(obj: Obj, pods: list[Obj]) -> list[Obj]:
    """Pods of a workload (or behind a Service): selected by its selector and owned by it, not being deleted."""
    if obj.get("kind") == "Pod":
        return []
    selector = _selector(obj)
    ns = _meta(obj).get("namespace")
    out = []
    for p in pods:
        meta = _meta(p)
        if _deleting(p) or (ns and meta.get("namespace") and meta["namespace"] != ns):
            continue
        if obj.get("kind") == "Job" and _controller(p) and _owned_by(obj, p):
            out.append(p)  # a Job's pods are found by owner even when the caller's Job lacks its selector
        elif _matches(selector, meta.get("labels") or {}) and _owned_by(obj, p):
            out.append(p)
    return out


# --- workloads ----------------------------------------------------------------------------------


def _pod_failures(pods: list[Obj], now: datetime, rules: Rules) -> list[Verdict]:
    return [v for v in (assess_pod(p, now=now, rules=rules) for p in pods) if v.state == "failed"]


def _failed_workload(label: str, what: str, failures: list[Verdict]) -> Verdict:
    first = failures[0]
    more = f" (and {_plural(len(failures) - 1, 'more pod')} failing)" if len(failures) > 1 else ""
    names = tuple(dict.fromkeys(n for v in failures for n in v.pods))
    return Verdict("failed", first.reason, f"{label}: {what}; {first.message}{more}", names)


def _pod_hint(pods: list[Obj], now: datetime, rules: Rules) -> Verdict | None:
    """The most telling not-ready pod, to explain a workload that is still progressing."""
    waiting = [v for v in (assess_pod(p, now=now, rules=rules) for p in pods) if v.state != "ready"]
    specific = [v for v in waiting if v.reason not in _GENERIC]
    best = specific or waiting
    return best[0] if best else None


def _progressing(label: str, what: str, pods: list[Obj], now: datetime, rules: Rules, *, job: bool = False) -> Verdict:
    """A workload whose own status is not done: its pods decide between failed and progressing."""
    if job:
        # A Job retries failed pods up to its backoffLimit; its own Failed condition judges them.
        pods = [p for p in pods if _status(p).get("phase") != "Failed"]
    failures = _pod_failures(pods, now, rules)
    if failures:
        return _failed_workload(label, what, failures)
    hint = _pod_hint(pods, now, rules)
    if hint is not None:
        return Verdict("progressing", hint.reason, f"{label}: {what}; {hint.message}", hint.pods)
    return Verdict("progressing", "Progressing", f"{label}: {what}")


def _unobserved(obj: Obj) -> str | None:
    """Why the controller's status is stale (it has not seen the latest spec yet), or None."""
    gen = _int(_meta(obj).get("generation"), 0)
    observed = _int(_status(obj).get("observedGeneration"), 0)
    if gen and observed < gen:
        return f"waiting for the controller to observe generation {gen} (observed {observed})"
    return None


def _replica_failure(label: str, obj: Obj, now: datetime, rules: Rules) -> Verdict | None:
    """ReplicaFailure (FailedCreate): the controller cannot create pods (quota, admission, pod security)."""
    cond = _cond(obj, "ReplicaFailure")
    if not _true(cond):
        return None
    assert cond is not None
    reason = cond.get("reason") or "FailedCreate"
    state: State = "failed" if _past(parse_time(cond.get("lastTransitionTime")), now, rules.replica_failure_grace) else "progressing"
    return Verdict(state, reason, _with_message(f"{label}: cannot create pods: {reason}", cond.get("message")))


def _with_replica_failure(label: str, obj: Obj, from_pods: Verdict, now: datetime, rules: Rules) -> Verdict:
    """A controller that cannot create pods explains more than the pods it has, unless one of those failed."""
    cannot_create = _replica_failure(label, obj, now, rules)
    if cannot_create is None or (from_pods.state == "failed" and cannot_create.state != "failed"):
        return from_pods
    return cannot_create


def _new_replica_set_pods(obj: Obj, pods: list[Obj]) -> list[Obj]:
    """During a rollout, only the new ReplicaSet's pods say whether it will work.

    Pods of the old ReplicaSet may still be crash-looping from the build being replaced; the
    Progressing condition names the new ReplicaSet, and its pods are the ones that matter.
    """
    found = _NEW_REPLICA_SET.search((_cond(obj, "Progressing") or {}).get("message") or "")
    if not found or not any(_controller(p) for p in pods):
        return pods  # nothing to tell old from new by
    # Possibly none yet: the new ReplicaSet was just created and the old pods are all there is.
    return [p for p in pods if (_controller(p) or {}).get("name") == found.group(1)]


def _deployment(obj: Obj, pods: list[Obj], now: datetime, rules: Rules) -> Verdict:
    label, spec, st = f"Deployment {_name(obj)}", _spec(obj), _status(obj)
    want = _int(spec.get("replicas"), 1)
    updated, available = _int(st.get("updatedReplicas")), _int(st.get("availableReplicas"))
    old = max(0, _int(st.get("replicas")) - updated)
    what = f"{available}/{want} replicas available"
    if spec.get("paused"):
        # A paused rollout never finishes by waiting; like Helm, do not hold the environment on it.
        return Verdict("ready", "Paused", f"{label} is paused; its rollout is not awaited ({what})")
    stale = _unobserved(obj)
    if stale:  # the status (and the pods) still describe the previous spec
        return Verdict("progressing", "Progressing", f"{label}: {stale}")
    current = _new_replica_set_pods(obj, pods)
    prog = _cond(obj, "Progressing")
    if prog and prog.get("reason") == "ProgressDeadlineExceeded":
        failures = _pod_failures(current, now, rules)
        msg = f"{label}: {what}; {prog.get('message') or 'progress deadline exceeded'}"
        if failures:
            msg += f"; {failures[0].message}"
        return Verdict("failed", "ProgressDeadlineExceeded", msg, tuple(n for v in failures for n in v.pods))
    if updated >= want and available >= want and old == 0:
        return Verdict("ready", "Ready", f"{label}: {what}")
    if updated < want:
        what += f", {updated}/{want} updated"
    if old:
        what += f", {_plural(old, 'old replica')} pending termination"
    return _with_replica_failure(label, obj, _progressing(label, what, current, now, rules), now, rules)


def _statefulset(obj: Obj, pods: list[Obj], now: datetime, rules: Rules) -> Verdict:
    label, spec, st = f"StatefulSet {_name(obj)}", _spec(obj), _status(obj)
    want = _int(spec.get("replicas"), 1)
    ready, updated = _int(st.get("readyReplicas")), _int(st.get("updatedReplicas"))
    what = f"{ready}/{want} replicas ready"
    stale = _unobserved(obj)
    if stale:
        return Verdict("progressing", "Progressing", f"{label}: {stale}")
    strategy = spec.get("updateStrategy") or {}
    rolled = True
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":  # OnDelete has no rollout to wait for
        partition = _int((strategy.get("rollingUpdate") or {}).get("partition"))
        if partition > 0:
            # Ordinals below the partition stay on the old revision on purpose (a canary).
            rolled = updated >= want - partition
            if not rolled:
                what += f", {updated}/{want - partition} updated above partition {partition}"
        else:
            # currentRevision catches up with updateRevision in the same status write that
            # reports all replicas updated, except with zero replicas; count updated pods too.
            rolled = st.get("currentRevision") == st.get("updateRevision") or updated >= want
            if not rolled:
                what += f", {updated}/{want} updated to revision {st.get('updateRevision')}"
    if ready >= want and rolled:
        return Verdict("ready", "Ready", f"{label}: {what}")
    return _progressing(label, what, pods, now, rules)


def _daemonset(obj: Obj, pods: list[Obj], now: datetime, rules: Rules) -> Verdict:
    label, spec, st = f"DaemonSet {_name(obj)}", _spec(obj), _status(obj)
    desired, ready = _int(st.get("desiredNumberScheduled")), _int(st.get("numberReady"))
    updated, unavailable = _int(st.get("updatedNumberScheduled"), desired), _int(st.get("numberUnavailable"))
    what = f"{ready}/{desired} pods ready"
    stale = _unobserved(obj)
    if stale:
        return Verdict("progressing", "Progressing", f"{label}: {stale}")
    rolling = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"
    if rolling and updated < desired:
        what += f", {updated}/{desired} updated"
    elif ready >= desired and unavailable == 0:
        return Verdict("ready", "Ready", f"{label}: {what}")
    return _progressing(label, what, pods, now, rules)


def _replicaset(obj: Obj, pods: list[Obj], now: datetime, rules: Rules) -> Verdict:
    label, st = f"ReplicaSet {_name(obj)}", _status(obj)
    want, available = _int(_spec(obj).get("replicas"), 1), _int(st.get("availableReplicas"))
    what = f"{available}/{want} replicas available"
    stale = _unobserved(obj)
    if stale:
        return Verdict("progressing", "Progressing", f"{label}: {stale}")
    if available >= want:
        return Verdict("ready", "Ready", f"{label}: {what}")
    return _with_replica_failure(label, obj, _progressing(label, what, pods, now, rules), now, rules)


def _job(obj: Obj, pods: list[Obj], now: datetime, rules: Rules) -> Verdict:
    label, st = f"Job {_name(obj)}", _status(obj)
    # FailureTarget/SuccessCriteriaMet come first on recent clusters; Failed/Complete follow once pods stop.
    for cond_type in ("Failed", "FailureTarget"):
        cond = _cond(obj, cond_type)
        if _true(cond):
            assert cond is not None
            return _failed_job(label, cond, pods)
    for cond_type in ("Complete", "SuccessCriteriaMet"):
        if _true(_cond(obj, cond_type)):
            return Verdict("ready", "Complete", f"{label} completed ({_int(st.get('succeeded'))} succeeded)")
    if _spec(obj).get("suspend"):
        return Verdict("progressing", "Suspended", f"{label} is suspended; it starts when spec.suspend is false")
    completions = _int(_spec(obj).get("completions"), 1)
    what = f"{_int(st.get('succeeded'))}/{completions} completions, {_int(st.get('active'))} active"
    if _int(st.get("failed")):
        what += f", {_int(st.get('failed'))} failed"
    return _progressing(label, what, pods, now, rules, job=True)


def _failed_job(label: str, cond: Obj, pods: list[Obj]) -> Verdict:
    """BackoffLimitExceeded, DeadlineExceeded, PodFailurePolicy...: name the last failed pods for their logs."""
    reason = cond.get("reason") or "Failed"
    msg = f"{label} failed: {reason}" + (f" ({cond['message']})" if cond.get("message") else "")
    failed = [p for p in pods if _status(p).get("phase") == "Failed"]
    failed.sort(key=lambda p: parse_time(_meta(p).get("creationTimestamp")) or datetime.min.replace(tzinfo=timezone.utc))
    if failed:
        msg += f"; {_failed_pod(failed[-1]).message}"
    names = tuple(_name(p) for p in (failed or pods))
    return Verdict("failed", reason, msg, names[-3:])


def _service(obj: Obj, pods: list[Obj], now: datetime, rules: Rules) -> Verdict:
    label, spec = f"Service {_name(obj)}", _spec(obj)
    kind = spec.get("type") or "ClusterIP"
    if kind == "ExternalName":  # a DNS alias: nothing in the cluster to wait for
        return Verdict("ready", "Ready", f"{label} is an alias of {spec.get('externalName', '?')}")
    if not spec.get("clusterIP"):
        return Verdict("progressing", "Pending", f"{label}: waiting for a cluster IP")
    if kind == "LoadBalancer" and rules.require_load_balancer_address:
        has_address = bool(spec.get("externalIPs")) or bool((_status(obj).get("loadBalancer") or {}).get("ingress"))
        if not has_address:
            return _no_load_balancer_address(obj, label, now, rules)
    return Verdict("ready", "Ready", f"{label} is ready ({kind})")


NO_LOAD_BALANCER = "NoLoadBalancerAddress"


def _no_load_balancer_address(obj: Obj, label: str, now: datetime, rules: Rules) -> Verdict:
    """Waiting for an address is normal for a few seconds; past `Rules.load_balancer_grace` nothing is coming."""
    created = parse_time(_meta(obj).get("creationTimestamp"))
    if not _past(created, now, rules.load_balancer_grace):
        return Verdict("progressing", "Pending", f"{label}: waiting for a load-balancer controller to set an address")
    return Verdict(
        "failed",
        NO_LOAD_BALANCER,
        f"{label} (type LoadBalancer) has no address after {_seconds(rules.load_balancer_grace)}: no load-balancer "
        "controller has set one in status.loadBalancer.ingress; use a ClusterIP Service for the component's "
        "`expose:`, or install a load-balancer controller",
    )


def _pvc(obj: Obj, pods: list[Obj], now: datetime, rules: Rules) -> Verdict:
    label = f"PersistentVolumeClaim {_name(obj)}"
    phase = _status(obj).get("phase") or "Pending"
    if phase == "Bound":
        return Verdict("ready", "Bound", f"{label} is bound")
    if phase == "Lost":
        return Verdict("failed", "Lost", f"{label} lost its volume {_spec(obj).get('volumeName', '')}".rstrip())
    # Why it waits (no such class, no provisioner, a class that binds on first use) is only told
    # by the claim's events: see `explain`.
    cls = _spec(obj).get("storageClassName")
    of = f"storage class {cls}" if cls else "no storage class"
    return Verdict("progressing", phase, f"{label} is {phase.lower()} ({of}; waiting for a volume, or for a pod that uses it)")


def _ingress(obj: Obj, pods: list[Obj], now: datetime, rules: Rules) -> Verdict:
    label = f"Ingress {_name(obj)}"
    if rules.require_ingress_address and not (_status(obj).get("loadBalancer") or {}).get("ingress"):
        return Verdict("progressing", "Pending", f"{label}: waiting for an address from the ingress controller")
    return Verdict("ready", "Ready", f"{label} is ready")


def _cronjob(obj: Obj, pods: list[Obj], now: datetime, rules: Rules) -> Verdict:
    # Its Jobs run on a schedule, maybe long after the environment is up: nothing to wait for now.
    return Verdict("ready", "Ready", f"CronJob {_name(obj)} is scheduled ({_spec(obj).get('schedule', '?')})")


_Rule = Callable[[Obj, list[Obj], datetime, Rules], Verdict]

_RULES: dict[str, _Rule] = {
    "Deployment": _deployment,
    "StatefulSet": _statefulset,
    "DaemonSet": _daemonset,
    "ReplicaSet": _replicaset,
    "Job": _job,
    "Service": _service,
    "PersistentVolumeClaim": _pvc,
    "Ingress": _ingress,
    "CronJob": _cronjob,
}


def assess(obj: Obj, pods: list[Obj], *, now: datetime, rules: Rules = Rules()) -> Verdict:
    """Judge one object by its kind; `pods` are its pods (see pods_of), only consulted while it is not done."""
    kind = obj.get("kind") or ""
    now = _aware(now)
    if kind == "Pod":
        return assess_pod(obj, now=now, rules=rules)
    rule = _RULES.get(kind)
    if rule is None:
        return Verdict("ready", "NoReadinessRule", f"{kind or 'object'} {_name(obj)}: no readiness rule; assumed ready")
    # Pods on their way out say nothing about the workload that replaces them.
    live = [p for p in pods if not _deleting(p)]
    verdict = rule(obj, live, now, rules)
    if verdict.reason == "Ready" and kind in _KEEPS_PODS_RUNNING:  # not Paused: that one is not awaited at all
        return _confirmed_by_pods(verdict, f"{kind} {_name(obj)}", live, now, rules)
    return verdict


# Workloads whose pods run until replaced: their status lags the pods, which have the last word.
_KEEPS_PODS_RUNNING = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"})


def _confirmed_by_pods(verdict: Verdict, label: str, pods: list[Obj], now: datetime, rules: Rules) -> Verdict:
    """A ready workload whose pods disagree: a pod failed since the controller last counted, or only
    just became ready (see Rules.settle)."""
    verdicts = [assess_pod(p, now=now, rules=rules) for p in pods]
    failures = [v for v in verdicts if v.state == "failed"]
    if failures:
        return _failed_workload(label, verdict.message.removeprefix(f"{label}: "), failures)
    settling = [v for v in verdicts if v.reason == "Settling"]
    if settling:
        return Verdict("progressing", "Settling", f"{verdict.message}; {settling[0].message}", settling[0].pods)
    # A container that stopped after the controller counted its pod available (it exited, or was
    # OOM-killed, and is restarting): the count is stale until the controller sees it.
    stopped = [v for p, v in zip(pods, verdicts) if v.state == "progressing" and not _deleting(p)]
    if stopped:
        return Verdict("progressing", stopped[0].reason, f"{verdict.message}; {stopped[0].message}", stopped[0].pods)
    return verdict


def _seconds(t: timedelta) -> str:
    return f"{t.total_seconds():g}s"


# --- what the kubelet and controllers said ------------------------------------------------------


def event_time(event: Obj) -> datetime | None:
    """When an event last happened: a repeated event moves lastTimestamp (core/v1) or series (events/v1)."""
    series = event.get("series") or {}
    times = [
        parse_time(t)
        for t in (series.get("lastObservedTime"), event.get("lastTimestamp"), event.get("eventTime"), event.get("firstTimestamp"))
    ]
    known = [t for t in times if t is not None]
    return max(known) if known else parse_time(_meta(event).get("creationTimestamp"))


def _events_of(events: Iterable[Obj], kind: str, names: Iterable[str]) -> list[Obj]:
    wanted = set(names)
    found = [e for e in events if (e.get("involvedObject") or {}).get("kind") == kind and (e.get("involvedObject") or {}).get("name") in wanted]
    return sorted(found, key=lambda e: event_time(e) or datetime.min.replace(tzinfo=timezone.utc))


# Reasons the PersistentVolume controller gives a waiting claim, in plain words.
_CLAIM_WAITS = {
    "ProvisioningFailed": "cannot be provisioned",
    "ExternalProvisioning": "is waiting for a provisioner that has not answered",
    "WaitForFirstConsumer": "binds only once a pod that uses it is scheduled",
    "WaitForPodScheduled": "waits for its pod to be scheduled",
    "FailedBinding": "has no volume to bind to",
}
# Pod waits whose generic status the events explain (a volume that cannot mount, a sandbox that fails).
_EXPLAINED_BY_EVENTS = frozenset({"ContainerCreating", "PodInitializing", "Pending", "Progressing", "Timeout"})


def explain(v: Verdict, obj: Obj, events: list[Obj]) -> Verdict:
    """The verdict with what the kubelet or a controller said, when the object's status does not say it.

    A failing readiness probe leaves only `ready: false` in the pod; the probe's own failure is in
    the kubelet's Unhealthy events. A claim's status says Pending, never why; the PersistentVolume
    controller says it in events (no such StorageClass, a provisioner that never answers). Takes
    the latest matching event, one line, cut short; events are otherwise shown as they are.
    """
    if v.state == "ready":
        return v
    if obj.get("kind") == "PersistentVolumeClaim":
        said = [e for e in _events_of(events, "PersistentVolumeClaim", [_name(obj)]) if e.get("message")]
        if not said:
            return v
        # A Warning (ProvisioningFailed) says more than the Normal "still waiting" that may follow it.
        last = ([e for e in said if e.get("type") == "Warning"] or said)[-1]
        reason = str(last.get("reason") or v.reason)
        words = _CLAIM_WAITS.get(reason, f"is {str(_status(obj).get('phase') or 'pending').lower()}")
        msg = f"PersistentVolumeClaim {_name(obj)} {words}: {reason}: {_cut(str(last['message']))}"
        return Verdict(v.state, reason, _keep_prefix(v.message, msg), v.pods)
    pod_events = _events_of(events, "Pod", v.pods)
    if v.reason == "NotReady":
        probes = [e for e in pod_events if e.get("reason") == "Unhealthy" and e.get("message")]
        if probes:
            quote = _cut(str(probes[-1]["message"]))
            return Verdict(v.state, v.reason, f"{v.message.replace(' (readiness probe failing?)', '')}: {quote}", v.pods)
    elif v.reason in _EXPLAINED_BY_EVENTS:
        warnings = [e for e in pod_events if e.get("type") == "Warning" and e.get("message")]
        if warnings:
            last = warnings[-1]
            return Verdict(v.state, v.reason, f"{v.message}; {last.get('reason')}: {_cut(str(last['message']))}", v.pods)
    return v


def _keep_prefix(old: str, new: str) -> str:
    """Keep a "not ready within 5m: " the caller put before the claim's own message."""
    head, sep, _ = old.partition("PersistentVolumeClaim ")
    return f"{head}{new}" if sep else new


# --- which logs explain a pod -------------------------------------------------------------------


@dataclass(frozen=True)
class LogSource:
    """One container's log worth showing."""

    pod: str
    container: str
    previous: bool
    """Read the instance before the current one (`kubectl logs --previous`).

    A restarted container that runs again, or waits to, has a new current instance; the error was
    printed by the one that crashed, which the kubelet keeps as the previous instance. Right after
    a crash (state terminated) the crashed instance is the current one."""
    init: bool = False


def log_sources(pod: Obj, limit: int = 2) -> list[LogSource]:
    """The containers of a pod whose last lines explain its state, most telling first.

    Containers that ended badly (or restarted) come first, then containers running but not ready
    (a readiness probe failing). Containers that never ran (image pulls, PodInitializing) have no
    logs, and healthy ones explain nothing.
    """
    st = _status(pod)
    crashed: list[LogSource] = []
    unready: list[LogSource] = []
    for init, key in ((True, "initContainerStatuses"), (False, "containerStatuses")):
        for cs in st.get(key) or []:
            name = str(cs.get("name") or "")
            state = cs.get("state") or {}
            last = (cs.get("lastState") or {}).get("terminated")
            restarts = _int(cs.get("restartCount"))
            ended = (state.get("terminated") or {})
            if ended and (restarts > 0 or _int(ended.get("exitCode")) != 0):
                # The instance that just ended is the current one, and the kubelet keeps one dead
                # instance per container: the one before it is usually gone already.
                crashed.append(LogSource(_name(pod), name, previous=False, init=init))
            elif restarts > 0 and last:
                crashed.append(LogSource(_name(pod), name, previous=True, init=init))
            elif "running" in state and not cs.get("ready") and not init:
                unready.append(LogSource(_name(pod), name, previous=False, init=init))
    return (crashed + unready)[:limit]
