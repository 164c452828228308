"""What suspend and resume decide, as pure functions: which workloads to scale and what to record,
what comes back and how, and when the janitor calls an environment idle."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from envci.errors import ExitCode, NotReadyError
from envci.suspension import (
    SUSPENDED_CRONJOB,
    SUSPENDED_REPLICAS,
    last_activity,
    plan_resume,
    plan_suspend,
    refuse_suspended,
    state_of,
    suspend_reason,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


def workload(kind: str, name: str, *, replicas: int | None = 1, annotations: dict[str, str] | None = None,
             owner: str | None = None, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "annotations": dict(annotations or {})}
    if owner:
        meta["ownerReferences"] = [{"kind": owner, "name": "x", "controller": True, "uid": "u"}]
    body: dict[str, Any] = dict(spec)
    if replicas is not None:
        body["replicas"] = replicas
    return {"apiVersion": "batch/v1" if kind in ("CronJob", "Job") else "apps/v1", "kind": kind, "metadata": meta, "spec": body}


def cronjob(name: str, *, suspend: bool | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"schedule": "*/5 * * * *"}
    if suspend is not None:
        spec["suspend"] = suspend
    return workload("CronJob", name, replicas=None, annotations=annotations, **spec)


def by_ref(plan_changes: list[Any]) -> dict[str, Any]:
    return {c.ref: c for c in plan_changes}


def test_suspend_scales_each_kind_to_zero_and_records_its_replicas_on_it() -> None:
    plan = plan_suspend([
        workload("Deployment", "web", replicas=3),
        workload("StatefulSet", "db", replicas=1),
        workload("ReplicaSet", "bare", replicas=2),
        cronjob("nightly"),
    ])
    changes = by_ref(plan.changes)
    assert changes["Deployment/web"].patch == {"metadata": {"annotations": {SUSPENDED_REPLICAS: "3"}}, "spec": {"replicas": 0}}
    assert changes["StatefulSet/db"].patch["metadata"]["annotations"] == {SUSPENDED_REPLICAS: "1"}
    assert changes["ReplicaSet/bare"].replicas == 2
    assert changes["CronJob/nightly"].patch == {"metadata": {"annotations": {SUSPENDED_CRONJOB: "true"}}, "spec": {"suspend": True}}
    assert changes["Deployment/web"].api_version == "apps/v1" and changes["CronJob/nightly"].api_version == "batch/v1"
    assert [c.as_dict() for c in plan.changes][0] == {"workload": "Deployment/web", "action": "scaled 3 -> 0", "replicas": 3}


def test_replicas_left_out_of_the_spec_are_recorded_as_the_api_servers_default_of_one() -> None:
    (change,) = plan_suspend([workload("Deployment", "web", replicas=None)]).changes
    assert change.patch["metadata"]["annotations"][SUSPENDED_REPLICAS] == "1"


def test_a_replicaset_a_deployment_controls_is_left_to_its_deployment() -> None:
    plan = plan_suspend([workload("ReplicaSet", "web-5d8f", replicas=2, owner="Deployment")])
    assert plan.changes == [] and plan.left_running == []


def test_what_is_at_zero_or_suspended_already_is_left_as_it_is() -> None:
    plan = plan_suspend([
        workload("Deployment", "suspended", replicas=0, annotations={SUSPENDED_REPLICAS: "2"}),
        workload("Deployment", "was-at-zero", replicas=0),
        cronjob("ours", suspend=True, annotations={SUSPENDED_CRONJOB: "true"}),
        cronjob("paused-by-someone", suspend=True),
    ])
    assert plan.changes == []


def test_a_record_left_from_an_earlier_suspend_is_replaced_by_the_replicas_now() -> None:
    # Provisioned anew (or scaled by hand) since: what runs now is what resume must bring back.
    (change,) = plan_suspend([workload("Deployment", "web", replicas=4, annotations={SUSPENDED_REPLICAS: "2"})]).changes
    assert change.patch["metadata"]["annotations"][SUSPENDED_REPLICAS] == "4"


def test_a_statefulset_whose_claims_go_when_scaled_down_keeps_running() -> None:
    policy = {"whenScaled": "Delete", "whenDeleted": "Retain"}
    plan = plan_suspend([workload("StatefulSet", "db", replicas=1, persistentVolumeClaimRetentionPolicy=policy)])
    assert plan.changes == []
    assert plan.left_running == [{"workload": "StatefulSet/db", "reason": plan.left_running[0]["reason"]}]
    assert "would delete its volumes" in plan.left_running[0]["reason"]


def test_what_cannot_be_scaled_is_reported_as_running_and_not_touched() -> None:
    plan = plan_suspend([
        {"kind": "DaemonSet", "metadata": {"name": "agent"}, "spec": {}},
        {"kind": "Job", "metadata": {"name": "migrate"}, "status": {"active": 1}},
        {"kind": "Job", "metadata": {"name": "done"}, "status": {"succeeded": 1}},
        {"kind": "Pod", "metadata": {"name": "debug"}, "status": {"phase": "Running"}},
        {"kind": "Pod", "metadata": {"name": "web-1", "ownerReferences": [{"kind": "ReplicaSet", "controller": True}]},
         "status": {"phase": "Running"}},
    ])
    assert plan.changes == []
    assert [x["workload"] for x in plan.left_running] == ["DaemonSet/agent", "Job/migrate", "Pod/debug"]


def test_resume_restores_the_recorded_replicas_and_removes_the_record_in_the_same_patch() -> None:
    plan = plan_resume([
        workload("Deployment", "web", replicas=0, annotations={SUSPENDED_REPLICAS: "3"}),
        cronjob("nightly", suspend=True, annotations={SUSPENDED_CRONJOB: "true"}),
        workload("Deployment", "untouched", replicas=0),
        cronjob("paused-by-someone", suspend=True),
    ])
    changes = by_ref(plan.changes)
    assert set(changes) == {"Deployment/web", "CronJob/nightly"}
    assert changes["Deployment/web"].patch == {"metadata": {"annotations": {SUSPENDED_REPLICAS: None}}, "spec": {"replicas": 3}}
    assert changes["CronJob/nightly"].patch == {"metadata": {"annotations": {SUSPENDED_CRONJOB: None}}, "spec": {"suspend": False}}


def test_a_record_the_deployment_controller_copied_onto_its_replicasets_is_not_resumed() -> None:
    # Seen on the real node: a Deployment's annotations reach its ReplicaSets, old revisions too.
    copied = {SUSPENDED_REPLICAS: "1"}
    plan = plan_resume([
        workload("Deployment", "web", replicas=0, annotations=copied),
        workload("ReplicaSet", "web-new", replicas=0, annotations=copied, owner="Deployment"),
        workload("ReplicaSet", "web-old", replicas=0, annotations=copied, owner="Deployment"),
        workload("ReplicaSet", "bare", replicas=0, annotations={SUSPENDED_REPLICAS: "2"}),
    ])
    assert {c.ref: c.replicas for c in plan.changes} == {"Deployment/web": 1, "ReplicaSet/bare": 2}


def test_a_workload_scaled_up_meanwhile_keeps_its_replicas_and_loses_only_the_record() -> None:
    (change,) = plan_resume([workload("StatefulSet", "db", replicas=2, annotations={SUSPENDED_REPLICAS: "1"})]).changes
    assert change.patch == {"metadata": {"annotations": {SUSPENDED_REPLICAS: None}}}
    assert change.replicas == 2


@pytest.mark.parametrize("raw", ["three", "-1", ""])
def test_a_record_edited_into_nonsense_is_reported_and_left_for_a_person(raw: str) -> None:
    plan = plan_resume([workload("Deployment", "web", replicas=0, annotations={SUSPENDED_REPLICAS: raw})])
    assert plan.changes == []
    assert plan.skipped[0]["workload"] == "Deployment/web" and repr(raw) in plan.skipped[0]["reason"]


def test_suspend_then_resume_gives_back_what_ran() -> None:
    before = [workload("Deployment", "web", replicas=3), workload("StatefulSet", "db", replicas=1), cronjob("nightly", suspend=False)]
    after_suspend = [apply(o, plan_suspend(before).changes) for o in before]
    assert [o["spec"].get("replicas") for o in after_suspend] == [0, 0, None] and after_suspend[2]["spec"]["suspend"] is True
    after_resume = [apply(o, plan_resume(after_suspend).changes) for o in after_suspend]
    assert [o["spec"] for o in after_resume] == [o["spec"] for o in before]
    assert all(not o["metadata"]["annotations"] for o in after_resume)


def apply(obj: dict[str, Any], changes: list[Any]) -> dict[str, Any]:
    from fakekube import merge_patch  # tests/ is on sys.path

    change = next((c for c in changes if c.ref == f"{obj['kind']}/{obj['metadata']['name']}"), None)
    out: dict[str, Any] = merge_patch(obj, change.patch) if change else obj
    return out


def namespace(annotations: dict[str, str] | None = None, *, deleting: bool = False, created: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "envci-x", "annotations": dict(annotations or {})}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T11:00:00Z"
    if created:
        meta["creationTimestamp"] = created
    return {"metadata": meta}


def test_the_state_of_an_environment() -> None:
    assert state_of(namespace()) == "active"
    assert state_of(namespace({"envci.io/suspended-at": "2026-01-01T10:00:00Z"})) == "suspended"
    assert state_of(namespace({"envci.io/suspended-at": "2026-01-01T10:00:00Z"}, deleting=True)) == "terminating"


def test_last_activity_falls_back_to_creation_when_not_recorded() -> None:
    assert last_activity(namespace({"envci.io/last-activity": "2026-01-01T11:00:00Z", "envci.io/created-at": "2026-01-01T09:00:00Z"})) \
        == datetime(2026, 1, 1, 11, tzinfo=timezone.utc)
    assert last_activity(namespace({"envci.io/created-at": "2026-01-01T09:00:00Z"})) == datetime(2026, 1, 1, 9, tzinfo=timezone.utc)
    assert last_activity(namespace({"envci.io/last-activity": "soon"}, created="2026-01-01T08:00:00Z")) \
        == datetime(2026, 1, 1, 8, tzinfo=timezone.utc)
    assert last_activity(namespace()) is None


def test_the_janitor_suspends_what_has_been_idle_that_long_and_nothing_else() -> None:
    two_hours = timedelta(hours=2)
    idle = namespace({"envci.io/last-activity": "2026-01-01T09:59:59Z"})
    assert suspend_reason(idle, NOW, two_hours) == "idle since 2026-01-01T09:59:59Z (over 2h)"
    assert suspend_reason(namespace({"envci.io/last-activity": "2026-01-01T10:00:01Z"}), NOW, two_hours) is None
    assert suspend_reason(namespace({"envci.io/last-activity": "2026-01-01T09:00:00Z", "envci.io/suspended-at": "x"}), NOW, two_hours) is None
    assert suspend_reason(namespace({"envci.io/last-activity": "2026-01-01T09:00:00Z"}, deleting=True), NOW, two_hours) is None
    assert suspend_reason(namespace(), NOW, two_hours) is None  # unknown idleness: never on a guess


def test_a_stage_that_needs_the_environment_running_refuses_a_suspended_one_with_the_way_back() -> None:
    refuse_suspended(namespace(), "shop-pr-1")
    with pytest.raises(NotReadyError) as ei:
        refuse_suspended(namespace({"envci.io/suspended-at": "2026-01-01T10:00:00Z"}), "shop-pr-1")
    assert ei.value.exit_code == ExitCode.NOT_READY
    assert "shop-pr-1 is suspended (since 2026-01-01T10:00:00Z)" in ei.value.message
    assert "envci resume --env shop-pr-1" in (ei.value.hint or "")
