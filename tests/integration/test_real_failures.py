"""Failures made on the local cluster's real node (kubelet, containerd, runc): wait-ready must stop with
exit code 3, call the failure by its name and show the kubelet's own words or the container's last
log line, as a user would see them.

Every case runs in a namespace of its own, made from the environment's identity so wait-ready finds
it, labelled created-by=envci-tests and deleted afterwards. Only the locally built busybox image is
used; nothing is pulled. Grace periods are shortened through `Rules` where a case would otherwise
wait out a default meant for slow registries or autoscalers: what is tested is the verdict, never
how long it took.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from envci.config.loader import LoadedConfig, load_config
from envci.errors import ExitCode, NotReadyError
from envci.identity import CiContext
from envci.kube import readiness
from envci.kube.client import Kube, connect
from envci.manifests import COMPONENT_LABEL
from envci.output import Reporter
from envci.stages.wait_ready import wait_ready

IMAGE = "envci.local/busybox:1"
CREATED_BY = {"created-by": "envci-tests"}
SHORT = readiness.Rules(image_pull_grace=timedelta(seconds=3), unschedulable_grace=timedelta(seconds=2))


@dataclass
class Env:
    cfg: LoadedConfig
    kube: Kube
    namespace: str

    def apply(self, obj: dict[str, Any]) -> None:
        obj.setdefault("metadata", {}).setdefault("labels", {})[COMPONENT_LABEL] = "app"
        self.kube.apply(obj, self.namespace)

    def wait(self, timeout: str = "90s", rules: readiness.Rules = SHORT) -> NotReadyError:
        """Run wait-ready; it must fail. Returns the error, whose text is what the user reads."""
        seconds = int(timeout.rstrip("s"))
        with pytest.raises(NotReadyError) as ei:
            wait_ready(self.cfg, self.kube, Reporter(), timeout=timedelta(seconds=seconds), rules=rules)
        assert ei.value.exit_code == ExitCode.NOT_READY
        return ei.value


@pytest.fixture
def env(real_kubeconfig: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Env]:
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "app.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: placeholder}\n")
    (tmp_path / "envci.yaml").write_text("name: rf\ncomponents:\n  - name: app\n    manifests: [k8s/app.yaml]\n    wait: {timeout: 90s}\n")
    suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5))
    slug = request.node.name.removeprefix("test_").replace("_", "-")[:30].rstrip("-")
    cfg = load_config(tmp_path / "envci.yaml", CiContext(system="local"), env_override=f"{slug}-{suffix}")
    kube = connect(real_kubeconfig)
    ns = cfg.identity.namespace
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": dict(CREATED_BY)}}, None)
    try:
        yield Env(cfg, kube, ns)
    finally:
        kube.delete("v1", "Namespace", ns)


def container(command: str, **extra: Any) -> dict[str, Any]:
    return {"name": "app", "image": IMAGE, "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", command], **extra}


def deployment(name: str, pod_spec: dict[str, Any]) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"terminationGracePeriodSeconds": 1, **pod_spec}},
        },
    }


def test_crash_loop_fails_fast_with_exit_code_and_the_crashed_instances_log(env: Env) -> None:
    env.apply(deployment("web", {"containers": [container("echo starting; echo 'fatal: DATABASE_URL is not set'; exit 1")]}))
    e = env.wait(timeout="300s")
    f = e.failures[0]
    assert (f["workload"], f["reason"]) == ("Deployment/web", "CrashLoopBackOff")
    # Decided by the failed-starts rule, not by running into the 300s deadline.
    assert not f["message"].startswith("not ready within")
    assert "is in a crash loop" in f["message"] and "last exit code 1" in f["message"]
    assert "fatal: DATABASE_URL is not set" in str(e)


def test_image_never_pulled(env: Env) -> None:
    pod = container("sleep 3600", image="envci.local/missing:1", imagePullPolicy="Never")
    env.apply(deployment("web", {"containers": [pod]}))
    e = env.wait()
    f = e.failures[0]
    assert f["reason"] == "ErrImageNeverPull"
    assert "envci cluster load-image ARCHIVE" in (e.hint or "")
    assert 'Container image "envci.local/missing:1" is not present with pull policy of Never' in f["message"]


def test_image_that_cannot_be_pulled_names_the_image_and_the_kubelets_message(env: Env) -> None:
    pod = container("sleep 3600", image="registry.envci.invalid/shop/web:1", imagePullPolicy="Always")
    env.apply(deployment("web", {"containers": [pod]}))
    e = env.wait()
    f = e.failures[0]
    assert f["reason"] in {"ErrImagePull", "ImagePullBackOff"}
    assert "load it into the nodes" in (e.hint or "")
    assert f"cannot pull image registry.envci.invalid/shop/web:1: {f['reason']} (" in f["message"]
    assert "registry.envci.invalid/shop/web:1" in f["message"].partition(f"{f['reason']} (")[2]  # the kubelet's own message


def test_failing_readiness_probe_is_quoted_at_the_deadline(env: Env) -> None:
    probe = {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 1, "failureThreshold": 1}
    env.apply(deployment("web", {"containers": [container("echo 'listening nowhere'; sleep 3600", readinessProbe=probe)]}))
    e = env.wait(timeout="15s")
    f = e.failures[0]
    assert f["reason"] == "NotReady" and f["message"].startswith("not ready within 15s: ")
    assert "container app is running but not ready: Readiness probe failed: " in f["message"]
    assert "connect: connection refused" in f["message"]
    assert "listening nowhere" in str(e)


def test_oom_killed_names_the_memory_limit(env: Env) -> None:
    hog = container("echo filling; dd if=/dev/zero of=/dev/null bs=64M count=1", resources={"limits": {"memory": "16Mi"}})
    env.apply(deployment("web", {"containers": [hog]}))
    f = env.wait(timeout="300s").failures[0]
    assert f["reason"] == "OOMKilled"
    assert "last exit code 137, OOMKilled at memory limit 16Mi" in f["message"]


def test_unschedulable_quotes_the_scheduler(env: Env) -> None:
    big = container("sleep 3600", resources={"requests": {"memory": "100Ti"}})
    env.apply(deployment("web", {"containers": [big]}))
    f = env.wait().failures[0]
    assert f["reason"] == "Unschedulable"
    assert "cannot be scheduled: 0/1 nodes are available: 1 Insufficient memory." in f["message"]


def test_failing_job_shows_the_failed_pods_log(env: Env) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "migrate"},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {"restartPolicy": "Never", "containers": [container("echo 'migrate: relation users does not exist'; exit 2")]}},
        },
    }
    env.apply(job)
    e = env.wait(timeout="120s")
    f = e.failures[0]
    assert (f["workload"], f["reason"]) == ("Job/migrate", "BackoffLimitExceeded")
    assert "exited with code 2" in f["message"]
    assert "migrate: relation users does not exist" in str(e)


def init_container(command: str) -> dict[str, Any]:
    return {**container(command), "name": "migrate"}


def test_failing_init_container_of_a_restarting_pod(env: Env) -> None:
    spec = {"initContainers": [init_container("echo 'migrate: cannot reach db:5432'; exit 3")], "containers": [container("sleep 3600")]}
    env.apply(deployment("web", spec))
    e = env.wait(timeout="300s")
    f = e.failures[0]
    assert f["reason"] == "CrashLoopBackOff" and not f["message"].startswith("not ready within")
    assert "init container migrate is in a crash loop" in f["message"] and "last exit code 3" in f["message"]
    assert "migrate: cannot reach db:5432" in str(e)


def test_failing_init_container_of_a_pod_that_is_not_restarted(env: Env) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "seed"},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "initContainers": [init_container("echo 'seed: users.csv not found'; exit 3")],
            "containers": [container("sleep 3600")],
        },
    }
    env.apply(pod)
    e = env.wait(timeout="120s")
    f = e.failures[0]
    assert f["workload"] == "Pod/seed"
    assert "pod seed failed: init container migrate exited with code 3" in f["message"]
    assert "seed: users.csv not found" in str(e)


def test_statefulset_claim_with_a_missing_storage_class(env: Env) -> None:
    labels = {"app.kubernetes.io/name": "db"}
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 1,
            "serviceName": "db",
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container("sleep 3600", volumeMounts=[{"name": "data", "mountPath": "/data"}])]}},
            "volumeClaimTemplates": [
                {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "envci-missing",
                                                        "resources": {"requests": {"storage": "1Gi"}}}}
            ],
        },
    }
    env.apply(sts)
    e = env.wait(timeout="20s")
    by_workload = {f["workload"]: f for f in e.failures}
    claim = by_workload["PersistentVolumeClaim/data-db-0"]
    assert claim["component"] == "app"  # the StatefulSet's, though the claim carries no label
    assert claim["reason"] == "ProvisioningFailed"
    assert 'storageclass.storage.k8s.io "envci-missing" not found' in claim["message"]
    assert "internal error" not in str(e)
