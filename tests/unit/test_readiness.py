"""Readiness rules on object shapes as the API server, kubelet and controllers write them.

The fixtures in tests/data/readiness are whole objects as `kubectl get -o json` prints them; each
test states only what it changes, so the shape under test stays the real one.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from envci.kube.readiness import (
    LogSource,
    Rules,
    Verdict,
    assess,
    assess_pod,
    explain,
    failed_starts,
    log_sources,
    parse_time,
    pods_of,
    worst,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "readiness"
# Fixture pods are created at 10:00:00 and started at 10:00:01.
T0 = datetime(2026, 1, 1, 10, 0, 0, tzinfo=timezone.utc)
NS = "envci-shop-pr-42"


def load(name: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text())
    return obj


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of base with patch merged in; a None value removes the key (as a JSON merge patch)."""
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def fixture(name: str, **patch: Any) -> dict[str, Any]:
    return merge(load(name), patch)


def renamed(pod: dict[str, Any], name: str, replica_set: str | None = None) -> dict[str, Any]:
    out = merge(pod, {"metadata": {"name": name}})
    if replica_set:
        out["metadata"]["ownerReferences"][0]["name"] = replica_set
        out["metadata"]["labels"]["pod-template-hash"] = replica_set.rpartition("-")[2]
    return out


def waiting(reason: str, message: str = "", restarts: int = 0, name: str = "app") -> dict[str, Any]:
    """A container status waiting for `reason`, as the kubelet reports it."""
    state: dict[str, Any] = {"reason": reason}
    if message:
        state["message"] = message
    return {
        "image": "registry.example.com/shop/web:3f9c2ab",
        "imageID": "",
        "lastState": {},
        "name": name,
        "ready": False,
        "restartCount": restarts,
        "started": False,
        "state": {"waiting": state},
    }


def pod_with(container: dict[str, Any], phase: str = "Pending") -> dict[str, Any]:
    pod = load("pod-config-error")
    pod["status"]["containerStatuses"] = [container]
    pod["status"]["phase"] = phase
    return pod


def crashloop(restarts: int) -> dict[str, Any]:
    pod = load("pod-crashloop")
    pod["status"]["containerStatuses"][0]["restartCount"] = restarts
    return pod


# --- pods ---------------------------------------------------------------------------------------


def test_ready_pod() -> None:
    assert assess_pod(load("pod-ready"), now=at(10)) == Verdict("ready", "Ready", "pod web-7c5ddbdf54-x2x9q is ready")


def test_crash_loop_names_pod_container_restarts_and_exit_code() -> None:
    v = assess_pod(load("pod-crashloop"), now=at(200))
    assert v == Verdict(
        "failed",
        "CrashLoopBackOff",
        "pod web-7c5ddbdf54-k8m2p container app is in a crash loop (5 failed starts, last exit code 1)",
        ("web-7c5ddbdf54-k8m2p",),
    )


@pytest.mark.parametrize(
    ("restarts", "threshold", "state"),
    [
        (0, 2, "progressing"),  # waiting after the first crash: one failure may be a start-up race
        (1, 2, "failed"),  # waiting after the second crash: the threshold itself fails
        (3, 5, "progressing"),
        (4, 5, "failed"),
    ],
)
def test_crash_loop_failure_threshold(restarts: int, threshold: int, state: str) -> None:
    v = assess_pod(crashloop(restarts), now=at(200), rules=Rules(crashloop_failures=threshold))
    assert (v.state, v.reason) == (state, "CrashLoopBackOff")


def test_crash_loop_between_back_offs_is_still_a_crash_loop() -> None:
    # Right after a crash the kubelet reports the container terminated, before CrashLoopBackOff.
    pod = load("pod-crashloop")
    cs = pod["status"]["containerStatuses"][0]
    cs["state"] = {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": "2026-01-01T10:03:50Z", "finishedAt": "2026-01-01T10:03:51Z"}}
    v = assess_pod(pod, now=at(240))
    assert v.state == "failed" and v.reason == "CrashLoopBackOff"
    assert "container app is in a crash loop (5 failed starts, last exit code 1)" in v.message


def test_oom_killed_crash_loop_says_oom_killed() -> None:
    v = assess_pod(load("pod-oomkilled"), now=at(120))
    assert v.state == "failed" and v.reason == "OOMKilled"
    assert v.message == (
        "pod web-7c5ddbdf54-q7w4z container app is in a crash loop (4 failed starts, last exit code 137, OOMKilled at memory limit 128Mi)"
    )


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("ImagePullBackOff", 'Back-off pulling image "registry.example.com/shop/web:does-not-exist"'),
        (
            "ErrImagePull",
            (
                'rpc error: code = NotFound desc = failed to pull and unpack image "registry.example.com/shop/web:does-not-exist": '
                'failed to resolve reference "registry.example.com/shop/web:does-not-exist": not found'
            ),
        ),
    ],
)
@pytest.mark.parametrize(
    ("seconds", "grace", "state"),
    [
        (30, 60, "progressing"),  # started at 10:00:01: 29s in
        (60, 60, "progressing"),  # 59s in
        (61, 60, "failed"),  # exactly the grace
        (200, 60, "failed"),
        (200, 300, "progressing"),
    ],
)
def test_image_pull_grace_from_pod_start(reason: str, message: str, seconds: int, grace: int, state: str) -> None:
    pod = load("pod-image-pull-backoff")
    pod["status"]["containerStatuses"][0]["state"]["waiting"] = {"reason": reason, "message": message}
    v = assess_pod(pod, now=at(seconds), rules=Rules(image_pull_grace=timedelta(seconds=grace)))
    assert (v.state, v.reason, v.pods) == (state, reason, ("web-6b9f8d7c45-t5n8r",))
    assert v.message.startswith(
        f"pod web-6b9f8d7c45-t5n8r container app cannot pull image registry.example.com/shop/web:does-not-exist: {reason} ("
    )


@pytest.mark.parametrize(
    ("drop", "seconds", "state"),
    [
        # Without startTime the PodScheduled transition (10:00:00) is the clock.
        (["startTime"], 60, "failed"),
        (["startTime"], 59, "progressing"),
    ],
)
def test_image_pull_grace_falls_back_to_scheduling_time(drop: list[str], seconds: int, state: str) -> None:
    pod = load("pod-image-pull-backoff")
    for key in drop:
        del pod["status"][key]
    assert assess_pod(pod, now=at(seconds)).state == state


def test_image_pull_grace_falls_back_to_creation_time() -> None:
    pod = load("pod-image-pull-backoff")
    del pod["status"]["startTime"]
    pod["status"]["conditions"] = []
    assert assess_pod(pod, now=at(59)).state == "progressing"
    assert assess_pod(pod, now=at(60)).state == "failed"


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("InvalidImageName", 'Failed to apply default image tag "registry.example.com/shop/web:": couldn\'t parse image name'),
        ("ErrImageNeverPull", 'Container image "shop/web:dev" is not present with pull policy of Never'),
        ("RunContainerError", 'failed to create containerd task: exec: "/app/serve": stat /app/serve: no such file or directory'),
    ],
)
def test_states_that_never_heal_fail_at_once(reason: str, message: str) -> None:
    v = assess_pod(pod_with(waiting(reason, message)), now=at(2))
    assert v == Verdict("failed", reason, f"pod web-7c5ddbdf54-m1n2b container app: {reason} ({message})", ("web-7c5ddbdf54-m1n2b",))


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("CreateContainerConfigError", 'secret "shop-db-credentials" not found'),
        ("CreateContainerConfigError", 'couldn\'t find key DATABASE_URL in ConfigMap envci-shop-pr-42/shop-config'),
        ("CreateContainerError", "context deadline exceeded"),
    ],
)
@pytest.mark.parametrize(("seconds", "state"), [(10, "progressing"), (31, "failed")])
def test_container_creation_errors_fail_after_their_grace(reason: str, message: str, seconds: int, state: str) -> None:
    v = assess_pod(pod_with(waiting(reason, message)), now=at(seconds))
    assert (v.state, v.reason) == (state, reason)
    assert v.message == f"pod web-7c5ddbdf54-m1n2b container app cannot be created: {reason} ({message})"


def test_missing_secret_fixture() -> None:
    v = assess_pod(load("pod-config-error"), now=at(45))
    assert v.state == "failed" and v.reason == "CreateContainerConfigError"
    assert 'secret "shop-db-credentials" not found' in v.message


@pytest.mark.parametrize(
    ("seconds", "grace", "state"),
    [(10, 30, "progressing"), (29, 30, "progressing"), (30, 30, "failed"), (100, 300, "progressing")],
)
def test_unschedulable_grace_from_condition_transition(seconds: int, grace: int, state: str) -> None:
    v = assess_pod(load("pod-unschedulable"), now=at(seconds), rules=Rules(unschedulable_grace=timedelta(seconds=grace)))
    assert (v.state, v.reason, v.pods) == (state, "Unschedulable", ("web-7c5ddbdf54-z9v6c",))
    assert v.message.startswith("pod web-7c5ddbdf54-z9v6c cannot be scheduled: 0/3 nodes are available: ")
    assert "2 Insufficient memory" in v.message


def test_scheduling_gated_pod_waits() -> None:
    pod = load("pod-unschedulable")
    cond = pod["status"]["conditions"][0]
    cond.update(reason="SchedulingGated", message="Scheduling is blocked due to non-empty scheduling gates")
    v = assess_pod(pod, now=at(600))
    assert (v.state, v.reason) == ("progressing", "SchedulingGated")


def test_init_container_crash_loop() -> None:
    v = assess_pod(load("pod-init-crashloop"), now=at(60))
    assert v == Verdict(
        "failed",
        "CrashLoopBackOff",
        "pod web-7c5ddbdf54-h3j5k init container migrate is in a crash loop (3 failed starts, last exit code 2)",
        ("web-7c5ddbdf54-h3j5k",),
    )


def test_init_container_failing_between_back_offs() -> None:
    pod = load("pod-init-crashloop")
    init = pod["status"]["initContainerStatuses"][0]
    init["state"] = {"terminated": {"exitCode": 2, "reason": "Error", "startedAt": "2026-01-01T10:01:00Z", "finishedAt": "2026-01-01T10:01:01Z"}}
    v = assess_pod(pod, now=at(62))
    assert v.state == "failed" and "init container migrate is in a crash loop (3 failed starts, last exit code 2)" in v.message


def test_init_container_still_running() -> None:
    pod = load("pod-init-crashloop")
    init = pod["status"]["initContainerStatuses"][0]
    init.update(restartCount=0, lastState={}, state={"running": {"startedAt": "2026-01-01T10:00:02Z"}})
    v = assess_pod(pod, now=at(10))
    assert v == Verdict("progressing", "PodInitializing", "pod web-7c5ddbdf54-h3j5k is initializing (0/1 init containers done)", ("web-7c5ddbdf54-h3j5k",))


def test_running_never_ready_waits_with_a_hint() -> None:
    v = assess_pod(load("pod-running-not-ready"), now=at(600))
    assert v == Verdict(
        "progressing",
        "NotReady",
        "pod web-7c5ddbdf54-r4t6y: container app is running but not ready (readiness probe failing?)",
        ("web-7c5ddbdf54-r4t6y",),
    )


def test_running_not_ready_after_one_restart_mentions_it() -> None:
    pod = load("pod-running-not-ready")
    pod["status"]["containerStatuses"][0]["restartCount"] = 1
    v = assess_pod(pod, now=at(600))
    assert v.state == "progressing" and v.reason == "NotReady"
    assert v.message.endswith("(readiness probe failing?); restarted 1 time")


def test_unmet_readiness_gate_is_named() -> None:
    pod = load("pod-ready")
    pod["spec"]["readinessGates"] = [{"conditionType": "target-health.elbv2.k8s.aws/web"}]
    for cond in pod["status"]["conditions"]:
        if cond["type"] == "Ready":
            cond.update(status="False", reason="ReadinessGatesNotReady", message='corresponding condition of pod readiness gate "target-health.elbv2.k8s.aws/web" does not exist.')
    v = assess_pod(pod, now=at(30))
    assert v.state == "progressing" and v.message.endswith("readiness gates not met: target-health.elbv2.k8s.aws/web")


def test_container_creating_pod_is_pending_with_its_reason() -> None:
    v = assess_pod(pod_with(waiting("ContainerCreating")), now=at(5))
    assert v == Verdict(
        "progressing", "ContainerCreating", "pod web-7c5ddbdf54-m1n2b is pending: container app is ContainerCreating", ("web-7c5ddbdf54-m1n2b",)
    )


def test_evicted_pod_failed() -> None:
    v = assess_pod(load("pod-evicted"), now=at(200))
    assert (v.state, v.reason, v.pods) == ("failed", "Evicted", ("web-7c5ddbdf54-e5v7c",))
    assert v.message.startswith("pod web-7c5ddbdf54-e5v7c failed: The node was low on resource: memory.")


def test_failed_pod_without_a_message_names_the_container() -> None:
    v = assess_pod(load("pod-job-failed"), now=at(10))
    assert v == Verdict("failed", "Error", "pod shop-migrate-7xk2d failed: container app exited with code 1", ("shop-migrate-7xk2d",))


def test_succeeded_pod_is_ready() -> None:
    pod = load("pod-job-failed")
    pod["status"]["phase"] = "Succeeded"
    assert assess_pod(pod, now=at(10)).state == "ready"


def test_naive_clock_is_taken_as_utc() -> None:
    assert assess_pod(load("pod-unschedulable"), now=datetime(2026, 1, 1, 10, 5)).state == "failed"


# --- Deployment ---------------------------------------------------------------------------------


def deployment(**status: Any) -> dict[str, Any]:
    return fixture("deployment-rolling-out", status=status) if status else load("deployment-rolling-out")


AVAILABLE = {
    "availableReplicas": 3,
    "readyReplicas": 3,
    "unavailableReplicas": None,
    "conditions": [
        {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability.",
         "lastTransitionTime": "2026-01-01T10:00:30Z", "lastUpdateTime": "2026-01-01T10:00:30Z"},
        {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": 'ReplicaSet "web-7c5ddbdf54" has successfully progressed.',
         "lastTransitionTime": "2026-01-01T09:55:00Z", "lastUpdateTime": "2026-01-01T10:00:30Z"},
    ],
}


def test_deployment_available() -> None:
    assert assess(deployment(**AVAILABLE), [load("pod-ready")], now=at(40)) == Verdict(
        "ready", "Ready", "Deployment web: 3/3 replicas available"
    )


def test_deployment_with_a_crash_looping_pod_fails_naming_it() -> None:
    v = assess(deployment(), [load("pod-ready"), load("pod-crashloop")], now=at(200))
    assert v == Verdict(
        "failed",
        "CrashLoopBackOff",
        "Deployment web: 1/3 replicas available; pod web-7c5ddbdf54-k8m2p container app is in a crash loop "
        "(5 failed starts, last exit code 1)",
        ("web-7c5ddbdf54-k8m2p",),
    )


def test_deployment_names_every_failing_pod_for_logs() -> None:
    pods = [load("pod-ready"), load("pod-crashloop"), load("pod-oomkilled")]
    v = assess(deployment(), pods, now=at(200))
    assert v.state == "failed" and v.pods == ("web-7c5ddbdf54-k8m2p", "web-7c5ddbdf54-q7w4z")
    assert v.message.endswith("(and 1 more pod failing)")


@pytest.mark.parametrize(
    ("pod", "seconds", "state", "reason"),
    [
        ("pod-running-not-ready", 600, "progressing", "NotReady"),
        ("pod-image-pull-backoff", 20, "progressing", "ImagePullBackOff"),
        ("pod-image-pull-backoff", 90, "failed", "ImagePullBackOff"),
        ("pod-unschedulable", 10, "progressing", "Unschedulable"),
        ("pod-unschedulable", 45, "failed", "Unschedulable"),
        ("pod-init-crashloop", 60, "failed", "CrashLoopBackOff"),
        ("pod-config-error", 5, "progressing", "CreateContainerConfigError"),
        ("pod-evicted", 200, "failed", "Evicted"),  # restartPolicy Always: a Failed pod is not retried
        ("pod-oomkilled", 120, "failed", "OOMKilled"),
    ],
)
def test_deployment_judged_by_its_pods_while_progressing(pod: str, seconds: int, state: str, reason: str) -> None:
    # The image-pull pod belongs to another ReplicaSet; point the condition at it so it counts as new.
    dep = deployment()
    p = load(pod)
    dep["status"]["conditions"][1]["message"] = f'ReplicaSet "{p["metadata"]["ownerReferences"][0]["name"]}" is progressing.'
    v = assess(dep, [load("pod-ready"), p], now=at(seconds))
    assert (v.state, v.reason) == (state, reason)
    assert v.message.startswith("Deployment web: 1/3 replicas available; pod ")
    assert v.pods == (p["metadata"]["name"],)


def test_deployment_without_pods_yet() -> None:
    assert assess(deployment(), [], now=at(1)) == Verdict("progressing", "Progressing", "Deployment web: 1/3 replicas available")


def test_deployment_prefers_a_specific_hint_over_a_pending_pod() -> None:
    creating = renamed(pod_with(waiting("ContainerCreating")), "web-7c5ddbdf54-aaaaa")
    v = assess(deployment(), [creating, load("pod-running-not-ready")], now=at(30))
    assert v.reason == "NotReady" and v.pods == ("web-7c5ddbdf54-r4t6y",)


def test_deployment_ignores_pods_being_deleted() -> None:
    dying = merge(load("pod-crashloop"), {"metadata": {"deletionTimestamp": "2026-01-01T10:03:00Z", "deletionGracePeriodSeconds": 30}})
    v = assess(deployment(), [load("pod-ready"), dying], now=at(200))
    assert v.state == "progressing"


def test_deployment_ignores_the_old_replica_sets_crash_loop_during_a_rollout() -> None:
    # The build being replaced crash-loops; the new ReplicaSet's pod is merely starting.
    dep = deployment()
    dep["status"]["conditions"][1]["message"] = 'ReplicaSet "web-8d4f6b7c9a" is progressing.'
    new = renamed(load("pod-running-not-ready"), "web-8d4f6b7c9a-p2k7m", replica_set="web-8d4f6b7c9a")
    v = assess(dep, [load("pod-crashloop"), new], now=at(200))
    assert (v.state, v.reason, v.pods) == ("progressing", "NotReady", ("web-8d4f6b7c9a-p2k7m",))


def test_deployment_whose_new_replica_set_has_no_pods_yet() -> None:
    dep = deployment(updatedReplicas=0)
    dep["status"]["conditions"][1].update(reason="NewReplicaSetCreated", message='Created new replica set "web-8d4f6b7c9a"')
    v = assess(dep, [load("pod-crashloop")], now=at(200))
    assert v == Verdict("progressing", "Progressing", "Deployment web: 1/3 replicas available, 0/3 updated, 3 old replicas pending termination")


def test_deployment_spec_not_yet_observed_waits_even_if_old_pods_fail() -> None:
    v = assess(fixture("deployment-rolling-out", metadata={"generation": 3}), [load("pod-crashloop")], now=at(200))
    assert v == Verdict("progressing", "Progressing", "Deployment web: waiting for the controller to observe generation 3 (observed 2)")


def test_deployment_progress_deadline_exceeded() -> None:
    dep = deployment()
    dep["status"]["conditions"][1].update(
        status="False", reason="ProgressDeadlineExceeded", message='ReplicaSet "web-7c5ddbdf54" has timed out progressing.'
    )
    v = assess(dep, [load("pod-ready"), load("pod-running-not-ready")], now=at(700))
    assert v == Verdict(
        "failed", "ProgressDeadlineExceeded", 'Deployment web: 1/3 replicas available; ReplicaSet "web-7c5ddbdf54" has timed out progressing.'
    )
    v = assess(dep, [load("pod-crashloop")], now=at(700))
    assert v.reason == "ProgressDeadlineExceeded" and v.pods == ("web-7c5ddbdf54-k8m2p",)
    assert v.message.endswith("; pod web-7c5ddbdf54-k8m2p container app is in a crash loop (5 failed starts, last exit code 1)")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({**AVAILABLE, "replicas": 4}, "3/3 replicas available, 1 old replica pending termination"),
        ({**AVAILABLE, "updatedReplicas": 1, "replicas": 4}, "3/3 replicas available, 1/3 updated, 3 old replicas pending termination"),
        ({"availableReplicas": 2, "updatedReplicas": 3, "replicas": 3}, "2/3 replicas available"),
    ],
)
def test_deployment_rollout_not_finished(status: dict[str, Any], expected: str) -> None:
    v = assess(deployment(**status), [], now=at(30))
    assert v == Verdict("progressing", "Progressing", f"Deployment web: {expected}")


def test_deployment_scaled_to_zero_is_ready() -> None:
    dep = merge(deployment(availableReplicas=0, readyReplicas=0, updatedReplicas=0, replicas=0), {"spec": {"replicas": 0}})
    assert assess(dep, [], now=at(1)).state == "ready"


def test_paused_deployment_is_not_awaited() -> None:
    v = assess(merge(deployment(), {"spec": {"paused": True}}), [load("pod-crashloop")], now=at(200))
    assert (v.state, v.reason) == ("ready", "Paused")


@pytest.mark.parametrize(("seconds", "state"), [(20, "progressing"), (30, "failed")])
def test_deployment_that_cannot_create_pods(seconds: int, state: str) -> None:
    dep = deployment()
    dep["status"]["conditions"].append(
        {
            "type": "ReplicaFailure",
            "status": "True",
            "reason": "FailedCreate",
            "message": 'pods "web-7c5ddbdf54-abcde" is forbidden: exceeded quota: compute, requested: limits.memory=128Mi, '
            "used: limits.memory=512Mi, limited: limits.memory=512Mi",
            "lastTransitionTime": "2026-01-01T10:00:00Z",
            "lastUpdateTime": "2026-01-01T10:00:00Z",
        }
    )
    v = assess(dep, [load("pod-ready")], now=at(seconds))
    assert (v.state, v.reason) == (state, "FailedCreate")
    assert v.message.startswith('Deployment web: cannot create pods: FailedCreate (pods "web-7c5ddbdf54-abcde" is forbidden: exceeded quota')


# --- StatefulSet --------------------------------------------------------------------------------


def db_pod(name: str, source: str = "pod-ready") -> dict[str, Any]:
    pod = load(source)
    pod["metadata"].update(
        name=name,
        labels={"app.kubernetes.io/name": "db", "app.kubernetes.io/instance": "shop", "controller-revision-hash": "shop-db-5c9d8b7f6d",
                "statefulset.kubernetes.io/pod-name": name, "apps.kubernetes.io/pod-index": name[-1]},
        ownerReferences=[{"apiVersion": "apps/v1", "blockOwnerDeletion": True, "controller": True, "kind": "StatefulSet", "name": "shop-db",
                          "uid": "7d6c5b4a-3928-4170-a6f5-e4d3c2b1a090"}],
    )
    return pod


def statefulset(spec: dict[str, Any] | None = None, **status: Any) -> dict[str, Any]:
    return merge(load("statefulset-ready"), {"spec": spec or {}, "status": status})


@pytest.mark.parametrize(
    ("sts", "state", "message"),
    [
        (statefulset(), "ready", "StatefulSet shop-db: 2/2 replicas ready"),
        (statefulset(readyReplicas=1), "progressing", "StatefulSet shop-db: 1/2 replicas ready"),
        (
            statefulset(updateRevision="shop-db-6f8e7d9c5b", updatedReplicas=1),
            "progressing",
            "StatefulSet shop-db: 2/2 replicas ready, 1/2 updated to revision shop-db-6f8e7d9c5b",
        ),
        # Partition 1: ordinal 0 stays on the old revision on purpose.
        (
            statefulset({"updateStrategy": {"rollingUpdate": {"partition": 1}}}, updateRevision="shop-db-6f8e7d9c5b", updatedReplicas=1),
            "ready",
            "StatefulSet shop-db: 2/2 replicas ready",
        ),
        (
            statefulset({"updateStrategy": {"rollingUpdate": {"partition": 1}}}, updateRevision="shop-db-6f8e7d9c5b", updatedReplicas=0),
            "progressing",
            "StatefulSet shop-db: 2/2 replicas ready, 0/1 updated above partition 1",
        ),
        (
            statefulset({"updateStrategy": {"type": "OnDelete", "rollingUpdate": None}}, updateRevision="shop-db-6f8e7d9c5b", updatedReplicas=0),
            "ready",
            "StatefulSet shop-db: 2/2 replicas ready",
        ),
        (
            merge(statefulset(), {"metadata": {"generation": 2}}),
            "progressing",
            "StatefulSet shop-db: waiting for the controller to observe generation 2 (observed 1)",
        ),
    ],
)
def test_statefulset(sts: dict[str, Any], state: str, message: str) -> None:
    v = assess(sts, [], now=at(30))
    assert (v.state, v.message) == (state, message)


def test_statefulset_with_a_crash_looping_pod_fails() -> None:
    v = assess(statefulset(readyReplicas=1), [db_pod("shop-db-0"), db_pod("shop-db-1", "pod-crashloop")], now=at(200))
    assert (v.state, v.reason, v.pods) == ("failed", "CrashLoopBackOff", ("shop-db-1",))
    assert v.message.startswith("StatefulSet shop-db: 1/2 replicas ready; pod shop-db-1 container app is in a crash loop")


# --- DaemonSet ----------------------------------------------------------------------------------


def daemonset(spec: dict[str, Any] | None = None, **status: Any) -> dict[str, Any]:
    return merge(load("daemonset-ready"), {"spec": spec or {}, "status": status})


@pytest.mark.parametrize(
    ("ds", "state", "message"),
    [
        (daemonset(), "ready", "DaemonSet log-agent: 3/3 pods ready"),
        (daemonset(numberReady=2, numberAvailable=2, numberUnavailable=1), "progressing", "DaemonSet log-agent: 2/3 pods ready"),
        (daemonset(updatedNumberScheduled=1), "progressing", "DaemonSet log-agent: 3/3 pods ready, 1/3 updated"),
        (daemonset({"updateStrategy": {"type": "OnDelete", "rollingUpdate": None}}, updatedNumberScheduled=1), "ready", "DaemonSet log-agent: 3/3 pods ready"),
        (daemonset(desiredNumberScheduled=0, currentNumberScheduled=0, numberReady=0, numberAvailable=0, updatedNumberScheduled=0), "ready", "DaemonSet log-agent: 0/0 pods ready"),
        (merge(daemonset(), {"metadata": {"generation": 2}}), "progressing", "DaemonSet log-agent: waiting for the controller to observe generation 2 (observed 1)"),
    ],
)
def test_daemonset(ds: dict[str, Any], state: str, message: str) -> None:
    v = assess(ds, [], now=at(30))
    assert (v.state, v.message) == (state, message)


def test_daemonset_with_an_image_pull_failure_fails() -> None:
    pod = load("pod-image-pull-backoff")
    pod["metadata"].update(labels={"app.kubernetes.io/name": "log-agent"}, ownerReferences=[
        {"apiVersion": "apps/v1", "controller": True, "kind": "DaemonSet", "name": "log-agent", "uid": "3e2d1c0b-a998-4877-b665-d4c3b2a19080"}])
    ds = daemonset(numberReady=2, numberUnavailable=1)
    assert pods_of(ds, [pod]) == [pod]
    v = assess(ds, pods_of(ds, [pod]), now=at(120))
    assert (v.state, v.reason) == ("failed", "ImagePullBackOff")


# --- ReplicaSet ---------------------------------------------------------------------------------


def replicaset(available: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "web-7c5ddbdf54", "namespace": NS, "generation": 1, "uid": "5b0c6f0e-2a7d-4f43-9a51-3f1f0a5d9c11"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app.kubernetes.io/name": "web", "pod-template-hash": "7c5ddbdf54"}}},
        "status": {"availableReplicas": available, "fullyLabeledReplicas": 2, "observedGeneration": 1, "readyReplicas": available, "replicas": 2},
    }


def test_replicaset() -> None:
    assert assess(replicaset(2), [], now=at(1)).state == "ready"
    rs = replicaset(1)
    pods = pods_of(rs, [load("pod-ready"), load("pod-crashloop"), load("pod-image-pull-backoff")])
    assert [p["metadata"]["name"] for p in pods] == ["web-7c5ddbdf54-x2x9q", "web-7c5ddbdf54-k8m2p"]
    v = assess(rs, pods, now=at(200))
    assert (v.state, v.reason) == ("failed", "CrashLoopBackOff")
    assert v.message.startswith("ReplicaSet web-7c5ddbdf54: 1/2 replicas available; pod web-7c5ddbdf54-k8m2p")


# --- Job ----------------------------------------------------------------------------------------


def running_job(**status: Any) -> dict[str, Any]:
    job = load("job-backoff-limit-exceeded")
    job["status"] = {"active": 1, "ready": 0, "startTime": "2026-01-01T10:00:00Z", "terminating": 0, "uncountedTerminatedPods": {}, **status}
    return job


def job_pod(name: str, source: str) -> dict[str, Any]:
    pod = load(source)
    ref = load("pod-job-failed")["metadata"]
    pod["metadata"].update(name=name, labels=ref["labels"], ownerReferences=ref["ownerReferences"])
    return pod


def test_job_backoff_limit_exceeded_names_the_failed_pods() -> None:
    pods = [load("pod-job-failed"), renamed(load("pod-job-failed"), "shop-migrate-9qv4w")]
    pods[1]["metadata"]["creationTimestamp"] = "2026-01-01T10:00:40Z"
    v = assess(load("job-backoff-limit-exceeded"), pods, now=at(80))
    assert v == Verdict(
        "failed",
        "BackoffLimitExceeded",
        "Job shop-migrate failed: BackoffLimitExceeded (Job has reached the specified backoff limit); "
        "pod shop-migrate-9qv4w failed: container app exited with code 1",
        ("shop-migrate-7xk2d", "shop-migrate-9qv4w"),
    )


@pytest.mark.parametrize(
    ("conditions", "state", "reason"),
    [
        ([{"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "Job was active longer than specified deadline"}], "failed", "DeadlineExceeded"),
        ([{"type": "FailureTarget", "status": "True", "reason": "PodFailurePolicy", "message": "Container app for pod envci-shop-pr-42/shop-migrate-7xk2d failed with exit code 42 matching FailJob rule at index 0"}], "failed", "PodFailurePolicy"),
        ([{"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods"},
          {"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods"}], "ready", "Complete"),
        ([{"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods"}], "ready", "Complete"),
        ([{"type": "Failed", "status": "False", "reason": "BackoffLimitExceeded"}], "progressing", "Progressing"),
    ],
)
def test_job_conditions(conditions: list[dict[str, Any]], state: str, reason: str) -> None:
    job = running_job(succeeded=1 if state == "ready" else 0, conditions=conditions)
    v = assess(job, [], now=at(30))
    assert (v.state, v.reason) == (state, reason)


def test_job_complete_message() -> None:
    job = running_job(succeeded=1, active=0, conditions=[{"type": "Complete", "status": "True", "reason": "CompletionsReached"}])
    assert assess(job, [], now=at(30)) == Verdict("ready", "Complete", "Job shop-migrate completed (1 succeeded)")


def test_running_job_retries_a_failed_pod() -> None:
    # restartPolicy Never: a failed pod is retried by the Job controller up to backoffLimit.
    job = running_job(failed=1)
    running = job_pod("shop-migrate-9qv4w", "pod-running-not-ready")
    v = assess(job, [load("pod-job-failed"), running], now=at(30))
    assert v.state == "progressing"
    assert v.message.startswith("Job shop-migrate: 0/1 completions, 1 active, 1 failed; pod shop-migrate-9qv4w")


def test_running_job_with_a_bad_image_fails_after_the_grace() -> None:
    pod = job_pod("shop-migrate-7xk2d", "pod-image-pull-backoff")
    assert assess(running_job(), [pod], now=at(30)).state == "progressing"
    v = assess(running_job(), [pod], now=at(90))
    assert (v.state, v.reason, v.pods) == ("failed", "ImagePullBackOff", ("shop-migrate-7xk2d",))


def test_job_with_restart_on_failure_crash_loop_fails() -> None:
    pod = job_pod("shop-migrate-7xk2d", "pod-crashloop")
    v = assess(running_job(), [pod], now=at(200))
    assert (v.state, v.reason) == ("failed", "CrashLoopBackOff")


def test_suspended_job_waits() -> None:
    job = merge(running_job(active=0), {"spec": {"suspend": True}})
    assert assess(job, [], now=at(30)).reason == "Suspended"


# --- Pod, Service, PVC, Ingress, CronJob, others ------------------------------------------------


def test_bare_pod_through_assess() -> None:
    assert assess(load("pod-crashloop"), [], now=at(200)) == assess_pod(load("pod-crashloop"), now=at(200))


LB_ADDRESS = {"status": {"loadBalancer": {"ingress": [{"ip": "172.18.255.200", "ipMode": "VIP"}]}}}


@pytest.mark.parametrize(
    ("svc", "rules", "state"),
    [
        (fixture("service-load-balancer"), Rules(), "progressing"),
        (fixture("service-load-balancer", **LB_ADDRESS), Rules(), "ready"),
        (fixture("service-load-balancer", spec={"externalIPs": ["203.0.113.10"]}), Rules(), "ready"),
        (fixture("service-load-balancer"), Rules(require_load_balancer_address=False), "ready"),
        (fixture("service-load-balancer", spec={"type": "ClusterIP", "allocateLoadBalancerNodePorts": None, "externalTrafficPolicy": None}), Rules(), "ready"),
        (fixture("service-load-balancer", spec={"type": "NodePort"}), Rules(), "ready"),
        (fixture("service-load-balancer", spec={"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"]}), Rules(), "ready"),
        (fixture("service-load-balancer", spec={"type": "ExternalName", "externalName": "db.example.com", "clusterIP": None, "clusterIPs": None}), Rules(), "ready"),
        (fixture("service-load-balancer", spec={"type": "ClusterIP", "clusterIP": None}), Rules(), "progressing"),
    ],
)
def test_service(svc: dict[str, Any], rules: Rules, state: str) -> None:
    svc = merge(svc, {"metadata": {"creationTimestamp": "2026-01-01T10:00:00Z"}})
    assert assess(svc, [], now=at(1), rules=rules).state == state


def test_load_balancer_wait_message() -> None:
    svc = fixture("service-load-balancer", metadata={"creationTimestamp": "2026-01-01T10:00:00Z"})
    assert assess(svc, [], now=at(1)) == Verdict(
        "progressing", "Pending", "Service web: waiting for a load-balancer controller to set an address"
    )


@pytest.mark.parametrize(
    ("seconds", "state"),
    [(0, "progressing"), (119.9, "progressing"), (120, "failed"), (3600, "failed")],
)
def test_load_balancer_with_no_address_fails_once_its_grace_has_run_out(seconds: float, state: str) -> None:
    svc = fixture("service-load-balancer", metadata={"creationTimestamp": "2026-01-01T10:00:00Z"})
    assert assess(svc, [], now=at(seconds)).state == state


def test_load_balancer_grace_is_a_rule_and_the_verdict_names_the_service_and_the_way_out() -> None:
    svc = fixture("service-load-balancer", metadata={"creationTimestamp": "2026-01-01T10:00:00Z"})
    rules = Rules(load_balancer_grace=timedelta(seconds=10))
    assert assess(svc, [], now=at(9), rules=rules).state == "progressing"
    v = assess(svc, [], now=at(10), rules=rules)
    assert (v.state, v.reason) == ("failed", "NoLoadBalancerAddress")
    assert v.message.startswith("Service web (type LoadBalancer) has no address after 10s: no load-balancer controller has set one")
    assert "ClusterIP Service for the component's `expose:`" in v.message
    # An address, even a late one, is ready; and with the address not required the grace never applies.
    assert assess(merge(svc, LB_ADDRESS), [], now=at(600), rules=rules).state == "ready"
    assert assess(svc, [], now=at(600), rules=Rules(require_load_balancer_address=False)).state == "ready"


def test_load_balancer_with_no_creation_time_is_left_to_the_waiters_deadline() -> None:
    svc = fixture("service-load-balancer", metadata={"creationTimestamp": None})
    assert assess(svc, [], now=at(3600)).state == "progressing"


@pytest.mark.parametrize(
    ("phase", "state", "reason"),
    [("Pending", "progressing", "Pending"), ("Bound", "ready", "Bound"), ("Lost", "failed", "Lost")],
)
def test_persistent_volume_claim(phase: str, state: str, reason: str) -> None:
    v = assess(fixture("pvc-pending", status={"phase": phase}), [], now=at(1))
    assert (v.state, v.reason) == (state, reason)
    assert v.message.startswith("PersistentVolumeClaim data-shop-db-0 ")


@pytest.mark.parametrize(
    ("ingress", "rules", "state"),
    [
        (load("ingress"), Rules(), "ready"),  # local clusters publish no address
        (load("ingress"), Rules(require_ingress_address=True), "progressing"),
        (fixture("ingress", status={"loadBalancer": {"ingress": [{"hostname": "k8s-shop-web-1a2b3c.elb.eu-west-1.amazonaws.com"}]}}), Rules(require_ingress_address=True), "ready"),
    ],
)
def test_ingress(ingress: dict[str, Any], rules: Rules, state: str) -> None:
    assert assess(ingress, [], now=at(1), rules=rules).state == state


def test_cronjob_is_always_ready() -> None:
    assert assess(load("cronjob"), [], now=at(1)) == Verdict("ready", "Ready", "CronJob shop-cleanup is scheduled (*/15 * * * *)")


def test_kind_without_a_rule() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shop-config", "namespace": NS}, "data": {"A": "1"}}
    assert assess(cm, [], now=at(1)) == Verdict("ready", "NoReadinessRule", "ConfigMap shop-config: no readiness rule; assumed ready")


def test_objects_without_status_yet() -> None:
    # Just created: the controller has written nothing. Nothing may crash, nothing may be ready.
    for name in ("deployment-rolling-out", "statefulset-ready", "daemonset-ready", "job-backoff-limit-exceeded"):
        obj = load(name)
        del obj["status"]
        assert assess(obj, [], now=at(0)).state == "progressing", name


# --- pods_of ------------------------------------------------------------------------------------


def names(pods: list[dict[str, Any]]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


def test_pods_of_deployment_by_selector_owner_and_namespace() -> None:
    mine = [load("pod-ready"), load("pod-image-pull-backoff")]
    other_app = merge(renamed(load("pod-ready"), "worker-5f6d7c8b9a-abcde", "worker-5f6d7c8b9a"), {"metadata": {"labels": {"app.kubernetes.io/name": "worker"}}})
    # Same labels, owned by deployment "web-api": its ReplicaSet name starts with "web-" too.
    web_api = renamed(load("pod-ready"), "web-api-5f6d7c8b9a-fghij", "web-api-5f6d7c8b9a")
    elsewhere = merge(renamed(load("pod-ready"), "web-7c5ddbdf54-other"), {"metadata": {"namespace": "envci-shop-pr-43"}})
    dying = merge(renamed(load("pod-ready"), "web-7c5ddbdf54-dying"), {"metadata": {"deletionTimestamp": "2026-01-01T10:01:00Z"}})
    assert names(pods_of(load("deployment-rolling-out"), mine + [other_app, web_api, elsewhere, dying])) == names(mine)


@pytest.mark.parametrize(
    ("expressions", "selected"),
    [
        ([{"key": "app.kubernetes.io/name", "operator": "In", "values": ["web", "worker"]}], True),
        ([{"key": "app.kubernetes.io/name", "operator": "In", "values": ["worker"]}], False),
        ([{"key": "tier", "operator": "NotIn", "values": ["batch"]}], True),
        ([{"key": "app.kubernetes.io/name", "operator": "NotIn", "values": ["web"]}], False),
        ([{"key": "pod-template-hash", "operator": "Exists"}], True),
        ([{"key": "tier", "operator": "Exists"}], False),
        ([{"key": "tier", "operator": "DoesNotExist"}], True),
        ([{"key": "pod-template-hash", "operator": "DoesNotExist"}], False),
        ([{"key": "pod-template-hash", "operator": "Gt", "values": ["1"]}], False),
    ],
)
def test_pods_of_match_expressions(expressions: list[dict[str, Any]], selected: bool) -> None:
    dep = load("deployment-rolling-out")
    dep["spec"]["selector"] = {"matchExpressions": expressions}
    assert bool(pods_of(dep, [load("pod-ready")])) is selected


def test_pods_of_statefulsets_with_overlapping_selectors_uses_the_owner() -> None:
    primary = db_pod("shop-db-0")
    replica = db_pod("shop-db-replica-0")
    replica["metadata"]["ownerReferences"][0].update(name="shop-db-replica", uid="11111111-2222-4333-8444-555555555555")
    assert names(pods_of(load("statefulset-ready"), [primary, replica])) == ["shop-db-0"]


def test_pods_of_job_by_owner_even_without_a_selector() -> None:
    job = load("job-backoff-limit-exceeded")
    del job["spec"]["selector"]
    other = merge(load("pod-job-failed"), {"metadata": {"name": "shop-seed-abcde", "labels": {"job-name": "shop-seed"}}})
    other["metadata"]["ownerReferences"][0].update(name="shop-seed", uid="99999999-8888-4777-8666-555555555555")
    assert names(pods_of(job, [load("pod-job-failed"), other, load("pod-ready")])) == ["shop-migrate-7xk2d"]


def test_pods_of_service_and_pod() -> None:
    svc = load("service-load-balancer")
    assert names(pods_of(svc, [load("pod-ready"), load("pod-job-failed")])) == ["web-7c5ddbdf54-x2x9q"]
    assert pods_of(fixture("service-load-balancer", spec={"selector": None}), [load("pod-ready")]) == []
    assert pods_of(load("pod-ready"), [load("pod-ready")]) == []


# --- worst, parse_time --------------------------------------------------------------------------


READY = Verdict("ready", "Ready", "a")
WAIT = Verdict("progressing", "NotReady", "b")
WAIT2 = Verdict("progressing", "Pending", "c")
FAIL = Verdict("failed", "CrashLoopBackOff", "d", ("p",))


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        ([], Verdict("ready", "Ready", "nothing to wait for")),
        ([READY], READY),
        ([READY, WAIT, WAIT2], WAIT),
        ([WAIT, FAIL, READY], FAIL),
        ([FAIL, Verdict("failed", "Unschedulable", "e")], FAIL),
    ],
)
def test_worst(verdicts: list[Verdict], expected: Verdict) -> None:
    assert worst(iter(verdicts)) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T10:00:00Z", T0),
        ("2026-01-01T10:00:00z", T0),
        ("2026-01-01T12:00:00+02:00", T0),
        ("2026-01-01T10:00:00.123456789Z", T0 + timedelta(microseconds=123456)),
        ("2026-01-01T10:00:00", T0),
        (None, None),
        ("", None),
        ("yesterday", None),
        (1767261600, None),
    ],
)
def test_parse_time(text: object, expected: datetime | None) -> None:
    assert parse_time(text) == expected


# --- what a real kubelet reports between restarts -----------------------------------------------
# A recent kubelet restarts a crashing container within seconds and says CrashLoopBackOff only once
# its back-off passes a minute; before that the status shows the crash itself ("Error" in kubectl)
# or the next instance running. The crash loop is judged on restartCount and the last termination.


def crash_status(state: dict[str, Any], restarts: int, last_exit: int | None = 1) -> dict[str, Any]:
    pod = load("pod-crash-error")
    cs = pod["status"]["containerStatuses"][0]
    cs.update(state=state, restartCount=restarts, ready="running" in state, started="running" in state)
    if last_exit is None:
        cs["lastState"] = {}
    else:
        cs["lastState"]["terminated"]["exitCode"] = last_exit
    return pod


def test_second_failed_start_fails_before_the_kubelet_says_crash_loop_back_off() -> None:
    v = assess_pod(load("pod-crash-error"), now=at(4))
    assert v == Verdict(
        "failed",
        "CrashLoopBackOff",
        "pod web-7c5ddbdf54-c4r7s container app is in a crash loop (2 failed starts, last exit code 1)",
        ("web-7c5ddbdf54-c4r7s",),
    )


def test_first_failed_start_is_given_another_chance() -> None:
    pod = load("pod-crash-error")
    cs = pod["status"]["containerStatuses"][0]
    cs.update(restartCount=0, lastState={})
    v = assess_pod(pod, now=at(4))
    assert (v.state, v.reason) == ("progressing", "CrashLoopBackOff")
    assert v.message.endswith("is in a crash loop (1 failed start, last exit code 1)")


@pytest.mark.parametrize(
    "state",
    [
        {"waiting": {}},  # no reason at all
        {"waiting": {"reason": "Error"}},
        {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 2s restarting failed container=app pod=web-7c5ddbdf54-c4r7s_envci-shop-pr-42(0d5e4c1a)"}},
        {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": "2026-01-01T10:00:03Z", "finishedAt": "2026-01-01T10:00:03Z"}},
    ],
    ids=["waiting-no-reason", "waiting-Error", "waiting-CrashLoopBackOff", "terminated-Error"],
)
def test_crash_loop_whatever_the_current_state_says(state: dict[str, Any]) -> None:
    v = assess_pod(crash_status(state, restarts=1), now=at(4))
    assert (v.state, v.reason) == ("failed", "CrashLoopBackOff")
    assert "(2 failed starts, last exit code 1)" in v.message


def test_restarted_container_running_again_is_still_a_crash_loop() -> None:
    # Ready at once (no readiness probe), 2s into its third start: two crashes lie behind it.
    v = assess_pod(load("pod-crash-running"), now=at(8))
    assert (v.state, v.reason, v.pods) == ("failed", "CrashLoopBackOff", ("web-7c5ddbdf54-c4r7s",))
    assert v.message.endswith("container app is in a crash loop (2 failed starts, last exit code 1)")


def test_restarted_container_that_stays_up_has_recovered() -> None:
    pod = load("pod-crash-running")  # running since 10:00:06
    assert assess_pod(pod, now=at(65)).state == "failed"
    assert assess_pod(pod, now=at(66)).state == "ready"
    assert assess_pod(pod, now=at(20), rules=Rules(crashloop_recovered_after=timedelta(seconds=10))).state == "ready"


@pytest.mark.parametrize(
    ("state", "restarts", "last_exit", "long_running", "expected"),
    [
        ({"running": {}}, 0, None, True, 0),
        ({"running": {}}, 2, 1, True, 2),
        ({"running": {}}, 2, 0, False, 0),  # a Job container restarted after exiting 0: not a failure
        ({"running": {}}, 2, 0, True, 2),  # a server that keeps exiting 0 ("Completed") is looping too
        ({"terminated": {"exitCode": 1}}, 0, None, False, 1),
        ({"terminated": {"exitCode": 0, "reason": "Completed"}}, 0, None, False, 0),
        ({"terminated": {"exitCode": 0, "reason": "Completed"}}, 1, 0, True, 2),
        ({"terminated": {"exitCode": 1}}, 3, 1, True, 4),
        ({"waiting": {"reason": "CrashLoopBackOff"}}, 3, 1, True, 4),
        ({"waiting": {"reason": "CrashLoopBackOff"}}, 3, None, True, 4),
        ({"waiting": {"reason": "ContainerCreating"}}, 0, None, True, 0),
        ({"waiting": {"reason": "ImagePullBackOff"}}, 0, None, True, 0),
    ],
)
def test_failed_starts(state: dict[str, Any], restarts: int, last_exit: int | None, long_running: bool, expected: int) -> None:
    cs = crash_status(state, restarts, last_exit)["status"]["containerStatuses"][0]
    assert failed_starts(cs, long_running=long_running) == expected


def test_job_container_restarted_on_failure_then_succeeding_is_not_a_crash_loop() -> None:
    pod = crash_status({"terminated": {"exitCode": 0, "reason": "Completed"}}, restarts=2)
    pod["spec"]["restartPolicy"] = "OnFailure"
    assert assess_pod(pod, now=at(10)).state != "failed"


def test_image_never_pulled_fails_at_once_naming_the_image() -> None:
    v = assess_pod(load("pod-never-pull"), now=at(2))
    assert v == Verdict(
        "failed",
        "ErrImageNeverPull",
        'pod web-7c5ddbdf54-n3v8p container app: ErrImageNeverPull (Container image "envci.local/missing:1" is not present with pull policy of Never)',
        ("web-7c5ddbdf54-n3v8p",),
    )


@pytest.mark.parametrize(("seconds", "state"), [(3, "progressing"), (61, "failed")])
def test_image_pull_refused_names_the_image_and_the_kubelets_message(seconds: int, state: str) -> None:
    v = assess_pod(load("pod-image-pull-refused"), now=at(seconds))
    assert (v.state, v.reason) == (state, "ImagePullBackOff")
    assert v.message.startswith("pod web-7c5ddbdf54-p8l2d container app cannot pull image docker.io/library/nginx:1.27: ImagePullBackOff (")
    assert "dial tcp 198.18.0.1:443: connect: connection refused" in v.message


def test_image_named_from_the_spec_when_the_status_has_none() -> None:
    pod = load("pod-image-pull-refused")
    del pod["status"]["containerStatuses"][0]["image"]
    assert "cannot pull image docker.io/library/nginx:1.27:" in assess_pod(pod, now=at(3)).message


def test_oom_killed_without_a_memory_limit_says_the_node_ran_out() -> None:
    pod = load("pod-oomkilled")
    pod["spec"]["containers"][0]["resources"] = {}
    assert assess_pod(pod, now=at(120)).message.endswith("OOMKilled without a memory limit (the node ran out of memory))")


def test_oom_killed_pod_that_is_not_restarted_names_the_limit() -> None:
    pod = load("pod-job-failed")
    pod["spec"]["containers"][0]["resources"] = {"limits": {"memory": "16Mi"}}
    pod["status"]["containerStatuses"][0]["state"]["terminated"].update(exitCode=137, reason="OOMKilled")
    v = assess_pod(pod, now=at(10))
    assert (v.state, v.reason) == ("failed", "OOMKilled")
    assert v.message == "pod shop-migrate-7xk2d failed: container app exited with code 137, OOMKilled at memory limit 16Mi"


def test_start_error_quotes_the_kubelets_message() -> None:
    message = 'failed to create containerd task: exec: "/app/serve": stat /app/serve: no such file or directory'
    pod = crash_status({"terminated": {"exitCode": 128, "reason": "StartError", "message": message}}, restarts=1)
    assert assess_pod(pod, now=at(4)).message.endswith(f"(2 failed starts, last exit code 128, StartError: {message})")


def test_init_container_error_in_a_restarting_pod() -> None:
    v = assess_pod(load("pod-init-error"), now=at(4))
    assert v == Verdict(
        "failed",
        "CrashLoopBackOff",
        "pod web-7c5ddbdf54-i2n6t init container migrate is in a crash loop (2 failed starts, last exit code 3)",
        ("web-7c5ddbdf54-i2n6t",),
    )


def test_init_container_failure_fails_a_pod_that_is_not_restarted() -> None:
    v = assess_pod(load("pod-init-failed"), now=at(4))
    assert v == Verdict("failed", "Error", "pod seed-users failed: init container migrate exited with code 3", ("seed-users",))


def test_sidecar_that_exits_is_a_failure_even_with_code_zero() -> None:
    pod = load("pod-init-error")
    pod["spec"]["initContainers"][0]["restartPolicy"] = "Always"
    for term in (pod["status"]["initContainerStatuses"][0]["state"]["terminated"], pod["status"]["initContainerStatuses"][0]["lastState"]["terminated"]):
        term.update(exitCode=0, reason="Completed")
    assert assess_pod(pod, now=at(4)).state == "failed"
    del pod["spec"]["initContainers"][0]["restartPolicy"]
    assert assess_pod(pod, now=at(4)).state != "failed"


def test_unschedulable_on_a_single_node_quotes_the_scheduler() -> None:
    pod = load("pod-unschedulable")
    words = "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
    pod["status"]["conditions"][0]["message"] = words
    v = assess_pod(pod, now=at(31))
    assert v == Verdict("failed", "Unschedulable", f"pod web-7c5ddbdf54-z9v6c cannot be scheduled: {words}", ("web-7c5ddbdf54-z9v6c",))


# --- explain: what events add -------------------------------------------------------------------


def events(name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = load(name)["items"]
    return items


def test_failing_readiness_probe_is_quoted_from_the_latest_unhealthy_event() -> None:
    pod = load("pod-readiness-failing")
    v = assess_pod(pod, now=at(600))
    assert v.message == "pod web-7c5ddbdf54-r9q4w: container app is running but not ready (readiness probe failing?)"
    explained = explain(v, pod, events("events-readiness-failing"))
    assert explained == Verdict(
        "progressing",
        "NotReady",
        "pod web-7c5ddbdf54-r9q4w: container app is running but not ready: Readiness probe failed: HTTP probe failed with statuscode: 503",
        ("web-7c5ddbdf54-r9q4w",),
    )


def test_readiness_probe_quoted_through_the_deployment_at_the_deadline() -> None:
    dep = deployment()
    pod = renamed(load("pod-readiness-failing"), "web-7c5ddbdf54-r9q4w")
    v = assess(dep, [pod], now=at(600))
    v = Verdict("failed", v.reason, f"not ready within 5m: {v.message}", v.pods)
    out = explain(v, dep, events("events-readiness-failing"))
    assert out.message == (
        "not ready within 5m: Deployment web: 1/3 replicas available; pod web-7c5ddbdf54-r9q4w: container app is running but not ready: "
        "Readiness probe failed: HTTP probe failed with statuscode: 503"
    )


def test_events_of_other_pods_are_not_quoted() -> None:
    pod = renamed(load("pod-readiness-failing"), "web-7c5ddbdf54-other")
    v = assess_pod(pod, now=at(600))
    assert explain(v, pod, events("events-readiness-failing")) == v


def test_repeated_event_is_ordered_by_its_series() -> None:
    evs = events("events-readiness-failing")
    connection_refused = evs[1]
    connection_refused.update(lastTimestamp=None, eventTime="2026-01-01T10:00:03.000000Z", series={"count": 40, "lastObservedTime": "2026-01-01T10:09:00.000000Z"})
    pod = load("pod-readiness-failing")
    assert explain(assess_pod(pod, now=at(600)), pod, evs).message.endswith("connect: connection refused")


def test_container_creating_is_explained_by_the_latest_warning() -> None:
    pod = pod_with(waiting("ContainerCreating"))
    mount = {
        "involvedObject": {"kind": "Pod", "name": "web-7c5ddbdf54-m1n2b", "namespace": NS},
        "reason": "FailedMount",
        "type": "Warning",
        "message": 'MountVolume.SetUp failed for volume "certs" : secret "shop-tls" not found',
        "lastTimestamp": "2026-01-01T10:00:20Z",
    }
    v = explain(assess_pod(pod, now=at(30)), pod, [mount])
    assert v.message.endswith('; FailedMount: MountVolume.SetUp failed for volume "certs" : secret "shop-tls" not found')


def claim_event(reason: str, message: str, kind: str = "Warning", when: str = "2026-01-01T10:00:31Z") -> dict[str, Any]:
    ev = events("events-pvc-no-storageclass")[0]
    ev.update(reason=reason, message=message, type=kind, lastTimestamp=when)
    return ev


@pytest.mark.parametrize(
    ("evs", "reason", "words"),
    [
        (events("events-pvc-no-storageclass"), "ProvisioningFailed",
         'cannot be provisioned: ProvisioningFailed: storageclass.storage.k8s.io "fast-ssd" not found'),
        ([claim_event("WaitForFirstConsumer", "waiting for first consumer to be created before binding", "Normal")], "WaitForFirstConsumer",
         "binds only once a pod that uses it is scheduled: WaitForFirstConsumer: waiting for first consumer to be created before binding"),
        ([claim_event("ExternalProvisioning", 'Waiting for a volume to be created either by the external provisioner "ebs.csi.aws.com" or manually '
                      "by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.",
                      "Normal")], "ExternalProvisioning", 'is waiting for a provisioner that has not answered: ExternalProvisioning: Waiting for a volume'),
        ([claim_event("FailedBinding", "no persistent volumes available for this claim and no storage class is set", "Normal")], "FailedBinding",
         "has no volume to bind to: FailedBinding: no persistent volumes available"),
        # The Warning says why; a later Normal "still waiting" does not replace it.
        (events("events-pvc-no-storageclass") + [claim_event("ExternalProvisioning", "Waiting for a volume", "Normal", "2026-01-01T10:00:50Z")],
         "ProvisioningFailed", "cannot be provisioned: ProvisioningFailed"),
    ],
)
def test_pending_claim_explained_by_its_events(evs: list[dict[str, Any]], reason: str, words: str) -> None:
    claim = fixture("pvc-pending", spec={"storageClassName": "fast-ssd"})
    v = assess(claim, [], now=at(40))
    assert v == Verdict("progressing", "Pending", "PersistentVolumeClaim data-shop-db-0 is pending (storage class fast-ssd; waiting for a volume, or for a pod that uses it)")
    timed_out = Verdict("failed", v.reason, f"not ready within 1m: {v.message}")
    out = explain(timed_out, claim, evs)
    assert (out.state, out.reason) == ("failed", reason)
    assert out.message.startswith(f"not ready within 1m: PersistentVolumeClaim data-shop-db-0 {words}")


def test_claim_without_events_keeps_its_verdict() -> None:
    claim = load("pvc-pending")
    v = assess(claim, [], now=at(40))
    assert explain(v, claim, events("events-readiness-failing")) == v


# --- log_sources ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("pod-crash-error", [LogSource("web-7c5ddbdf54-c4r7s", "app", previous=False)]),  # the crash is the current instance
        ("pod-crash-running", [LogSource("web-7c5ddbdf54-c4r7s", "app", previous=True)]),
        ("pod-crashloop", [LogSource("web-7c5ddbdf54-k8m2p", "app", previous=True)]),
        ("pod-job-failed", [LogSource("shop-migrate-7xk2d", "app", previous=False)]),
        ("pod-init-error", [LogSource("web-7c5ddbdf54-i2n6t", "migrate", previous=False, init=True)]),
        ("pod-init-failed", [LogSource("seed-users", "migrate", previous=False, init=True)]),
        ("pod-readiness-failing", [LogSource("web-7c5ddbdf54-r9q4w", "app", previous=False)]),
        ("pod-never-pull", []),  # never ran: no logs to read
        ("pod-image-pull-refused", []),
        ("pod-ready", []),
    ],
)
def test_log_sources(name: str, expected: list[LogSource]) -> None:
    assert log_sources(load(name)) == expected


def test_log_sources_put_the_crashed_container_before_a_merely_unready_one() -> None:
    pod = load("pod-readiness-failing")
    crashed = load("pod-crash-error")["status"]["containerStatuses"][0]
    pod["status"]["containerStatuses"].append({**crashed, "name": "worker"})
    assert [s.container for s in log_sources(pod)] == ["worker", "app"]
    assert [s.container for s in log_sources(pod, limit=1)] == ["worker"]


# --- settle: a pod that has only just become ready ----------------------------------------------
# Without a readiness probe a container is Ready the moment it starts; one that exits a moment later
# was counted as available by its Deployment. Seen on a real node: wait-ready said "ready" 0.9s
# after creating a Deployment whose container exits at once.


def unprobed(pod: dict[str, Any]) -> dict[str, Any]:
    for c in pod["spec"]["containers"]:
        c.pop("readinessProbe", None)
    return pod


def test_pod_that_has_just_become_ready_is_settling() -> None:
    pod = unprobed(load("pod-ready"))  # Ready since 10:00:05
    v = assess_pod(pod, now=at(7))
    assert v == Verdict("progressing", "Settling", "pod web-7c5ddbdf54-x2x9q has just become ready; waiting 5s to see it stay up", ("web-7c5ddbdf54-x2x9q",))
    assert assess_pod(pod, now=at(10)).state == "ready"
    assert assess_pod(pod, now=at(7), rules=Rules(settle=timedelta(0))).state == "ready"


def test_pod_whose_containers_all_passed_a_readiness_probe_is_ready_at_once() -> None:
    pod = load("pod-ready")
    assert pod["spec"]["containers"][0]["readinessProbe"]
    assert assess_pod(pod, now=at(5)).state == "ready"
    pod["spec"]["containers"].append({"name": "sidecar", "image": "busybox"})  # one without a probe
    assert assess_pod(pod, now=at(5)).reason == "Settling"


def test_pod_ready_since_an_unknown_time_is_ready() -> None:
    pod = load("pod-ready")
    next(c for c in pod["status"]["conditions"] if c["type"] == "Ready").pop("lastTransitionTime")
    assert assess_pod(pod, now=at(0)).state == "ready"


def test_available_deployment_waits_for_its_pods_to_settle() -> None:
    v = assess(deployment(**AVAILABLE), [unprobed(load("pod-ready"))], now=at(6))
    assert v == Verdict(
        "progressing",
        "Settling",
        "Deployment web: 3/3 replicas available; pod web-7c5ddbdf54-x2x9q has just become ready; waiting 5s to see it stay up",
        ("web-7c5ddbdf54-x2x9q",),
    )


def test_available_deployment_whose_pod_has_crashed_since_fails() -> None:
    # The controller's count lags the pod: the pod has already crashed twice.
    v = assess(merge(deployment(**AVAILABLE), {"spec": {"replicas": 1}}), [load("pod-crash-error")], now=at(4))
    assert (v.state, v.reason, v.pods) == ("failed", "CrashLoopBackOff", ("web-7c5ddbdf54-c4r7s",))
    assert v.message.startswith("Deployment web: 3/1 replicas available; pod web-7c5ddbdf54-c4r7s container app is in a crash loop")


def test_paused_deployment_is_not_confirmed_by_its_pods() -> None:
    v = assess(merge(deployment(**AVAILABLE), {"spec": {"paused": True}}), [load("pod-crash-error")], now=at(4))
    assert v.reason == "Paused"


# --- objects captured from a real 1.36 node -----------------------------------------------------
# tests/data/readiness/real holds, as `kubectl get -o json` printed them, the objects of each failure
# made on the local cluster's real node (tests/integration/test_real_failures.py), at the moment
# wait-ready reported it. Judged `after` seconds past the pod's creation.

REAL = DATA / "real"


def real(name: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads((REAL / f"{name}.json").read_text())
    return obj


def created_plus(obj: dict[str, Any], seconds: float) -> datetime:
    created = parse_time(obj["metadata"]["creationTimestamp"])
    assert created is not None
    return created + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("name", "after", "state", "reason", "words"),
    [
        ("pod-crash-loop", 2, "failed", "CrashLoopBackOff", "container app is in a crash loop (2 failed starts, last exit code 1)"),
        ("pod-never-pull", 1, "failed", "ErrImageNeverPull", 'Container image "envci.local/missing:1" is not present with pull policy of Never'),
        ("pod-image-pull-refused", 10, "progressing", "ErrImagePull", "cannot pull image registry.envci.invalid/shop/web:1: ErrImagePull (failed to pull"),
        ("pod-image-pull-refused", 61, "failed", "ErrImagePull", "connect: connection refused"),
        ("pod-readiness-failing", 600, "progressing", "NotReady", "container app is running but not ready (readiness probe failing?)"),
        ("pod-oomkilled", 5, "failed", "OOMKilled", "(2 failed starts, last exit code 137, OOMKilled at memory limit 16Mi)"),
        ("pod-unschedulable", 10, "progressing", "Unschedulable", "cannot be scheduled: 0/1 nodes are available: 1 Insufficient memory."),
        ("pod-unschedulable", 31, "failed", "Unschedulable", "cannot be scheduled: 0/1 nodes are available: 1 Insufficient memory."),
        ("pod-job-failed", 5, "failed", "Error", "failed: container app exited with code 2"),
        ("pod-init-error", 5, "failed", "CrashLoopBackOff", "init container migrate is in a crash loop (2 failed starts, last exit code 3)"),
        ("pod-init-failed", 5, "failed", "Error", "pod seed failed: init container migrate exited with code 3"),
        ("pod-statefulset-unbound-claim", 31, "failed", "Unschedulable", "pod has unbound immediate PersistentVolumeClaims"),
    ],
)
def test_real_node_pods(name: str, after: float, state: str, reason: str, words: str) -> None:
    pod = real(name)
    v = assess_pod(pod, now=created_plus(pod, after))
    assert (v.state, v.reason, v.pods) == (state, reason, (pod["metadata"]["name"],))
    assert words in v.message


def test_real_node_readiness_probe_quoted_from_its_events() -> None:
    pod = real("pod-readiness-failing")
    v = explain(assess_pod(pod, now=created_plus(pod, 600)), pod, real("events-readiness-failing")["items"])
    assert "container app is running but not ready: Readiness probe failed: Get \"http://" in v.message
    assert v.message.endswith(":8080/ready\": dial tcp " + pod["status"]["podIP"] + ":8080: connect: connection refused")


def test_real_node_failed_job_names_its_pod() -> None:
    job, pod = real("job-backoff-limit-exceeded"), real("pod-job-failed")
    v = assess(job, pods_of(job, [pod]), now=created_plus(pod, 5))
    assert (v.state, v.reason, v.pods) == ("failed", "BackoffLimitExceeded", (pod["metadata"]["name"],))
    assert v.message.endswith(f"pod {pod['metadata']['name']} failed: container app exited with code 2")
    assert log_sources(pod) == [LogSource(pod["metadata"]["name"], "app", previous=False)]


def test_real_node_claim_without_its_storage_class() -> None:
    claim = real("pvc-no-storageclass")
    v = explain(assess(claim, [], now=created_plus(claim, 20)), claim, real("events-pvc-no-storageclass")["items"])
    assert (v.state, v.reason) == ("progressing", "ProvisioningFailed")
    assert v.message.endswith('cannot be provisioned: ProvisioningFailed: storageclass.storage.k8s.io "envci-missing" not found')


@pytest.mark.parametrize(
    ("name", "container", "previous", "init"),
    [("pod-crash-loop", "app", False, False), ("pod-oomkilled", "app", False, False), ("pod-init-error", "migrate", False, True),
     ("pod-init-failed", "migrate", False, True), ("pod-readiness-failing", "app", False, False)],
)
def test_real_node_log_sources(name: str, container: str, previous: bool, init: bool) -> None:
    pod = real(name)
    sources = log_sources(pod)
    assert sources[0] == LogSource(pod["metadata"]["name"], container, previous=previous, init=init)


def test_a_deployment_counted_available_whose_container_just_stopped_is_not_ready_yet() -> None:
    from envci.kube.readiness import assess

    now = datetime(2026, 1, 1, 10, 0, 30, tzinfo=timezone.utc)
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "generation": 1},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}},
           "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1, "readyReplicas": 1}}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "labels": {"app": "web"}},
           "spec": {"containers": [{"name": "app", "resources": {"limits": {"memory": "16Mi"}}}]},
           "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "2026-01-01T10:00:29Z"}],
                      "containerStatuses": [{"name": "app", "ready": False, "restartCount": 0,
                                             "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}}
    verdict = assess(dep, [pod], now=now)
    assert verdict.state == "progressing" and "web-1" in verdict.message  # the controller's 1/1 is stale
    ready_pod = copy.deepcopy(pod)
    ready_pod["status"]["conditions"][0]["status"] = "True"
    ready_pod["status"]["conditions"][0]["lastTransitionTime"] = "2026-01-01T10:00:00Z"
    ready_pod["status"]["containerStatuses"][0].update(ready=True, state={"running": {"startedAt": "2026-01-01T10:00:00Z"}})
    assert assess(dep, [ready_pod], now=now).state == "ready"
