"""suspend and resume on the real node, through the CLI as a person or the janitor runs them: the pods
go, the claims and the data on them stay, and resume (or the next provision, after the janitor
suspended it) brings the environment back ready with its data.

The app is two workloads of the locally built busybox image, each writing to a volume of its own: a
Deployment with a claim of its own and a StatefulSet with a claim from its volumeClaimTemplates (the
host-path provisioner of the local cluster gives both real directories), plus a CronJob.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from envci.errors import ExitCode
from envci.kube.client import Kube, connect

pytestmark = pytest.mark.cluster

IMAGE = "envci.local/busybox:1"


def container(mount: str) -> dict[str, Any]:
    return {
        "name": "app", "image": IMAGE, "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", "sleep 3600"],
        "volumeMounts": [{"name": "data", "mountPath": mount}],
        # Ready only once the volume is mounted and writable: what a database would need.
        "readinessProbe": {"exec": {"command": ["sh", "-c", f"touch {mount}/.probe"]}, "periodSeconds": 1},
    }


def manifests() -> list[dict[str, Any]]:
    claim = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}}
    pod = {"terminationGracePeriodSeconds": 1}
    return [
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "web-data"}, "spec": claim},
        {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {
                "replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "strategy": {"type": "Recreate"},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                    **pod, "containers": [container("/data")],
                    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "web-data"}}]}},
            },
        },
        {
            "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
            "spec": {
                "replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}}, "spec": {**pod, "containers": [container("/var/lib/db")]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": claim}],
            },
        },
        {
            "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly"},
            "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {
                **pod, "restartPolicy": "Never", "containers": [{"name": "job", "image": IMAGE, "command": ["true"]}]}}}}},
        },
    ]


@dataclass(frozen=True)
class App:
    workdir: Path
    name: str
    namespace: str
    env: dict[str, str]
    kube: Kube

    def envci(self, command: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        which = [] if command in ("list", "reap") else ["--env", self.name]
        return subprocess.run(
            [sys.executable, "-m", "envci.cli", command, *which, *args],
            cwd=self.workdir, env=self.env, capture_output=True, text=True, check=False, timeout=timeout,
        )

    def json(self, command: str, *args: str, code: int = ExitCode.OK) -> dict[str, Any]:
        done = self.envci(command, *args, "--output", "json")
        assert done.returncode == code, f"envci {command} exited {done.returncode}:\n{done.stderr[-3000:]}"
        out: dict[str, Any] = json.loads(done.stdout)
        return out

    def pods(self) -> list[dict[str, Any]]:
        return self.kube.pods(self.namespace)

    def running_pod(self, app: str) -> str:
        found = [p["metadata"]["name"] for p in self.pods()
                 if (p["metadata"].get("labels") or {}).get("app") == app and (p.get("status") or {}).get("phase") == "Running"
                 and not p["metadata"].get("deletionTimestamp")]
        assert len(found) == 1, f"running pods of {app}: {found}"
        return found[0]

    def sh(self, app: str, script: str) -> str:
        res = self.kube.exec(self.namespace, self.running_pod(app), ["sh", "-c", script], container="app", timeout=30)
        assert res.finished and (res.status or {}).get("status") == "Success", f"{script}: {res.status} {res.output}"
        return res.output


@pytest.fixture
def app(real_kubeconfig: str, tmp_path: Path) -> Iterator[App]:
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "app.yaml").write_text(yaml.safe_dump_all(manifests()))
    (tmp_path / "envci.yaml").write_text(yaml.safe_dump({
        "name": "susp", "ttl": "1h",
        "components": [{"name": "app", "manifests": ["k8s/app.yaml"], "wait": {"timeout": "3m"}}],
    }))
    name = f"susp-real-{secrets.token_hex(3)}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENVCI_", "GITHUB_", "CI_", "GITLAB_"))}
    env.update(KUBECONFIG=real_kubeconfig, ENVCI_OUTPUT_DIR=str(tmp_path / "out"))
    a = App(tmp_path, name, f"envci-{name}", env, connect(real_kubeconfig))
    try:
        for stage in ("provision", "wait-ready"):
            done = a.envci(stage)
            assert done.returncode == ExitCode.OK, f"envci {stage} failed:\n{done.stderr[-3000:]}"
        yield a
    finally:
        a.envci("teardown")


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def test_suspend_stops_every_pod_keeps_the_volumes_and_resume_brings_the_data_back(app: App) -> None:
    token = secrets.token_hex(8)
    app.sh("web", f"echo web-{token} > /data/greeting")
    app.sh("db", f"echo db-{token} > /var/lib/db/rows")
    claims_before = {c["metadata"]["name"]: c["spec"]["volumeName"] for c in app.kube.list("v1", "PersistentVolumeClaim", app.namespace)}
    assert set(claims_before) == {"web-data", "data-db-0"}

    suspended = app.json("suspend")
    assert suspended["changed"] and suspended["state"] == "suspended"
    assert {w["workload"]: w["replicas"] for w in suspended["workloads"] if "replicas" in w} == {"Deployment/web": 1, "StatefulSet/db": 1}
    wait_until(lambda: not app.pods(), 60, "every pod of the suspended environment to go")
    claims = {c["metadata"]["name"]: c for c in app.kube.list("v1", "PersistentVolumeClaim", app.namespace)}
    assert {n: c["spec"]["volumeName"] for n, c in claims.items()} == claims_before  # the same volumes, not new ones
    assert all(c["status"]["phase"] == "Bound" for c in claims.values())
    assert (app.kube.get("batch/v1", "CronJob", "nightly", app.namespace) or {})["spec"]["suspend"] is True

    status = app.json("status", code=ExitCode.NOT_READY)
    assert (status["state"], status["suspended_at"]) == ("suspended", suspended["suspended_at"])
    listed = {e["name"]: e for e in app.json("list", "--app", "susp")["environments"]}
    assert listed[app.name]["state"] == "suspended"
    again = app.json("suspend")
    assert not again["changed"] and again["suspended_at"] == suspended["suspended_at"]
    refused = app.envci("wait-ready", "--timeout", "10s")
    assert refused.returncode == ExitCode.NOT_READY and "is suspended" in refused.stderr

    resumed = app.json("resume", "--timeout", "3m")
    assert resumed["ready"] is True and resumed["changed"] and resumed["suspended_at"] == suspended["suspended_at"]
    assert {w["workload"]: w["action"] for w in resumed["workloads"]} == {
        "Deployment/web": "scaled 0 -> 1", "StatefulSet/db": "scaled 0 -> 1", "CronJob/nightly": "schedule resumed"}
    assert app.sh("web", "cat /data/greeting").strip() == f"web-{token}"
    assert app.sh("db", "cat /var/lib/db/rows").strip() == f"db-{token}"
    after = app.json("status")
    assert (after["state"], after["suspended_at"], after["ready"]) == ("active", None, True)
    assert (app.kube.get("batch/v1", "CronJob", "nightly", app.namespace) or {})["spec"]["suspend"] is False


def test_the_janitor_suspends_an_idle_environment_and_the_next_provision_brings_it_back(app: App) -> None:
    token = secrets.token_hex(8)
    app.sh("db", f"echo db-{token} > /var/lib/db/rows")
    idle_since = (datetime.now(timezone.utc) - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    app.kube.patch_merge("v1", "Namespace", app.namespace, {"metadata": {"annotations": {"envci.io/last-activity": idle_since}}})

    swept = app.json("reap", "--app", "susp", "--suspend-after", "2h")
    assert {s["namespace"] for s in swept["suspended"]} == {app.namespace} and swept["reaped"] == [] and swept["failed"] == []
    wait_until(lambda: not app.pods(), 60, "every pod of the environment the janitor suspended to go")
    assert app.json("reap", "--app", "susp", "--suspend-after", "2h")["suspended"] == []  # suspended already

    # A new push to the pull request: its pipeline provisions again, knowing nothing of the janitor.
    for stage in ("provision", "wait-ready"):
        done = app.envci(stage)
        assert done.returncode == ExitCode.OK, f"envci {stage} failed:\n{done.stderr[-3000:]}"
    assert app.sh("db", "cat /var/lib/db/rows").strip() == f"db-{token}"
    after = app.json("status")
    assert (after["state"], after["ready"]) == ("active", True)
    assert after["last_activity"] > idle_since
