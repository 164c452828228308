"""The demo app on the real node, stage by stage through the CLI as a pipeline runs it.

Its pods are real containers that the kubelet started; its test suites pass against the seeded app;
and once every workload is scaled to zero they fail, so they really touch the app rather than
reporting success on their own.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client

from envci.errors import ExitCode

pytestmark = pytest.mark.cluster

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo"


@dataclass(frozen=True)
class Demo:
    workdir: Path
    name: str
    namespace: str
    env: dict[str, str]

    def envci(self, stage: str, *args: str, timeout: float = 420) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "envci.cli", stage, "--env", self.name, *args],
            cwd=self.workdir, env=self.env, capture_output=True, text=True, check=False, timeout=timeout,
        )


@pytest.fixture(scope="module")
def demo(real_kubeconfig: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The demo provisioned, ready and seeded in an environment of its own; torn down afterwards."""
    workdir = tmp_path_factory.mktemp("demo") / "demo"
    shutil.copytree(DEMO, workdir, ignore=shutil.ignore_patterns("envci-report", "reports", "__pycache__"))
    name = f"demo-real-{secrets.token_hex(3)}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENVCI_", "GITHUB_", "CI_", "GITLAB_"))}
    env.update(KUBECONFIG=real_kubeconfig, DEMO_DB_PASSWORD=secrets.token_hex(12))
    d = Demo(workdir, name, f"envci-{name}", env)
    try:
        for stage in ("provision", "wait-ready", "seed"):
            done = d.envci(stage)
            assert done.returncode == ExitCode.OK, f"envci {stage} failed:\n{done.stderr[-3000:]}"
        yield d
    finally:
        d.envci("teardown")


def test_the_demo_pods_are_containers_the_kubelet_started(demo: Demo, real_api_client: client.ApiClient) -> None:
    pods = client.CoreV1Api(real_api_client).list_namespaced_pod(demo.namespace).items
    running = [p for p in pods if p.status.phase == "Running"]
    components = {(p.metadata.labels or {}).get("app") for p in running}
    assert {"db", "api", "web"} <= components, f"running pods: {[p.metadata.name for p in running]}"
    for pod in running:
        assert pod.spec.node_name == "envci-node", f"{pod.metadata.name} is on {pod.spec.node_name}"
        assert pod.status.pod_ip and pod.status.pod_ip.startswith("198.18."), pod.status.pod_ip
        for status in pod.status.container_statuses:
            assert status.container_id.startswith("containerd://"), status.container_id
            assert status.ready and status.state.running and status.state.running.started_at
    claims = client.CoreV1Api(real_api_client).list_namespaced_persistent_volume_claim(demo.namespace).items
    assert [(c.metadata.name, c.status.phase) for c in claims] == [("data-db-0", "Bound")], "the database keeps its data on a volume"


def test_the_tests_pass_on_the_app_and_fail_once_it_is_scaled_to_zero(demo: Demo, real_api_client: client.ApiClient) -> None:
    passed = demo.envci("test", "--no-publish", "--output", "json")
    assert passed.returncode == ExitCode.OK, passed.stderr[-3000:]
    result = json.loads(passed.stdout)
    assert {s["name"]: s["outcome"] for s in result["suites"]} == {"api": "passed", "smoke": "passed"}, result
    assert result["counts"]["passed"] >= 5 and result["counts"]["failed"] == result["counts"]["errors"] == 0, result

    apps = client.AppsV1Api(real_api_client)
    for d in apps.list_namespaced_deployment(demo.namespace).items:
        apps.patch_namespaced_deployment_scale(d.metadata.name, demo.namespace, {"spec": {"replicas": 0}})
    for s in apps.list_namespaced_stateful_set(demo.namespace).items:
        apps.patch_namespaced_stateful_set_scale(s.metadata.name, demo.namespace, {"spec": {"replicas": 0}})
    core = client.CoreV1Api(real_api_client)
    deadline = time.monotonic() + 120
    while [p for p in core.list_namespaced_pod(demo.namespace).items if not (p.metadata.labels or {}).get("job-name")]:
        assert time.monotonic() < deadline, "the demo's pods did not go away after scaling to zero"
        time.sleep(1)

    failed = demo.envci("test", "--no-publish", "--output", "json")
    assert failed.returncode == ExitCode.TESTS_FAILED, f"exit {failed.returncode}\n{failed.stderr[-3000:]}"
    result = json.loads(failed.stdout)
    outcomes = {s["name"]: s["outcome"] for s in result["suites"]}
    assert outcomes["api"] != "passed" and outcomes["smoke"] != "passed", result
