"""suspend, resume and the janitor's --suspend-after on the fake adapter: what is scaled and recorded,
that both converge when run again or after being cut off, that they hold the environment's lock,
and how the other stages treat a suspended environment."""

from __future__ import annotations

import io
import json
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fakekube import FakeKube  # tests/ is on sys.path

from envci import state as st
from envci.config.loader import LoadedConfig, load_config
from envci.errors import ExitCode, InfrastructureError, NotReadyError
from envci.identity import CiContext
from envci.kube.lease import LEASE_NAME
from envci.output import Reporter
from envci.stages.provision import provision
from envci.stages.reap import extend, reap
from envci.stages.status import format_list, list_environments, status
from envci.stages.suspend import resume, suspend, wait_recorded
from envci.stages.wait_ready import wait_ready
from envci.suspension import SUSPENDED_CRONJOB, SUSPENDED_REPLICAS

CONFIG = """\
    name: shop
    components:
      - name: db
        manifests: [k8s/db.yaml]
      - name: web
        manifests: [k8s/web.yaml]
        depends_on: [db]
"""
DB = """\
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 1
  selector: {matchLabels: {app: db}}
  volumeClaimTemplates: [{metadata: {name: data}, spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: db-settings}
data: {size: '1'}
"""
WEB = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec: {replicas: 2, selector: {matchLabels: {app: web}}}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: cleanup}
spec: {schedule: '0 * * * *', jobTemplate: {spec: {template: {spec: {restartPolicy: Never, containers: []}}}}}
"""


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LoadedConfig:
    monkeypatch.setenv("ENVCI_OUTPUT_DIR", str(tmp_path / "out"))
    for var in ("GITHUB_OUTPUT", "GITHUB_ENV"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "db.yaml").write_text(DB)
    (tmp_path / "k8s" / "web.yaml").write_text(WEB)
    (tmp_path / "envci.yaml").write_text(textwrap.dedent(CONFIG))
    return load_config(tmp_path / "envci.yaml", CiContext(system="local"), env_override="pr-1")


def quiet() -> Reporter:
    return Reporter(err=io.StringIO())


def controllers(kube: FakeKube, ns: str) -> None:
    """What the controllers would report once every workload runs as its spec asks."""
    for kind in ("Deployment", "StatefulSet"):
        for obj in kube.list("apps/v1", kind, ns):
            n = obj["spec"].get("replicas", 1)
            kube.set_status(kind, obj["metadata"]["name"], ns, {"replicas": n, "updatedReplicas": n, "availableReplicas": n, "readyReplicas": n})
    kube.add({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data-db-0", "namespace": ns},
              "status": {"phase": "Bound"}}, ns)


def provisioned(cfg: LoadedConfig) -> FakeKube:
    kube = FakeKube()
    provision(cfg, kube, quiet(), clock=kube.utcnow)
    controllers(kube, cfg.identity.namespace)
    kube.calls.clear()
    return kube


def replicas(kube: FakeKube, ns: str) -> dict[str, Any]:
    out: dict[str, Any] = {f"{k}/{o['metadata']['name']}": o["spec"].get("replicas") for k in ("Deployment", "StatefulSet")
                           for o in kube.list("apps/v1", k, ns)}
    out["CronJob/cleanup"] = (kube.get("batch/v1", "CronJob", "cleanup", ns) or {})["spec"].get("suspend", False)
    return out


def annotations(kube: FakeKube, kind: str, name: str, ns: str = "") -> dict[str, str]:
    obj = kube.get("", kind, name, ns) or {}
    return dict(obj["metadata"].get("annotations") or {})


def go_suspend(kube: FakeKube, cfg: LoadedConfig, **kw: Any) -> dict[str, Any]:
    return suspend(kube, quiet(), namespace=cfg.identity.namespace, clock=kube.utcnow, **kw)  # type: ignore[arg-type]


def go_resume(kube: FakeKube, cfg: LoadedConfig, *, wait: bool = True, timeout: timedelta | None = None) -> dict[str, Any]:
    rep = quiet()

    def waiter(name: str, namespace: str) -> dict[str, Any]:
        return wait_recorded(kube, rep, name, namespace, timeout=timeout, clock=kube.utcnow)  # type: ignore[arg-type]

    return resume(kube, rep, namespace=cfg.identity.namespace, wait=waiter if wait else None, clock=kube.utcnow)  # type: ignore[arg-type]


def test_suspend_scales_every_workload_to_zero_records_it_on_each_and_keeps_the_rest(cfg: LoadedConfig) -> None:
    kube = provisioned(cfg)
    ns = cfg.identity.namespace
    res = go_suspend(kube, cfg)
    assert replicas(kube, ns) == {"Deployment/web": 0, "StatefulSet/db": 0, "CronJob/cleanup": True}
    assert annotations(kube, "Deployment", "web", ns)[SUSPENDED_REPLICAS] == "2"
    assert annotations(kube, "StatefulSet", "db", ns)[SUSPENDED_REPLICAS] == "1"
    assert annotations(kube, "CronJob", "cleanup", ns)[SUSPENDED_CRONJOB] == "true"
    assert annotations(kube, "Namespace", ns)["envci.io/suspended-at"] == "2026-01-01T12:00:00Z"
    assert kube.exists("PersistentVolumeClaim", "data-db-0", ns) and kube.exists("ConfigMap", "db-settings", ns)
    assert not any(c.startswith("delete") and "Lease" not in c for c in kube.calls)
    assert res["changed"] and res["state"] == "suspended" and res["suspended_at"] == "2026-01-01T12:00:00Z"
    assert {w["workload"]: w["action"] for w in res["workloads"]} == {
        "Deployment/web": "scaled 2 -> 0", "StatefulSet/db": "scaled 1 -> 0", "CronJob/cleanup": "schedule suspended"}


def test_suspend_holds_the_lock_and_marks_the_namespace_before_scaling_anything(cfg: LoadedConfig) -> None:
    kube = provisioned(cfg)
    go_suspend(kube, cfg)
    assert kube.calls[0] == f"create Lease/{LEASE_NAME}"
    assert kube.calls[1] == f"patch Namespace/{cfg.identity.namespace}"
    assert kube.calls[-1] == f"delete Lease/{LEASE_NAME}"
    assert {"patch Deployment/web", "patch StatefulSet/db", "patch CronJob/cleanup"} <= set(kube.calls)


def test_suspending_a_suspended_environment_changes_nothing_and_says_so(cfg: LoadedConfig) -> None:
    kube = provisioned(cfg)
    first = go_suspend(kube, cfg)
    kube.calls.clear()
    kube.elapsed += 600
    again = go_suspend(kube, cfg)
    assert not again["changed"] and again["workloads"] == []
    assert again["suspended_at"] == first["suspended_at"]
    assert [c for c in kube.calls if "Lease" not in c] == []


def test_a_suspend_cut_off_half_way_is_finished_by_running_it_again(cfg: LoadedConfig) -> None:
    kube = provisioned(cfg)
    ns = cfg.identity.namespace
    real_patch = kube.patch_merge
    patched: list[str] = []

    def patch_then_fail(api_version: str, kind: str, name: str, patch: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        if kind != "Namespace" and patched:
            raise InfrastructureError("Kubernetes API refused to update: connection reset")
        if kind != "Namespace":
            patched.append(name)
        return real_patch(api_version, kind, name, patch, namespace)

    kube.patch_merge = patch_then_fail  # type: ignore[method-assign]
    with pytest.raises(InfrastructureError):
        go_suspend(kube, cfg)
    assert annotations(kube, "Namespace", ns).get("envci.io/suspended-at")  # it shows as suspended, so resume is the way back
    kube.patch_merge = real_patch  # type: ignore[method-assign]
    res = go_suspend(kube, cfg)
    assert res["changed"] and len(res["workloads"]) == 2
    assert replicas(kube, ns) == {"Deployment/web": 0, "StatefulSet/db": 0, "CronJob/cleanup": True}
    assert go_resume(kube, cfg, wait=False)["changed"]
    assert replicas(kube, ns) == {"Deployment/web": 2, "StatefulSet/db": 1, "CronJob/cleanup": False}


def test_resume_restores_what_suspend_recorded_then_waits_until_ready(cfg: LoadedConfig) -> None:
    kube = provisioned(cfg)
    ns = cfg.identity.namespace
    go_suspend(kube, cfg)
    controllers(kube, ns)  # at zero, as the controllers would report
    kube.at(kube.elapsed + 7, lambda k: controllers(k, ns))  # the pods come up seven seconds after the scale-up
    res = go_resume(kube, cfg)
    assert replicas(kube, ns) == {"Deployment/web": 2, "StatefulSet/db": 1, "CronJob/cleanup": False}
    assert SUSPENDED_REPLICAS not in annotations(kube, "Deployment", "web", ns)
    assert SUSPENDED_CRONJOB not in annotations(kube, "CronJob", "cleanup", ns)
    ns_ann = annotations(kube, "Namespace", ns)
    assert "envci.io/suspended-at" not in ns_ann and ns_ann["envci.io/last-activity"] == "2026-01-01T12:00:00Z"
    assert res["ready"] is True and res["seconds"] == 7 and res["state"] == "active"
    assert res["suspended_at"] == "2026-01-01T12:00:00Z" and res["changed"]
    history = [(h["stage"], h["result"]) for h in (st.load(kube, ns) or st.EnvState("", "", "")).history]
    assert history[-3:] == [("suspend", "succeeded"), ("resume", "succeeded"), ("resume", "succeeded")]


def test_resume_that_does_not_become_ready_fails_as_wait_ready_does(cfg: LoadedConfig) -> None:
    kube = provisioned(cfg)
    ns = cfg.identity.namespace
    go_suspend(kube, cfg)
    controllers(kube, ns)  # at zero; nothing brings the pods back
    with pytest.raises(NotReadyError) as ei:
        go_resume(kube, cfg, timeout=timedelta(seconds=30))
    assert ei.value.exit_code == ExitCode.NOT_READY
    failed = {f["workload"]: f["reason"] for f in ei.value.failures}
    assert failed == {"Deployment/web": "Timeout", "StatefulSet/db": "Timeout"}
    assert "not ready within 30s" in ei.value.message
    assert replicas(kube, ns)["Deployment/web"] == 2  # restored all the same: a later wait-ready may see it come up


def test_resume_of_an_environment_that_is_not_suspended_restores_nothing(cfg: LoadedConfig) -> None:
    kube = provisioned(cfg)
    before = annotations(kube, "Namespace", cfg.identity.namespace)
    kube.elapsed += 3600  # a write of the activity mark would show
    res = go_resume(kube, cfg)
    assert not res["changed"] and res["workloads"] == [] and res["ready"] is True
    assert not [c for c in kube.calls if c.split()[1].split("/")[0] in ("Deployment", "StatefulSet", "CronJob")]
    assert annotations(kube, "Namespace", cfg.identity.namespace) == before


def test_resume_without_waiting_returns_at_once(cfg: LoadedConfig) -> None:
    kube = provisioned(cfg)
    go_suspend(kube, cfg)
    res = go_resume(kube, cfg, wait=False)
    assert res["ready"] is None and res["changed"] and kube.elapsed == 0


def test_a_missing_environment_cannot_be_suspended_or_resumed(cfg: LoadedConfig) -> None:
    kube = FakeKube()
    for stage in (go_suspend, go_resume):
        with pytest.raises(NotReadyError) as ei:
            stage(kube, cfg)
        assert "does not exist" in ei.value.message and ei.value.hint


def test_provision_brings_back_an_environment_the_janitor_suspended(cfg: LoadedConfig) -> None:
    kube = provisioned(cfg)
    ns = cfg.identity.namespace
    # What provision does not apply again: a Helm release whose chart and values did not change.
    kube.add({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "labels": {"envci.io/component": "web"}},
              "spec": {"replicas": 3}}, ns)
    go_suspend(kube, cfg)
    assert (kube.get("apps/v1", "Deployment", "api", ns) or {})["spec"]["replicas"] == 0
    provision(cfg, kube, quiet(), clock=kube.utcnow)
    api = kube.get("apps/v1", "Deployment", "api", ns) or {}
    assert api["spec"]["replicas"] == 3 and SUSPENDED_REPLICAS not in api["metadata"].get("annotations", {})
    assert "envci.io/suspended-at" not in annotations(kube, "Namespace", ns)


def test_provision_lists_no_workloads_of_an_environment_that_was_never_suspended(cfg: LoadedConfig) -> None:
    # A runner's role may cover only what its charts make: restoring must not need more of it.
    kube = provisioned(cfg)
    real_list = kube.list

    def forbidden(api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None) -> list[dict[str, Any]]:
        if kind in ("ReplicaSet", "CronJob"):
            raise InfrastructureError(f"Kubernetes API refused to list {kind}: forbidden")
        return real_list(api_version, kind, namespace, label_selector)

    kube.list = forbidden  # type: ignore[method-assign]
    provision(cfg, kube, quiet(), clock=kube.utcnow)


def test_wait_ready_refuses_a_suspended_environment_instead_of_calling_it_ready(cfg: LoadedConfig) -> None:
    kube = provisioned(cfg)
    go_suspend(kube, cfg)
    controllers(kube, cfg.identity.namespace)  # zero of zero replicas: ready, by the rules
    with pytest.raises(NotReadyError) as ei:
        wait_ready(cfg, kube, quiet(), clock=kube.utcnow)  # type: ignore[arg-type]
    assert "is suspended" in ei.value.message and "envci resume" in (ei.value.hint or "")


def test_status_and_list_say_suspended_and_since_when(cfg: LoadedConfig) -> None:
    kube = provisioned(cfg)
    ns = cfg.identity.namespace
    assert [e["state"] for e in list_environments(kube)] == ["active"]
    go_suspend(kube, cfg)
    controllers(kube, ns)
    s = status(kube, namespace=ns)  # type: ignore[arg-type]
    assert s is not None
    assert (s["state"], s["suspended_at"], s["ready"]) == ("suspended", "2026-01-01T12:00:00Z", False)
    envs = list_environments(kube)  # type: ignore[arg-type]
    assert (envs[0]["state"], envs[0]["suspended_at"]) == ("suspended", "2026-01-01T12:00:00Z")
    header, row = format_list(envs).splitlines()
    assert header.split() == ["NAME", "NAMESPACE", "APP", "PR", "STATE", "EXPIRES"]
    assert "suspended" in row.split()


def environments(kube: FakeKube, now: datetime, **last_activity: timedelta) -> None:
    """One namespace per keyword: its idleness as of `now` (a negative one: expired as well)."""
    for name, idle in last_activity.items():
        ann = {"envci.io/last-activity": (now - abs(idle)).strftime("%Y-%m-%dT%H:%M:%SZ"),
               "envci.io/expires-at": (now + (timedelta(hours=-1) if idle < timedelta(0) else timedelta(days=1))).strftime("%Y-%m-%dT%H:%M:%SZ")}
        kube.add({"apiVersion": "v1", "kind": "Namespace",
                  "metadata": {"name": f"envci-{name}", "labels": {"envci.io/managed": "true", "envci.io/env": name}, "annotations": ann}})
        kube.add({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 1}}, f"envci-{name}")


def test_the_janitor_suspends_idle_environments_and_still_deletes_expired_ones() -> None:
    kube = FakeKube()
    now = kube.utcnow()
    environments(kube, now, idle=timedelta(hours=3), busy=timedelta(minutes=5), gone=-timedelta(hours=3))
    res = reap(kube, quiet(), now=now, suspend_after=timedelta(hours=2), sleep=kube.sleep)  # type: ignore[arg-type]
    assert [r["namespace"] for r in res["reaped"]] == ["envci-gone"]
    assert res["suspended"] == [{"namespace": "envci-idle", "reason": "idle since 2026-01-01T09:00:00Z (over 2h)"}]
    assert res["counts"] == {"seen": 3, "kept": 1, "reaped": 1, "suspended": 1}
    assert (kube.get("apps/v1", "Deployment", "web", "envci-idle") or {})["spec"]["replicas"] == 0
    assert (kube.get("apps/v1", "Deployment", "web", "envci-busy") or {})["spec"]["replicas"] == 1
    again = reap(kube, quiet(), now=now + timedelta(hours=1), suspend_after=timedelta(hours=2), sleep=kube.sleep)  # type: ignore[arg-type]
    assert again["suspended"] == [] and again["counts"]["kept"] == 2  # suspended already, busy still within 2h


def test_without_suspend_after_the_janitor_suspends_nothing_and_a_dry_run_changes_nothing() -> None:
    kube = FakeKube()
    now = kube.utcnow()
    environments(kube, now, idle=timedelta(days=3))
    assert reap(kube, quiet(), now=now)["suspended"] == []  # type: ignore[arg-type]
    dry = reap(kube, quiet(), now=now, dry_run=True, suspend_after=timedelta(hours=2))  # type: ignore[arg-type]
    assert [r["namespace"] for r in dry["suspended"]] == ["envci-idle"] and dry["counts"]["would_suspend"] == 1
    assert kube.calls == []


def test_the_janitor_leaves_an_environment_whose_lock_a_stage_holds() -> None:
    kube = FakeKube()
    now = kube.utcnow()
    environments(kube, now, idle=timedelta(hours=3))
    held = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # the lease compares with the real clock
    kube.add({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": LEASE_NAME},
              "spec": {"holderIdentity": "runner/1/test", "leaseDurationSeconds": 30, "acquireTime": held, "renewTime": held}}, "envci-idle")
    res = reap(kube, quiet(), now=now, suspend_after=timedelta(hours=2))  # type: ignore[arg-type]
    assert res["suspended"] == [] and res["failed"] == [] and res["counts"]["in_use"] == 1
    assert (kube.get("apps/v1", "Deployment", "web", "envci-idle") or {})["spec"]["replicas"] == 1


def test_a_suspend_the_janitor_cannot_make_is_a_failure_of_that_environment_only() -> None:
    kube = FakeKube()
    now = kube.utcnow()
    environments(kube, now, a=timedelta(hours=3), b=timedelta(hours=3))

    def flaky(kube_: Any, rep: Reporter, *, namespace: str, **kw: Any) -> dict[str, Any]:
        if namespace == "envci-a":
            raise InfrastructureError("Kubernetes API refused to update Deployment web: forbidden")
        return suspend(kube_, rep, namespace=namespace, **kw)

    res = reap(kube, quiet(), now=now, suspend_after=timedelta(hours=2), suspend_fn=flaky)  # type: ignore[arg-type]
    assert [r["namespace"] for r in res["suspended"]] == ["envci-b"]
    assert res["failed"] == [{"namespace": "envci-a", "reason": "idle since 2026-01-01T09:00:00Z (over 2h)",
                              "error": "Kubernetes API refused to update Deployment web: forbidden", "action": "suspend"}]


def test_the_stages_that_use_an_environment_record_when(cfg: LoadedConfig) -> None:
    kube = provisioned(cfg)
    ns = cfg.identity.namespace
    assert annotations(kube, "Namespace", ns)["envci.io/last-activity"] == "2026-01-01T12:00:00Z"  # provision
    later = kube.utcnow() + timedelta(hours=1)
    extend(kube, quiet(), namespace=ns, name=None, ttl=timedelta(hours=2), now=later)  # type: ignore[arg-type]
    assert annotations(kube, "Namespace", ns)["envci.io/last-activity"] == "2026-01-01T13:00:00Z"
    st.touch(kube, ns, now=later + timedelta(hours=1))  # type: ignore[arg-type]
    assert annotations(kube, "Namespace", ns)["envci.io/last-activity"] == "2026-01-01T14:00:00Z"


def test_a_lost_activity_mark_never_fails_the_stage(cfg: LoadedConfig) -> None:
    kube = provisioned(cfg)
    kube.fail("patch_merge", InfrastructureError("Kubernetes API refused to update Namespace: forbidden"))
    st.touch(kube, cfg.identity.namespace)  # type: ignore[arg-type]


def test_the_cli_prints_the_documented_json(cfg: LoadedConfig, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from envci.cli import main
    from envci.invocation import Invocation

    kube = provisioned(cfg)
    monkeypatch.setattr(Invocation, "kube", lambda self: kube)
    monkeypatch.chdir(cfg.file.parent.parent)  # no envci.yaml here: found by --env, as a stop job would
    argv = ["--env", cfg.identity.name, "--config", "absent.yaml", "-o", "json"]
    assert main(["suspend", *argv]) == ExitCode.OK
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"name", "namespace", "state", "suspended_at", "changed", "workloads", "left_running"}
    assert main(["list", "-o", "json"]) == ExitCode.OK
    assert json.loads(capsys.readouterr().out)["environments"][0]["state"] == "suspended"
    assert main(["status", *argv]) == ExitCode.NOT_READY
    assert json.loads(capsys.readouterr().out)["suspended_at"] == out["suspended_at"]
    assert main(["resume", "--no-wait", *argv]) == ExitCode.OK
    res = json.loads(capsys.readouterr().out)
    assert set(res) == {"name", "namespace", "state", "suspended_at", "changed", "workloads", "skipped", "ready"}
    assert res["ready"] is None and res["workloads"][0] == {"workload": "Deployment/web", "action": "scaled 0 -> 2", "replicas": 2}


def test_seed_and_test_refuse_a_suspended_environment_and_record_activity_otherwise(
    cfg: LoadedConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from envci.seeders.base import StepResult
    from envci.stages import seed as seed_stage
    from envci.stages.test import test

    (tmp_path / "envci.yaml").write_text(textwrap.dedent(CONFIG) + "seed:\n  - exec: [\"true\"]\n    component: web\n")
    cfg = load_config(tmp_path / "envci.yaml", CiContext(system="local"), env_override="pr-1")
    monkeypatch.setattr(seed_stage, "seeder", lambda kind: lambda step, ctx: StepResult(kind, "ran"))
    kube = provisioned(cfg)
    ns = cfg.identity.namespace
    go_suspend(kube, cfg)
    for stage in (lambda: seed_stage.seed(cfg, kube, quiet()), lambda: test(cfg, kube, quiet(), out_dir=tmp_path / "report")):  # type: ignore[arg-type]
        with pytest.raises(NotReadyError) as ei:
            stage()
        assert "is suspended" in ei.value.message
    go_resume(kube, cfg, wait=False)
    kube.patch_merge("v1", "Namespace", ns, {"metadata": {"annotations": {"envci.io/last-activity": "2026-01-01T00:00:00Z"}}})
    seed_stage.seed(cfg, kube, quiet())  # type: ignore[arg-type]
    assert annotations(kube, "Namespace", ns)["envci.io/last-activity"] > "2026-01-01T00:00:00Z"
    kube.patch_merge("v1", "Namespace", ns, {"metadata": {"annotations": {"envci.io/last-activity": "2026-01-01T00:00:00Z"}}})
    test(cfg, kube, quiet(), out_dir=tmp_path / "report", clock=lambda: datetime(2026, 1, 2, tzinfo=timezone.utc))  # type: ignore[arg-type]
    assert annotations(kube, "Namespace", ns)["envci.io/last-activity"] == "2026-01-02T00:00:00Z"
