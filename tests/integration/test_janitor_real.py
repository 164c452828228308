"""The janitor chart on the real node: its CronJob, run at once, reaps an expired environment and keeps
one that has not expired.

Both environments are made by `envci provision`, as a pipeline makes them; only their `ttl` differs.
The sweep is a real container started by the kubelet from the envci image built from this tree, and
it talks to the API server as the chart's ServiceAccount through the `kubernetes` Service, so the
chart's RBAC, the image and envci's in-cluster configuration are all on trial. The sweep is limited
to this test's app (`--app`): other tests' environments on the same cluster are never touched.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from envci import __version__
from envci.errors import ExitCode
from envci.images.definitions import image_named
from envci.stages.reap import expiry_of

pytestmark = pytest.mark.cluster

CHART = Path(__file__).resolve().parents[2] / "charts" / "envci-janitor"
IMAGE = image_named(f"envci.local/envci:{__version__}").name
NODE = "envci-node"
JOB_TIMEOUT = 180

CONFIG = """\
name: {app}
ttl: {ttl}
components:
  - name: settings
    manifests: [k8s/settings.yaml]
  - name: cache
    helm: {{chart: ./chart}}
"""


@dataclass(frozen=True)
class Pipeline:
    """Runs envci's CLI as a CI job would, against the real-node cluster."""

    workdir: Path
    kubeconfig: str
    env: dict[str, str]

    def envci(self, *args: str, config: str = "envci.yaml") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "envci.cli", *args, "--config", config, "--kubeconfig", self.kubeconfig],
            cwd=self.workdir, env=self.env, capture_output=True, text=True, check=False, timeout=300,
        )

    def tool(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """helm or kubectl (the builds on PATH), with the real cluster's kubeconfig."""
        return subprocess.run(
            [*args, "--kubeconfig", self.kubeconfig], env=self.env, capture_output=True, text=True, check=False, timeout=timeout
        )


@pytest.fixture(scope="module")
def envci_image(real_kubeconfig: str) -> str:
    """The envci image built from this tree and on the node; re-imported when the source has changed
    since the node last got it (the tag stays the same)."""
    if os.environ.get("ENVCI_TEST_KUBECONFIG"):
        pytest.skip("the envci image is loaded into the local cluster's node only; ENVCI_TEST_KUBECONFIG names another cluster")
    return IMAGE  # built from this tree and imported by `real_kubeconfig` with the project's other images


@pytest.fixture
def pipeline(real_kubeconfig: str, tmp_path: Path) -> Pipeline:
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "settings.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: test}\n")
    (tmp_path / "chart" / "templates").mkdir(parents=True)
    (tmp_path / "chart" / "Chart.yaml").write_text("apiVersion: v2\nname: cache\nversion: 0.1.0\n")
    (tmp_path / "chart" / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '{{ .Release.Name }}-config'}\ndata: {size: '1'}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ENVCI_", "GITHUB_", "CI_", "GITLAB_", "JENKINS_", "BUILD_"))}
    env.pop("KUBECONFIG", None)
    return Pipeline(tmp_path, real_kubeconfig, env)


@pytest.fixture
def environments(pipeline: Pipeline, real_namespace: str) -> Iterator[dict[str, str]]:
    """Two environments of one app, provisioned by envci: `expired` (ttl 1s) and `kept` (ttl 4h).
    Returns their namespaces; both are torn down afterwards, whatever the janitor did."""
    app = f"jr{real_namespace[-5:]}"
    envs = {"expired": (f"{app}-old", "1s"), "kept": (f"{app}-new", "4h")}
    try:
        namespaces = {}
        for role, (name, ttl) in envs.items():
            config = f"envci-{role}.yaml"
            (pipeline.workdir / config).write_text(CONFIG.format(app=app, ttl=ttl))
            done = pipeline.envci("provision", "--env", name, config=config)
            assert done.returncode == ExitCode.OK, f"envci provision {name} failed:\n{done.stderr[-3000:]}"
            namespaces[role] = f"envci-{name}"
        yield {"app": app, **namespaces}
    finally:
        for role, (name, _) in envs.items():
            pipeline.envci("teardown", "--env", name, config=f"envci-{role}.yaml")


def _expires_at(ns: client.V1Namespace) -> datetime:
    """The expiry provision recorded, read as the janitor reads it."""
    expiry = expiry_of({"metadata": {"annotations": ns.metadata.annotations}})
    assert expiry is not None, f"namespace {ns.metadata.name} records no expiry: {ns.metadata.annotations}"
    return expiry


def _wait_for_job(batch: client.BatchV1Api, namespace: str, name: str) -> client.V1Job:
    """Until the Job has completed or failed."""
    w = watch.Watch()
    try:
        for event in w.stream(batch.list_namespaced_job, namespace, field_selector=f"metadata.name={name}", timeout_seconds=JOB_TIMEOUT):
            job = event["object"]
            done = {c.type for c in (job.status.conditions or []) if c.status == "True"} & {"Complete", "Failed"}
            if done:
                return job
    finally:
        w.stop()
    return batch.read_namespaced_job(name, namespace)


def _gone(core: client.CoreV1Api, namespace: str, timeout: float = 60) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            core.read_namespace(namespace)
        except ApiException as e:
            if e.status == 404:
                return True
            raise
        time.sleep(0.5)
    return False


def _describe(pipeline: Pipeline, namespace: str) -> str:
    """What a person would look at when the janitor's run failed: pods, events and the log."""
    out = []
    for args in (("get", "pods", "-o", "wide"), ("get", "events", "--sort-by=.lastTimestamp"), ("logs", "--tail=60", "-l", "app.kubernetes.io/name=envci-janitor")):
        done = pipeline.tool("kubectl", "-n", namespace, *args)
        out.append(f"$ kubectl {' '.join(args)}\n{done.stdout}{done.stderr}")
    return "\n".join(out)[-6000:]


def test_the_janitor_reaps_an_expired_environment_from_a_pod_on_the_real_node(
    envci_image: str, pipeline: Pipeline, environments: dict[str, str], real_namespace: str, real_api_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(real_api_client)
    batch = client.BatchV1Api(real_api_client)
    rbac = client.RbacAuthorizationV1Api(real_api_client)
    expired, kept = environments["expired"], environments["kept"]

    # Wait out the 1 s ttl as provision recorded it (bounded: the janitor, not this loop, decides).
    deadline = time.monotonic() + 10
    while _expires_at(core.read_namespace(expired)) >= datetime.now(timezone.utc) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _expires_at(core.read_namespace(kept)) > datetime.now(timezone.utc)

    release = f"janitor-{real_namespace[-5:]}"
    repository, tag = envci_image.rsplit(":", 1)
    installed = pipeline.tool(
        "helm", "install", release, str(CHART), "-n", real_namespace,
        "--set", f"image.repository={repository}", "--set", f"image.tag={tag}", "--set", "image.pullPolicy=Never",
        "--set", f"args={{--app,{environments['app']}}}", "--wait", "--timeout", "60s",
    )
    assert installed.returncode == 0, installed.stderr
    try:
        job = f"{release}-now"
        created = pipeline.tool("kubectl", "-n", real_namespace, "create", "job", job, f"--from=cronjob/{release}")
        assert created.returncode == 0, created.stderr
        finished = _wait_for_job(batch, real_namespace, job)
        if finished.status.succeeded != 1:
            pytest.fail(f"the janitor's Job did not succeed:\n{_describe(pipeline, real_namespace)}")

        [pod] = core.list_namespaced_pod(real_namespace, label_selector=f"job-name={job}").items
        assert pod.spec.node_name == NODE and pod.spec.service_account_name == release
        [status] = pod.status.container_statuses
        assert status.container_id.startswith("containerd://"), status.container_id
        assert status.image.endswith(envci_image) and status.state.terminated.exit_code == 0
        node = core.read_node(NODE)
        assert node.status.node_info.container_runtime_version.startswith("containerd://")

        log = core.read_namespaced_pod_log(pod.metadata.name, real_namespace)  # served by the kubelet
        assert f"reaping {expired}: expired at" in log, log
        assert "helm release cache goes with the namespace" in log, log  # its records read in the pod, as the ServiceAccount
        assert f"reaped {expired}: expired at" in log, log
        assert kept not in log and "warning:" not in log and "error:" not in log, log

        assert _gone(core, expired), f"{expired} still exists after the janitor reaped it"
        still = core.read_namespace(kept)
        assert still.status.phase == "Active" and still.metadata.deletion_timestamp is None
        assert core.read_namespaced_config_map("cache-config", kept).data == {"size": "1"}
    finally:
        uninstalled = pipeline.tool("helm", "uninstall", release, "-n", real_namespace, "--wait", "--timeout", "60s")
    assert uninstalled.returncode == 0, uninstalled.stderr
    # The chart's cluster-scoped objects go with the release.
    for read in (rbac.read_cluster_role, rbac.read_cluster_role_binding):
        with pytest.raises(ApiException) as e:
            read(release)
        assert e.value.status == 404
