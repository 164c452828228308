"""wait-ready's own decisions: which component an object belongs to, when it runs out of time, and what
the report says, with the cluster replaced by the fake `Kube` adapter (tests/fakekube.py) holding
fixture objects.
"""

from __future__ import annotations

import copy
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fakekube import FakeKube  # tests/ is on sys.path

from envci.config.loader import LoadedConfig, load_config
from envci.errors import NotReadyError
from envci.identity import CiContext
from envci.kube import readiness
from envci.manifests import COMPONENT_LABEL, OTHER
from envci.output import Reporter
from envci.stages.wait_ready import FIX_WORKLOAD, Item, attribution, decide, failure_hint, judge, wait_ready

DATA = Path(__file__).resolve().parents[1] / "data" / "readiness"
T0 = datetime(2026, 1, 1, 10, 0, 0, tzinfo=timezone.utc)
Obj = dict[str, Any]


def load(name: str) -> Obj:
    obj: Obj = json.loads((DATA / f"{name}.json").read_text())
    return obj


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def labelled(obj: Obj, component: str) -> Obj:
    out = copy.deepcopy(obj)
    out["metadata"].setdefault("labels", {})[COMPONENT_LABEL] = component
    return out


def statefulset_with_claims(ready: int = 2) -> Obj:
    sts = labelled(load("statefulset-ready"), "db")
    sts["spec"]["volumeClaimTemplates"] = [
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
         "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, "storageClassName": "fast-ssd",
                  "volumeMode": "Filesystem"}, "status": {"phase": "Pending"}}
    ]
    sts["status"]["readyReplicas"] = ready
    return sts


def claim() -> Obj:
    """As the StatefulSet controller makes it: the template's labels (none), no owner with the default retention."""
    pvc = load("pvc-pending")
    pvc["spec"]["storageClassName"] = "fast-ssd"
    del pvc["metadata"]["annotations"]
    return pvc


# --- attribution --------------------------------------------------------------------------------


def test_template_claim_belongs_to_its_statefulsets_component() -> None:
    sts = statefulset_with_claims()
    of = attribution([sts, claim()], {})
    assert of(claim()) == "db"


def test_claim_named_like_another_statefulsets_template_is_not_taken() -> None:
    sts = statefulset_with_claims()
    other = claim()
    other["metadata"]["name"] = "data-shop-dbx-0"
    cache = claim()
    cache["metadata"]["name"] = "cache-shop-db-0"
    of = attribution([sts, other, cache], {})
    assert (of(other), of(cache)) == (OTHER, OTHER)


def test_claim_owned_by_a_pod_belongs_to_the_pods_workload() -> None:
    # A generic ephemeral volume: the claim is owned by the pod, the pod by a ReplicaSet of a Deployment.
    dep = labelled(load("deployment-rolling-out"), "web")
    pod = load("pod-ready")
    pvc = claim()
    pvc["metadata"]["name"] = f"{pod['metadata']['name']}-scratch"
    pvc["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "blockOwnerDeletion": True, "controller": True, "kind": "Pod", "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}
    ]
    assert attribution([dep, pvc, pod], {})(pvc) == "web"


def test_job_of_a_cronjob_belongs_to_the_helm_release_of_the_cronjob() -> None:
    cron = load("cronjob")
    cron["metadata"]["annotations"] = {"meta.helm.sh/release-name": "shop-jobs"}
    job = load("job-backoff-limit-exceeded")
    job["metadata"]["labels"] = {"batch.kubernetes.io/job-name": "shop-cleanup-29440560"}
    job["metadata"].pop("annotations", None)
    job["metadata"]["ownerReferences"] = [
        {"apiVersion": "batch/v1", "blockOwnerDeletion": True, "controller": True, "kind": "CronJob", "name": cron["metadata"]["name"],
         "uid": cron["metadata"].get("uid", "")}
    ]
    assert attribution([cron, job], {"shop-jobs": "jobs"})(job) == "jobs"


def test_owner_cycle_ends_in_other() -> None:
    a = {"kind": "ConfigMap", "metadata": {"name": "a", "uid": "1", "ownerReferences": [{"kind": "ConfigMap", "name": "b", "uid": "2", "controller": True}]}}
    b = {"kind": "ConfigMap", "metadata": {"name": "b", "uid": "2", "ownerReferences": [{"kind": "ConfigMap", "name": "a", "uid": "1", "controller": True}]}}
    assert attribution([a, b], {})(a) == OTHER


def test_judge_gives_the_claim_its_creators_component() -> None:
    items = judge([statefulset_with_claims(), claim()], [], {}, now=at(1), rules=readiness.Rules())
    assert [(i.component, i.ref, i.verdict.state) for i in items] == [
        ("db", "StatefulSet/shop-db", "ready"),
        ("db", "PersistentVolumeClaim/data-shop-db-0", "progressing"),
    ]


# --- decide -------------------------------------------------------------------------------------


def item(component: str, state: str, name: str = "x", reason: str = "Pending") -> Item:
    obj = {"kind": "Deployment", "metadata": {"name": name}}
    return Item(component, obj, readiness.Verdict(state, reason, f"Deployment {name}: {state}"))  # type: ignore[arg-type]


DEADLINES = {"db": at(60), "web": at(300)}


def decided(items: list[Item], seconds: float, *, include_other: bool = True, wanted: set[str] | None = None) -> Any:
    return decide(items, wanted={"db", "web"} if wanted is None else wanted, deadlines=DEADLINES, start=T0, now=at(seconds), include_other=include_other)


def test_object_of_no_component_waits_for_the_latest_deadline() -> None:
    items = [item("db", "ready"), item("web", "ready"), item(OTHER, "progressing", "stray")]
    assert decided(items, 1).failed == []
    assert decided(items, 299).failed == []
    out = decided(items, 300).failed
    assert [(i.component, i.verdict.state, i.verdict.reason) for i in out] == [(OTHER, "failed", "Timeout")]
    assert out[0].verdict.message == "not ready within 5m: Deployment stray: progressing"


def test_object_of_no_component_is_not_awaited_for_named_components() -> None:
    items = [item("db", "ready"), item(OTHER, "progressing", "stray")]
    d = decided(items, 400, include_other=False, wanted={"db"})
    assert (d.failed, d.ready, [i.ref for i in d.items]) == ([], True, ["Deployment/x"])


def test_object_of_no_component_without_any_deadline_is_not_awaited() -> None:
    d = decide([item(OTHER, "progressing")], wanted=set(), deadlines={}, start=T0, now=at(1), include_other=True)
    assert (d.failed, d.ready, d.items) == ([], True, [])


@pytest.mark.parametrize(("seconds", "timed_out"), [(59, []), (60, ["db"]), (300, ["db", "web"])])
def test_each_component_has_its_own_deadline(seconds: float, timed_out: list[str]) -> None:
    d = decided([item("db", "progressing"), item("web", "progressing")], seconds)
    assert [i.component for i in d.failed] == timed_out
    assert not d.ready


def test_timed_out_keeps_a_specific_reason() -> None:
    d = decided([item("db", "progressing", reason="ImagePullBackOff")], 60)
    assert d.failed[0].verdict.reason == "ImagePullBackOff"
    assert d.failed[0].verdict.message.startswith("not ready within 1m: ")


def test_failure_brings_the_components_other_unready_objects_along() -> None:
    items = [item("db", "failed", "sts"), item("db", "progressing", "claim"), item("db", "ready", "svc"), item("web", "progressing", "web")]
    d = decided(items, 30)
    assert [i.obj["metadata"]["name"] for i in d.failed] == ["sts"]
    assert [i.obj["metadata"]["name"] for i in d.related] == ["claim"]


def test_component_without_objects_is_missing_only_after_its_deadline() -> None:
    assert decided([item("web", "ready")], 59).missing == []
    assert not decided([item("web", "ready")], 59).ready
    assert decided([item("web", "ready")], 60).missing == ["db"]


def test_ready_when_every_counted_object_is_ready() -> None:
    assert decided([item("db", "ready"), item("web", "ready"), item(OTHER, "ready")], 1).ready


# --- the stage, on a fake cluster ---------------------------------------------------------------


def cluster(cfg: LoadedConfig, objects: list[Obj], pods: list[Obj], events: list[Obj],
            logs: dict[tuple[str, str, bool], str] | None = None) -> FakeKube:
    """The environment's namespace on the fake adapter, holding fixture objects; waiting moves its clock."""
    kube = FakeKube(start=T0)
    ns = cfg.identity.namespace
    kube.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    for obj in objects + pods + events:
        kube.add(obj, ns)
    kube.logs.update(logs or {})
    return kube


@pytest.fixture
def cfg(tmp_path: Path) -> LoadedConfig:
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "db.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    (tmp_path / "envci.yaml").write_text("name: shop\ncomponents:\n  - name: db\n    manifests: [k8s/db.yaml]\n    wait: {timeout: 60s}\n")
    return load_config(tmp_path / "envci.yaml", CiContext(system="local"), env_override="unit")


def run(cfg: LoadedConfig, kube: FakeKube) -> tuple[NotReadyError, str]:
    err = io.StringIO()
    with pytest.raises(NotReadyError) as ei:
        wait_ready(cfg, kube, Reporter(err=err), clock=kube.utcnow)  # type: ignore[arg-type]
    return ei.value, err.getvalue()


def test_pending_claim_of_no_label_times_out_with_its_reason_instead_of_crashing(cfg: LoadedConfig) -> None:
    kube = cluster(cfg, [statefulset_with_claims(), claim()], [], load("events-pvc-no-storageclass")["items"])
    e, progress = run(cfg, kube)
    assert kube.utcnow() >= at(60)  # the component's own deadline, not the first look
    failure = e.failures[0]
    assert (failure["component"], failure["workload"], failure["reason"]) == ("db", "PersistentVolumeClaim/data-shop-db-0", "ProvisioningFailed")
    assert 'storageclass.storage.k8s.io "fast-ssd" not found' in failure["message"]
    assert failure["events"] == ['PersistentVolumeClaim/data-shop-db-0: ProvisioningFailed: storageclass.storage.k8s.io "fast-ssd" not found']
    assert "db/PersistentVolumeClaim/data-shop-db-0 progressing" in progress


def test_unschedulable_statefulset_reports_its_claim_alongside(cfg: LoadedConfig) -> None:
    sts = statefulset_with_claims(ready=0)
    pod = load("pod-unschedulable")
    pod["metadata"].update(name="shop-db-0", labels={"app.kubernetes.io/name": "db", "app.kubernetes.io/instance": "shop"},
                           ownerReferences=[{"apiVersion": "apps/v1", "controller": True, "kind": "StatefulSet", "name": "shop-db", "uid": sts["metadata"]["uid"]}])
    pod["status"]["conditions"][0]["message"] = "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    kube = cluster(cfg, [sts, claim()], [pod], load("events-pvc-no-storageclass")["items"])
    e, _ = run(cfg, kube)
    assert [(f["workload"], f["reason"], bool(f.get("related"))) for f in e.failures] == [
        ("StatefulSet/shop-db", "Unschedulable", False),
        ("PersistentVolumeClaim/data-shop-db-0", "ProvisioningFailed", True),
    ]
    assert "not ready either, in the same component:" in e.message
    assert kube.log_reads == []  # a pod that never ran has no logs to read


def test_crash_loop_fails_on_first_sight_with_the_crashed_instances_log(cfg: LoadedConfig) -> None:
    dep = labelled(load("deployment-rolling-out"), "db")
    pod = load("pod-crash-error")
    # Backing off after its second crash: the current instance waits, the crashed one is the previous.
    pod["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}
    logs = {("web-7c5ddbdf54-c4r7s", "app", True): "starting\nfatal: DATABASE_URL is not set\n"}
    kube = cluster(cfg, [dep], [pod], [], logs)
    e, _ = run(cfg, kube)
    assert kube.utcnow() == T0  # no waiting: the second failed start decides
    assert kube.log_reads == [("web-7c5ddbdf54-c4r7s", "app", True)]
    failure = e.failures[0]
    assert failure["reason"] == "CrashLoopBackOff" and "(2 failed starts, last exit code 1)" in failure["message"]
    assert failure["logs"] == {"web-7c5ddbdf54-c4r7s container app (the instance that crashed)": logs[("web-7c5ddbdf54-c4r7s", "app", True)]}
    assert "      | fatal: DATABASE_URL is not set" in e.message


def test_failing_readiness_probe_is_quoted_at_the_deadline(cfg: LoadedConfig) -> None:
    dep = labelled(load("deployment-rolling-out"), "db")
    pod = load("pod-readiness-failing")
    kube = cluster(cfg, [dep], [pod], load("events-readiness-failing")["items"], {("web-7c5ddbdf54-r9q4w", "app", False): "listening on :8080"})
    e, _ = run(cfg, kube)
    failure = e.failures[0]
    assert failure["reason"] == "NotReady"
    assert failure["message"].startswith("not ready within 1m: Deployment web: ")
    assert failure["message"].endswith("container app is running but not ready: Readiness probe failed: HTTP probe failed with statuscode: 503")
    assert kube.log_reads == [("web-7c5ddbdf54-r9q4w", "app", False)]


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull"])
def test_an_image_the_node_cannot_get_is_answered_with_how_to_load_it(reason: str) -> None:
    hint = failure_hint(["CrashLoopBackOff", reason])
    assert "envci cluster load-image ARCHIVE" in hint and "kind load docker-image" in hint and hint.endswith(FIX_WORKLOAD)


def test_other_failures_keep_the_general_hint() -> None:
    assert failure_hint(["CrashLoopBackOff", "Unschedulable"]) == FIX_WORKLOAD


def test_a_load_balancer_with_no_controller_is_answered_with_clusterip_instead() -> None:
    hint = failure_hint(["NoLoadBalancerAddress"])
    assert "no load-balancer controller" in hint and "`type: ClusterIP`" in hint and "`expose:`" in hint
    assert hint.endswith(FIX_WORKLOAD)
