"""Suspend and resume, decided: which workloads to scale to zero, what to record so they come back
as they were, and how an environment's namespace says it is suspended or idle.

Pure functions over objects in API JSON shape; envci/stages/suspend.py reads and patches the
cluster with what they decide.

The record is kept on each workload, not in one list elsewhere: a patch that scales a workload
also annotates it, in one write, so no moment exists where a workload is scaled down and nobody
knows to what it must return. A suspend or resume cut off half-way is finished by running it again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from envci.durations import format_duration
from envci.errors import NotReadyError
from envci.namespace import A, LAST_ACTIVITY, SUSPENDED_AT, rfc3339
from envci.timestamps import parse_time

Obj = dict[str, Any]

SUSPENDED_REPLICAS = A + "suspended-replicas"
"""On a Deployment, StatefulSet or ReplicaSet that suspend scaled to zero: its replicas before."""
SUSPENDED_CRONJOB = A + "suspended-cronjob"
"""On a CronJob that suspend set `spec.suspend: true` on ("true"); one suspended before is left alone."""

SCALED_KINDS: tuple[tuple[str, str], ...] = (
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "ReplicaSet"),
    ("batch/v1", "CronJob"),
)
"""What suspend changes and resume restores."""
RUNNING_KINDS: tuple[tuple[str, str], ...] = (
    ("apps/v1", "DaemonSet"),
    ("batch/v1", "Job"),
    ("v1", "Pod"),
)
"""What suspend cannot stop without deleting it; read only to say what keeps running."""

State = Literal["active", "suspended", "terminating"]


@dataclass(frozen=True)
class Change:
    """One workload's patch, and what it does in words."""

    api_version: str
    kind: str
    name: str
    patch: Obj
    action: str
    """For people: "scaled 2 -> 0", "schedule suspended", ..."""
    replicas: int | None = None
    """The replicas recorded (suspend) or restored (resume); None for a CronJob."""

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"workload": self.ref, "action": self.action}
        if self.replicas is not None:
            out["replicas"] = self.replicas
        return out


@dataclass(frozen=True)
class Plan:
    changes: list[Change] = field(default_factory=list)
    left_running: list[dict[str, str]] = field(default_factory=list)
    """{"workload", "reason"}: what keeps its pods, and why envci does not stop it."""
    skipped: list[dict[str, str]] = field(default_factory=list)
    """{"workload", "reason"}: records resume cannot use (edited by hand), left as they are."""


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _annotations(obj: Obj) -> dict[str, str]:
    return _meta(obj).get("annotations") or {}


def _ref(obj: Obj) -> str:
    return f"{obj.get('kind')}/{_meta(obj).get('name')}"


def _replicas(obj: Obj) -> int:
    """spec.replicas as the API server defaults it: absent means 1."""
    value = (obj.get("spec") or {}).get("replicas")
    return value if isinstance(value, int) and not isinstance(value, bool) else 1


def _controlled(obj: Obj) -> bool:
    return any(isinstance(r, dict) and r.get("controller") for r in _meta(obj).get("ownerReferences") or [])


def _api_version(obj: Obj, default: str) -> str:
    return str(obj.get("apiVersion") or default)


def plan_suspend(objects: list[Obj]) -> Plan:
    """What suspending takes: each running Deployment, StatefulSet and ReplicaSet of its own to zero
    with its replicas recorded, each active CronJob suspended; and what keeps running, and why.

    A workload at zero with a record is suspended already: it is left as it is, so a second suspend
    changes nothing. One at zero without a record was at zero before: resume leaves it there.
    A ReplicaSet with a controller (a Deployment's) follows its owner, which is scaled instead.
    A StatefulSet whose claims go when it is scaled down (`whenScaled: Delete`) is left running:
    suspend promises to keep data."""
    plan = Plan()
    for obj in objects:
        kind, name = obj.get("kind"), str(_meta(obj).get("name"))
        spec = obj.get("spec") or {}
        if kind in ("Deployment", "StatefulSet", "ReplicaSet"):
            if kind == "ReplicaSet" and _controlled(obj):
                continue
            replicas = _replicas(obj)
            if replicas == 0:
                continue
            policy = (spec.get("persistentVolumeClaimRetentionPolicy") or {}).get("whenScaled")
            if kind == "StatefulSet" and policy == "Delete":
                plan.left_running.append({
                    "workload": _ref(obj),
                    "reason": "its persistentVolumeClaimRetentionPolicy.whenScaled is Delete: scaling it down would delete its volumes",
                })
                continue
            patch = {"metadata": {"annotations": {SUSPENDED_REPLICAS: str(replicas)}}, "spec": {"replicas": 0}}
            plan.changes.append(Change(_api_version(obj, "apps/v1"), str(kind), name, patch, f"scaled {replicas} -> 0", replicas))
        elif kind == "CronJob":
            if spec.get("suspend") is True:
                continue  # suspended by envci already (recorded), or by someone else (not ours to resume)
            patch = {"metadata": {"annotations": {SUSPENDED_CRONJOB: "true"}}, "spec": {"suspend": True}}
            plan.changes.append(Change(_api_version(obj, "batch/v1"), "CronJob", name, patch, "schedule suspended"))
        elif kind == "DaemonSet":
            plan.left_running.append({"workload": _ref(obj), "reason": "a DaemonSet cannot be scaled; it runs a pod on every node"})
        elif kind == "Job":
            if int((obj.get("status") or {}).get("active") or 0) > 0:
                plan.left_running.append({"workload": _ref(obj), "reason": "a running Job is left to finish"})
        elif kind == "Pod":
            phase = (obj.get("status") or {}).get("phase")
            if not _controlled(obj) and phase in ("Pending", "Running"):
                plan.left_running.append({"workload": _ref(obj), "reason": "a pod of no workload would not come back if deleted"})
    return plan


def plan_resume(objects: list[Obj]) -> Plan:
    """What resuming takes: every workload with suspend's record back to its recorded replicas (a
    CronJob's schedule back on), the record removed in the same patch.

    A workload someone scaled up meanwhile (a provision, a person) keeps its replicas: only the
    record goes. A record that is not a number is reported and left in place for a person.

    A ReplicaSet with a controller is skipped as suspend skips it: the Deployment controller copies
    its Deployment's annotations, the record included, onto its ReplicaSets (old revisions too), and
    scaling those would fight the Deployment's own rollout."""
    plan = Plan()
    for obj in objects:
        kind, name = str(obj.get("kind")), str(_meta(obj).get("name"))
        ann = _annotations(obj)
        if kind == "ReplicaSet" and _controlled(obj):
            continue
        if kind in ("Deployment", "StatefulSet", "ReplicaSet") and SUSPENDED_REPLICAS in ann:
            raw = ann[SUSPENDED_REPLICAS]
            try:
                recorded = int(raw)
                if recorded < 0:
                    raise ValueError(raw)
            except ValueError:
                plan.skipped.append({"workload": _ref(obj), "reason": f"{SUSPENDED_REPLICAS} is {raw!r}, not a number of replicas"})
                continue
            current = _replicas(obj)
            unmark: Obj = {"metadata": {"annotations": {SUSPENDED_REPLICAS: None}}}
            if current != 0:
                plan.changes.append(Change(_api_version(obj, "apps/v1"), kind, name, unmark, f"kept at {current} (scaled meanwhile)", current))
            else:
                patch = {**unmark, "spec": {"replicas": recorded}}
                plan.changes.append(Change(_api_version(obj, "apps/v1"), kind, name, patch, f"scaled 0 -> {recorded}", recorded))
        elif kind == "CronJob" and SUSPENDED_CRONJOB in ann:
            patch = {"metadata": {"annotations": {SUSPENDED_CRONJOB: None}}, "spec": {"suspend": False}}
            plan.changes.append(Change(_api_version(obj, "batch/v1"), "CronJob", name, patch, "schedule resumed"))
    return plan


def suspended_at(ns: Obj) -> str | None:
    """When the environment was suspended, as recorded; None when it is not suspended."""
    value = _annotations(ns).get(SUSPENDED_AT)
    return value or None


def refuse_suspended(ns: Obj, name: str) -> None:
    """For the stages that need the environment running (wait-ready, seed, test): a suspended one's
    workloads are at zero replicas, which readiness counts as ready, so say it is suspended instead
    of letting them find nothing running."""
    since = suspended_at(ns)
    if since:
        raise NotReadyError(
            f"environment {name} is suspended (since {since}): its workloads are scaled to zero",
            hint=f"run `envci resume --env {name}` to bring it back (it waits until the environment is ready)",
        )


def state_of(ns: Obj) -> State:
    """Pure: what `envci list` shows. Terminating wins: a suspended environment can be deleted."""
    if _meta(ns).get("deletionTimestamp"):
        return "terminating"
    return "suspended" if suspended_at(ns) else "active"


def last_activity(ns: Obj) -> datetime | None:
    """When a stage last used the environment: `envci.io/last-activity`, else (an environment made
    before envci recorded it) `envci.io/created-at`, else the namespace's creation. None when none
    can be read: then idleness is unknown, and the janitor never suspends on a guess."""
    ann = _annotations(ns)
    for value in (ann.get(LAST_ACTIVITY), ann.get(A + "created-at"), _meta(ns).get("creationTimestamp")):
        found = parse_time(value)
        if found is not None:
            return found
    return None


def suspend_reason(ns: Obj, now: datetime, after: timedelta) -> str | None:
    """Pure: why the janitor should suspend this environment (idle for `after` or longer), or None.

    Only an active one qualifies: a suspended one is suspended already, a terminating one is going.
    Expiry is decided first, by `reap_reason`: an expired environment is deleted, not suspended."""
    if state_of(ns) != "active":
        return None
    last = last_activity(ns)
    if last is None or now - last < after:
        return None
    return f"idle since {rfc3339(last)} (over {format_duration(after)})"
