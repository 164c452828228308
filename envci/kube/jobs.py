"""Run a Kubernetes Job to completion: create it, watch it, and explain how it ended.

Seed steps (`job:`) and test suites (`job:`) both run work inside the environment this way. The
decisions are pure (`job_object` builds the manifest, `outcome` reads a Job's conditions,
`pod_failure` reads a pod's container states) and unit-tested; `run_job` is the I/O shell: it
creates the Job, waits on a watch (no sleep loop), and returns a `JobResult` with the reason the
Job controller gave (BackoffLimitExceeded, DeadlineExceeded, ...) and the last log lines of its pods.

A Job's spec is immutable, so re-running one means deleting the old Job first. `run_job` keeps a
hash of the spec in an annotation: with `reuse_succeeded=True` a Job that already succeeded with
the same spec is not run again (the guard that makes a seed re-run harmless).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from envci.errors import InfrastructureError
from envci.kube.client import Kube
from envci.redact import redact

SPEC_HASH_ANNOTATION = "envci.io/spec-hash"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
State = Literal["running", "succeeded", "failed"]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class JobOutcome:
    state: State
    reason: str = ""
    message: str = ""


@dataclass
class JobResult:
    """How a Job ended. `logs` maps pod name to its last log lines (already redacted)."""

    name: str
    namespace: str
    state: State
    reason: str
    message: str
    pods: list[str] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    reused: bool = False
    """True when an earlier Job with the same spec had already succeeded and was not run again."""

    @property
    def succeeded(self) -> bool:
        return self.state == "succeeded"

    def describe(self) -> str:
        """A multi-line explanation for an error message: reason, message, each pod's log tail."""
        head = f"Job {self.namespace}/{self.name} {self.state}"
        if self.reason:
            head += f": {self.reason}"
        if self.message:
            head += f": {self.message}"
        lines = [head]
        for pod, text in self.logs.items():
            lines.append(f"  last log lines of pod {pod}:")
            lines += [f"    | {line}" for line in (text.rstrip().splitlines() or ["(empty)"])]
        return redact("\n".join(lines))

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.name,
            "state": self.state,
            "reason": self.reason,
            "message": redact(self.message),
            "pods": self.pods,
            "seconds": round(self.seconds, 2),
            "reused": self.reused,
        }


# --- pure ---------------------------------------------------------------------------------------


def env_secret_name(job_name: str) -> str:
    """The Secret holding a Job's secret env values: one per Job, so re-runs overwrite it."""
    return f"{job_name}-env"


_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def secret_key(env_name: str) -> str:
    """Pure: the Secret key for an env var: its own name when that is a valid key (it nearly
    always is), otherwise a stable digest of it."""
    if _SECRET_KEY.match(env_name) and len(env_name) <= 253:
        return env_name
    return "env-" + hashlib.sha256(env_name.encode()).hexdigest()[:16]


def split_env(env: Mapping[str, str], secret_names: Iterable[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Pure: (plain values, values that hold a secret). A value that read any secret while it was
    rendered is a secret as a whole ("Bearer <token>", a URL with a password)."""
    secret = set(secret_names)
    return {k: v for k, v in env.items() if k not in secret}, {k: v for k, v in env.items() if k in secret}


def env_secret_object(name: str, values: Mapping[str, str], labels: Mapping[str, str]) -> dict[str, Any]:
    """Pure: the v1 Secret that hands a Job its secret env values.

    It lives in the environment's namespace with envci's labels, so teardown and the janitor
    remove it with the environment; values go base64-encoded in `data`, as the API stores them."""
    data = {secret_key(k): base64.b64encode(v.encode()).decode() for k, v in sorted(values.items())}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "labels": {"envci.io/managed": "true", "app.kubernetes.io/managed-by": "envci", **labels}},
        "data": data,
    }


def job_object(
    name: str,
    *,
    image: str,
    command: list[str] | None = None,
    args: list[str] | None = None,
    env: dict[str, str] | None = None,
    secret_env: Mapping[str, str] | None = None,
    labels: dict[str, str] | None = None,
    pod_labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    backoff_limit: int = 0,
    deadline_seconds: int | None = None,
    service_account: str | None = None,
    container: str = "main",
) -> dict[str, Any]:
    """A batch/v1 Job manifest (camelCase dict) running one container that is never restarted in place.

    `restartPolicy: Never` leaves each failed attempt as its own pod, so its logs and exit code
    survive for the report; `backoff_limit` says how many attempts after the first. `secret_env`
    maps env names to the Secret holding their values (under `secret_key(name)`): the Job's spec
    then holds a reference, never the value.
    """
    c: dict[str, Any] = {"name": container, "image": image}
    if command:
        c["command"] = list(command)
    if args:
        c["args"] = list(args)
    entries: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in (env or {}).items() if k not in (secret_env or {})]
    entries += [{"name": k, "valueFrom": {"secretKeyRef": {"name": ref, "key": secret_key(k)}}} for k, ref in (secret_env or {}).items()]
    if entries:
        c["env"] = sorted(entries, key=lambda e: str(e["name"]))
    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [c]}
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    spec: dict[str, Any] = {
        "backoffLimit": backoff_limit,
        "template": {"metadata": {"labels": dict(pod_labels or {})}, "spec": pod_spec},
    }
    if deadline_seconds:
        spec["activeDeadlineSeconds"] = int(deadline_seconds)
    meta: dict[str, Any] = {"name": name, "labels": dict(labels or {}), "annotations": dict(annotations or {})}
    obj = {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec}
    meta["annotations"][SPEC_HASH_ANNOTATION] = spec_hash(obj)
    return obj


def spec_hash(obj: dict[str, Any]) -> str:
    """Identifies what a Job runs (its spec and labels), not when or where it ran."""
    meta = obj.get("metadata") or {}
    basis = {"spec": obj.get("spec"), "labels": meta.get("labels") or {}}
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:16]


def _true(conditions: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    return next((c for c in conditions if c.get("type") == kind and c.get("status") == "True"), None)


def outcome(job: dict[str, Any]) -> JobOutcome:
    """Pure: running, succeeded or failed (with the controller's reason) from a Job's status.

    `FailureTarget`/`SuccessCriteriaMet` (Kubernetes 1.31+) come before the terminal condition while
    pods are still being cleaned up; they already decide the outcome, so we do not wait longer.
    """
    status = job.get("status") or {}
    conditions = status.get("conditions") or []
    for kind in ("Failed", "FailureTarget"):
        c = _true(conditions, kind)
        if c:
            return JobOutcome("failed", c.get("reason") or "Failed", c.get("message") or "")
    for kind in ("Complete", "SuccessCriteriaMet"):
        c = _true(conditions, kind)
        if c:
            return JobOutcome("succeeded", c.get("reason") or "Complete", c.get("message") or "")
    return JobOutcome("running", "", f"{status.get('active') or 0} active, {status.get('failed') or 0} failed")


def pod_failure(pod: dict[str, Any]) -> str:
    """Pure: why a pod's container ended badly ("main: Error, exit code 1"), or ""."""
    parts = []
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        term = (cs.get("state") or {}).get("terminated") or {}
        if term and term.get("exitCode", 0) != 0:
            text = f"{cs.get('name')}: {term.get('reason') or 'terminated'}, exit code {term.get('exitCode')}"
            if term.get("message"):
                text += f" ({term['message'].strip()[:200]})"
            parts.append(text)
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in ("ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError", "InvalidImageName"):
            parts.append(f"{cs.get('name')}: {waiting['reason']}: {(waiting.get('message') or '').strip()[:200]}")
    return "; ".join(parts)


def pods_of_job(job: dict[str, Any], pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pure: the pods this Job owns (by owner uid, so pods of an earlier Job of the same name are
    ignored), oldest first."""
    uid = (job.get("metadata") or {}).get("uid")
    owned = [p for p in pods if any(o.get("uid") == uid for o in (p.get("metadata") or {}).get("ownerReferences") or [])]
    return sorted(owned, key=lambda p: ((p.get("metadata") or {}).get("creationTimestamp") or "", p["metadata"]["name"]))


# --- I/O ----------------------------------------------------------------------------------------


def wait_job(kube: Kube, namespace: str, name: str, *, deadline: float, clock: Callable[[], float] = time.monotonic) -> tuple[dict[str, Any] | None, JobOutcome]:
    """Watch the Job until it succeeds or fails, or `deadline` (monotonic) passes.

    Returns the last seen Job and its outcome; "running" means the deadline passed first, and a
    None Job means it was deleted while we waited.
    """
    job = kube.get("batch/v1", "Job", name, namespace)
    while True:
        if job is None:
            return None, JobOutcome("failed", "Deleted", "the Job was deleted while envci waited for it")
        result = outcome(job)
        left = deadline - clock()
        if result.state != "running" or left <= 0:
            return job, result
        rv = (job.get("metadata") or {}).get("resourceVersion")
        for event in kube.watch("Job", namespace, name=name, resource_version=rv, seconds=min(left, 30)):
            if event.type == "DELETED":
                job = None
                break
            if event.type in ("ADDED", "MODIFIED"):
                job = event.object
                if outcome(job).state != "running":
                    break
        else:
            # The watch ended (server timeout, dropped, resourceVersion expired): it may have
            # missed a change, so read the Job again before watching on.
            job = kube.get("batch/v1", "Job", name, namespace)


def delete_job(kube: Kube, namespace: str, name: str, *, timeout: float = 60, clock: Callable[[], float] = time.monotonic) -> None:
    """Delete a Job and wait until its name is free (pods go in the background)."""
    if not kube.delete("batch/v1", "Job", name, namespace):
        return
    deadline = clock() + timeout
    while kube.get("batch/v1", "Job", name, namespace) is not None:
        left = deadline - clock()
        if left <= 0:
            raise InfrastructureError(
                f"Job {namespace}/{name} was not deleted within {timeout:.0f}s",
                hint=f"check its finalizers: kubectl get job -n {namespace} {name} -o yaml",
            )
        try:
            for event in kube.watch("Job", namespace, name=name, seconds=min(left, 5)):
                if event.type == "DELETED":
                    break
        except InfrastructureError:
            pass  # re-checked by the loop condition


def job_logs(kube: Kube, namespace: str, job: dict[str, Any], *, lines: int = 20, max_pods: int = 2) -> tuple[list[str], dict[str, str], str]:
    """The Job's pods, the log tails of the last `max_pods` of them, and why they failed."""
    pods = pods_of_job(job, kube.list("v1", "Pod", namespace, label_selector=f"{JOB_NAME_LABEL}={job['metadata']['name']}"))
    names = [p["metadata"]["name"] for p in pods]
    logs = {n: kube.log_tail(namespace, n, lines=lines) for n in names[-max_pods:]}
    failures = "; ".join(f"pod {p['metadata']['name']}: {f}" for p in pods[-max_pods:] if (f := pod_failure(p)))
    return names, logs, failures


def run_job(
    kube: Kube,
    namespace: str,
    obj: dict[str, Any],
    *,
    timeout: float,
    reuse_succeeded: bool = False,
    log_lines: int = 20,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.monotonic,
    secret: dict[str, Any] | None = None,
) -> JobResult:
    """Create the Job (replacing an earlier one of the same name), wait for it, and report.

    `secret` (from env_secret_object) is applied just before the Job is created, so its pods find
    their secret env values. Never raises for a failed Job: the caller decides what a failure
    means (a seed step stops the stage, a test suite counts as failed). Raises
    InfrastructureError when the API fails.
    """
    say = progress or (lambda _m: None)
    name = obj["metadata"]["name"]
    annotations = obj["metadata"].setdefault("annotations", {})
    want = annotations.setdefault(SPEC_HASH_ANNOTATION, spec_hash(obj))
    start = clock()
    existing = kube.get("batch/v1", "Job", name, namespace)
    if existing is not None:
        have = ((existing.get("metadata") or {}).get("annotations") or {}).get(SPEC_HASH_ANNOTATION)
        if reuse_succeeded and have == want and outcome(existing).state == "succeeded":
            say(f"Job {name} already succeeded with the same spec; not running it again")
            return JobResult(name, namespace, "succeeded", "AlreadySucceeded", "", reused=True)
        say(f"replacing the earlier Job {name}")
        delete_job(kube, namespace, name, timeout=max(10.0, min(60.0, timeout)), clock=clock)
    if secret is not None:
        kube.apply(secret, namespace)
    kube.apply(obj, namespace)
    say(f"Job {name} created; waiting up to {timeout:.0f}s")
    job, result = wait_job(kube, namespace, name, deadline=start + timeout, clock=clock)
    elapsed = clock() - start
    if job is None:
        return JobResult(name, namespace, "failed", result.reason, result.message, seconds=elapsed)
    state, reason, message = result.state, result.reason, result.message
    if state == "running":
        state, reason, message = "failed", "Timeout", f"not finished within {timeout:.0f}s ({result.message})"
    pods, logs, failures = job_logs(kube, namespace, job, lines=log_lines) if state == "failed" or log_lines else ([], {}, "")
    if failures and state == "failed":
        message = f"{message}; {failures}" if message else failures
    return JobResult(name, namespace, state, reason, redact(message), pods=pods, logs=logs, seconds=elapsed)
