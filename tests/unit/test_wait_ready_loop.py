"""wait-ready's loop on the fake adapter: it wakes on changes, and decides ready, not ready, or out
of time, in simulated seconds."""

from __future__ import annotations

import copy
import io
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from fakekube import FakeKube  # tests/ is on sys.path

from envci import state as st
from envci.config.loader import LoadedConfig, load_config
from envci.errors import NotReadyError
from envci.identity import CiContext
from envci.manifests import COMPONENT_LABEL
from envci.output import Reporter
from envci.stages.wait_ready import wait_ready

DATA = Path(__file__).resolve().parents[1] / "data" / "readiness"
START = datetime(2026, 1, 1, 10, 0, 10, tzinfo=timezone.utc)  # just after the fixtures' own times


def fixture(name: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text())
    return obj


def deployment(available: int, replicas: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "generation": 1, "labels": {COMPONENT_LABEL: "web"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}},
        "status": {"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
                   "availableReplicas": available, "readyReplicas": available},
    }


@pytest.fixture
def cfg(tmp_path: Path) -> LoadedConfig:
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "web.yaml").write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n")
    (tmp_path / "envci.yaml").write_text("name: shop\ncomponents:\n  - name: web\n    manifests: [k8s/web.yaml]\n    wait: {timeout: 60s}\n")
    return load_config(tmp_path / "envci.yaml", CiContext(system="local"), env_override="unit")


def environment(cfg: LoadedConfig, *objects: dict[str, Any]) -> FakeKube:
    kube = FakeKube(start=START)
    ns = cfg.identity.namespace
    kube.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"envci.io/managed": "true"}}})
    st.save(kube, st.EnvState(name=cfg.identity.name, namespace=ns, app="shop"))  # type: ignore[arg-type]
    for obj in objects:
        kube.add(obj, ns)
    return kube


def crash_looping(cfg: LoadedConfig) -> FakeKube:
    """An environment whose Deployment's pod is in CrashLoopBackOff, its crashed instance's log saying why."""
    dep = copy.deepcopy(fixture("deployment-rolling-out"))
    dep["metadata"]["labels"][COMPONENT_LABEL] = "web"
    pod = fixture("pod-crash-error")
    pod["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}
    kube = environment(cfg, dep, pod)
    kube.logs[(pod["metadata"]["name"], "app", True)] = "fatal: DATABASE_URL is not set\n"
    return kube


def wait(cfg: LoadedConfig, kube: FakeKube) -> dict[str, Any]:
    return wait_ready(cfg, kube, Reporter(err=io.StringIO()), clock=kube.utcnow)  # type: ignore[arg-type]


def last_record(kube: FakeKube, cfg: LoadedConfig) -> dict[str, str]:
    state = st.load(kube, cfg.identity.namespace)  # type: ignore[arg-type]
    assert state is not None
    return state.history[-1]


def test_ready_at_first_look_needs_no_waiting(cfg: LoadedConfig) -> None:
    kube = environment(cfg, deployment(available=2))
    out = wait(cfg, kube)
    assert out["ready"] and out["seconds"] == 0 and kube.elapsed == 0
    assert out["workloads"] == [{"component": "web", "workload": "Deployment/web", "state": "ready"}]
    assert (last_record(kube, cfg)["stage"], last_record(kube, cfg)["result"]) == ("wait-ready", "succeeded")


def test_it_wakes_when_the_workload_becomes_ready(cfg: LoadedConfig) -> None:
    kube = environment(cfg, deployment(available=0))
    kube.at(13, lambda k: k.set_status("Deployment", "web", cfg.identity.namespace, deployment(available=2)["status"]))
    out = wait(cfg, kube)
    assert out["ready"] and out["seconds"] == 13 and kube.elapsed == 13


def test_a_workload_status_that_follows_its_pod_is_seen_within_moments_not_at_the_next_watch(cfg: LoadedConfig) -> None:
    kube = environment(cfg, deployment(available=1))
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "labels": {"app": "web"}},
           "spec": {"containers": [{"name": "app", "readinessProbe": {"httpGet": {"port": 80}}}]},
           "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T10:00:14Z"}],
                      "containerStatuses": [{"name": "app", "ready": True, "restartCount": 0,
                                             "state": {"running": {"startedAt": "2026-01-01T10:00:13Z"}}}]}}
    kube.at(5, lambda k: k.add(pod, cfg.identity.namespace))  # a pod event wakes the watch
    kube.at(5.3, lambda k: k.set_status("Deployment", "web", cfg.identity.namespace, deployment(available=2)["status"]), wakes=False)
    out = wait(cfg, kube)
    assert out["ready"] and 5.3 <= kube.elapsed <= 5.5  # not 7: the next watch would end two seconds on


def test_a_crash_loop_is_not_ready_at_once_without_waiting_for_the_deadline(cfg: LoadedConfig) -> None:
    kube = crash_looping(cfg)
    with pytest.raises(NotReadyError) as ei:
        wait(cfg, kube)
    assert kube.elapsed == 0
    assert [(f["workload"], f["reason"]) for f in ei.value.failures] == [("Deployment/web", "CrashLoopBackOff")]
    assert "fatal: DATABASE_URL is not set" in ei.value.message and ei.value.exit_code == 3
    assert last_record(kube, cfg)["result"] == "failed"


def test_still_progressing_at_the_deadline_is_a_timeout(cfg: LoadedConfig) -> None:
    kube = environment(cfg, deployment(available=1))
    with pytest.raises(NotReadyError) as ei:
        wait(cfg, kube)
    assert 60 <= kube.elapsed <= 62  # the component's own timeout, reached by waiting, not by polling past it
    (failure,) = ei.value.failures
    assert failure["reason"] == "Timeout" and failure["message"].startswith("not ready within 1m: Deployment web: 1/2 replicas available")


def test_a_component_with_no_workloads_by_its_deadline_is_named(cfg: LoadedConfig) -> None:
    kube = environment(cfg)
    with pytest.raises(NotReadyError, match="no workloads found for web"):
        wait(cfg, kube)
    assert kube.elapsed >= 60


def test_an_environment_that_does_not_exist_is_not_ready(cfg: LoadedConfig) -> None:
    with pytest.raises(NotReadyError, match="does not exist") as ei:
        wait(cfg, FakeKube(start=START))
    assert "envci provision" in (ei.value.hint or "")


def running_pod(ready: bool) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "readinessProbe": {"httpGet": {"port": 80}}}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": str(ready), "lastTransitionTime": "2026-01-01T10:00:14Z"}],
                       "containerStatuses": [{"name": "app", "ready": ready, "restartCount": 0,
                                              "state": {"running": {"startedAt": "2026-01-01T10:00:13Z"}}}]}}


def test_a_kind_that_appears_during_the_wait_is_judged_as_soon_as_it_appears(cfg: LoadedConfig) -> None:
    kube = environment(cfg, deployment(available=2))
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data-web-0", "labels": {COMPONENT_LABEL: "web"}},
             "spec": {}, "status": {"phase": "Pending"}}
    pending = running_pod(ready=False)
    kube.add(pending, cfg.identity.namespace)  # not ready yet: the wait goes on
    kube.at(0.5, lambda k: k.add(claim, cfg.identity.namespace), wakes=False)
    kube.at(1, lambda k: k.add(running_pod(ready=True), cfg.identity.namespace))
    with pytest.raises(NotReadyError) as ei:
        wait(cfg, kube)
    assert "PersistentVolumeClaim/data-web-0" in ei.value.message  # seen, though it appeared after the first read


def test_provisions_wait_for_a_dependency_writes_nothing(cfg: LoadedConfig) -> None:
    from envci.stages.wait_ready import wait_for_dependency

    kube = environment(cfg, deployment(available=2))
    before = (list(kube.calls), st.load(kube, cfg.identity.namespace))  # type: ignore[arg-type]
    wait_for_dependency(cfg, kube, Reporter(err=io.StringIO()), ["web"])  # type: ignore[arg-type]
    assert (kube.calls, st.load(kube, cfg.identity.namespace)) == before  # type: ignore[arg-type]  # provision records the outcome


def test_a_dependency_that_fails_fails_provisions_wait_with_its_reason(cfg: LoadedConfig) -> None:
    from envci.stages.wait_ready import wait_for_dependency

    kube = crash_looping(cfg)
    with pytest.raises(NotReadyError) as ei:
        wait_for_dependency(cfg, kube, Reporter(err=io.StringIO()), ["web"])  # type: ignore[arg-type]
    assert [f["reason"] for f in ei.value.failures] == ["CrashLoopBackOff"]
