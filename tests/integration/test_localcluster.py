"""The local cluster behaves like a real one where envci depends on it.

Workloads converge through the real controllers, namespaces finalize, Helm installs and uninstalls,
and each simulated fault reports the pod status a kubelet would, with Kubernetes' own reason strings.
"""

from __future__ import annotations

import os
import shutil
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from envci.localcluster import spec

pytestmark = pytest.mark.cluster

CHART = Path(__file__).parent.parent / "data" / "charts" / "hello"
IMAGE = "busybox:1.36"
T = TypeVar("T")

needs_local_cluster = pytest.mark.skipif(
    bool(os.environ.get("ENVCI_TEST_KUBECONFIG")), reason="simulated faults, logs and port-forward need the local kwok cluster"
)


# --- helpers ------------------------------------------------------------------------------------------

def watch_until(list_fn: Callable[..., Any], namespace: str, name: str, ok: Callable[[Any], bool], timeout: int = 30) -> Any:
    """The first version of an object that satisfies `ok`; a watch, so no sleeping between checks."""
    w = watch.Watch()
    last = None
    for event in w.stream(list_fn, namespace, field_selector=f"metadata.name={name}", timeout_seconds=timeout):
        last = event["object"]
        if event["type"] != "DELETED" and ok(last):
            w.stop()
            return last
    raise AssertionError(f"{namespace}/{name}: condition not met within {timeout}s; last seen: {last and last.status}")


def poll_until(fn: Callable[[], T | None], timeout: float = 15, interval: float = 0.2, what: str = "condition") -> T:
    """For what cannot be watched (a subprocess' answer): retry until truthy, with a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(interval)


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False)


def labels(name: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"app": name, **(extra or {})}


def pod_template(name: str, extra_labels: dict[str, str] | None = None, restart: str = "Always") -> client.V1PodTemplateSpec:
    return client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels=labels(name, extra_labels)),
        spec=client.V1PodSpec(restart_policy=restart, containers=[client.V1Container(name="app", image=IMAGE)]),
    )


def make_deployment(apps: client.AppsV1Api, ns: str, name: str, replicas: int) -> None:
    apps.create_namespaced_deployment(ns, client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(replicas=replicas, selector=client.V1LabelSelector(match_labels=labels(name)), template=pod_template(name)),
    ))


def make_job(batch: client.BatchV1Api, ns: str, name: str, extra_labels: dict[str, str] | None = None) -> None:
    batch.create_namespaced_job(ns, client.V1Job(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1JobSpec(backoff_limit=0, template=pod_template(name, extra_labels, restart="Never")),
    ))


def make_pod(core: client.CoreV1Api, ns: str, name: str, extra_labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> None:
    core.create_namespaced_pod(ns, client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels(name, extra_labels), annotations=annotations),
        spec=client.V1PodSpec(containers=[client.V1Container(name="app", image=IMAGE)]),
    ))


def condition(obj: Any, kind: str) -> Any:
    return next((c for c in (obj.status.conditions or []) if c.type == kind), None)


def is_true(obj: Any, kind: str) -> bool:
    c = condition(obj, kind)
    return c is not None and c.status == "True"


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def apps(api_client: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api_client)


@pytest.fixture
def batch(api_client: client.ApiClient) -> client.BatchV1Api:
    return client.BatchV1Api(api_client)


# --- workloads ------------------------------------------------------------------------------------------

def test_namespace_fixture_is_fresh_and_labelled(core: client.CoreV1Api, namespace: str) -> None:
    assert namespace.startswith("t-namespace-fixture-is-fresh-and-labelled-") and len(namespace) <= 63
    ns = core.read_namespace(namespace)
    assert ns.metadata.labels["created-by"] == "envci-tests"


def test_deployment_with_three_replicas_becomes_available(apps: client.AppsV1Api, namespace: str) -> None:
    make_deployment(apps, namespace, "web", 3)
    dep = watch_until(apps.list_namespaced_deployment, namespace, "web", lambda d: (d.status.available_replicas or 0) == 3)
    assert is_true(dep, "Available") and dep.status.ready_replicas == 3


def test_job_completes(batch: client.BatchV1Api, namespace: str) -> None:
    make_job(batch, namespace, "migrate")
    job = watch_until(batch.list_namespaced_job, namespace, "migrate", lambda j: is_true(j, "Complete"))
    assert job.status.succeeded == 1


def test_statefulset_becomes_ready(apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_service(namespace, client.V1Service(
        metadata=client.V1ObjectMeta(name="db"),
        spec=client.V1ServiceSpec(cluster_ip="None", selector=labels("db"), ports=[client.V1ServicePort(port=5432)]),
    ))
    apps.create_namespaced_stateful_set(namespace, client.V1StatefulSet(
        metadata=client.V1ObjectMeta(name="db"),
        spec=client.V1StatefulSetSpec(service_name="db", replicas=2, selector=client.V1LabelSelector(match_labels=labels("db")), template=pod_template("db")),
    ))
    sts = watch_until(apps.list_namespaced_stateful_set, namespace, "db", lambda s: (s.status.ready_replicas or 0) == 2)
    assert sts.status.current_replicas == 2
    assert {p.metadata.name for p in core.list_namespaced_pod(namespace).items} == {"db-0", "db-1"}


@needs_local_cluster
def test_statefulset_with_volume_claims_binds_and_becomes_ready(apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str) -> None:
    claim = client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="data"),
        spec=client.V1PersistentVolumeClaimSpec(access_modes=["ReadWriteOnce"], resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"})),
    )
    apps.create_namespaced_stateful_set(namespace, client.V1StatefulSet(
        metadata=client.V1ObjectMeta(name="pg"),
        spec=client.V1StatefulSetSpec(service_name="pg", replicas=1, selector=client.V1LabelSelector(match_labels=labels("pg")), template=pod_template("pg"), volume_claim_templates=[claim]),
    ))
    watch_until(apps.list_namespaced_stateful_set, namespace, "pg", lambda s: (s.status.ready_replicas or 0) == 1)
    pvc = core.read_namespaced_persistent_volume_claim("data-pg-0", namespace)
    assert pvc.status.phase == "Bound" and pvc.spec.storage_class_name == "kwok-volume"


def test_namespace_with_workloads_is_deleted_completely(api_client: client.ApiClient, core: client.CoreV1Api, apps: client.AppsV1Api, batch: client.BatchV1Api) -> None:
    name = f"t-ns-delete-{os.urandom(3).hex()}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={"created-by": "envci-tests"})))
    try:
        poll_until(lambda: _has_default_sa(core, name), what="default ServiceAccount")
        make_deployment(apps, name, "web", 2)
        make_job(batch, name, "seed")
        core.create_namespaced_config_map(name, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="settings"), data={"a": "b"}))
        watch_until(apps.list_namespaced_deployment, name, "web", lambda d: (d.status.available_replicas or 0) == 2)

        core.delete_namespace(name)
        gone = threading.Event()
        w = watch.Watch()
        for event in w.stream(core.list_namespace, field_selector=f"metadata.name={name}", timeout_seconds=60):
            if event["type"] == "DELETED":
                gone.set()
                w.stop()
        assert gone.is_set(), f"namespace {name} still exists after 60s: {core.read_namespace(name).status}"
    finally:
        try:
            core.delete_namespace(name)
        except ApiException as e:
            assert e.status == 404


def _has_default_sa(core: client.CoreV1Api, ns: str) -> bool:
    try:
        core.read_namespaced_service_account("default", ns)
        return True
    except ApiException:
        return False


def test_helm_install_and_uninstall_a_local_chart(apps: client.AppsV1Api, core: client.CoreV1Api, kubeconfig: str, namespace: str) -> None:
    helm = shutil.which("helm")
    assert helm and "envci" in helm, f"the fixture puts the built helm first on PATH, got {helm}"
    installed = run("helm", "install", "hello", str(CHART), "-n", namespace, "--wait", "--timeout", "60s", timeout=90)
    assert installed.returncode == 0, installed.stderr
    dep = apps.read_namespaced_deployment("hello", namespace)
    assert dep.status.available_replicas == 2
    assert core.read_namespaced_config_map("hello", namespace).data == {"message": "hello from envci"}

    removed = run("helm", "uninstall", "hello", "-n", namespace, "--wait", "--timeout", "60s", timeout=90)
    assert removed.returncode == 0, removed.stderr
    assert run("helm", "list", "-n", namespace, "-q").stdout.strip() == ""
    assert apps.list_namespaced_deployment(namespace).items == []
    assert [c.metadata.name for c in core.list_namespaced_config_map(namespace).items] == ["kube-root-ca.crt"]


# --- simulated faults ------------------------------------------------------------------------------------

def simulated_pod(core: client.CoreV1Api, ns: str, fault: str, ok: Callable[[Any], bool], annotations: dict[str, str] | None = None) -> Any:
    name = f"p-{fault}"
    make_pod(core, ns, name, {spec.SIMULATE_LABEL: fault}, annotations)
    return watch_until(core.list_namespaced_pod, ns, name, ok)


def only_container(pod: Any) -> Any:
    (status,) = pod.status.container_statuses
    return status


def waiting_reason(pod: Any) -> str | None:
    statuses = pod.status.container_statuses or []
    return statuses[0].state.waiting.reason if statuses and statuses[0].state.waiting else None


@needs_local_cluster
def test_crashloop_reports_crash_loop_back_off(core: client.CoreV1Api, namespace: str) -> None:
    pod = simulated_pod(core, namespace, "crashloop", lambda p: waiting_reason(p) is not None)
    c = only_container(pod)
    assert pod.status.phase == "Running" and condition(pod, "Ready").status == "False"
    assert c.state.waiting.reason == "CrashLoopBackOff"
    assert c.state.waiting.message.startswith("back-off 40s restarting failed container=app pod=p-crashloop_")
    assert c.restart_count > 0 and c.ready is False
    assert (c.last_state.terminated.exit_code, c.last_state.terminated.reason) == (1, "Error")


@needs_local_cluster
@pytest.mark.parametrize("fault, reason", [("imagepull", "ImagePullBackOff"), ("errimagepull", "ErrImagePull")])
def test_image_pull_failure_stays_pending(core: client.CoreV1Api, namespace: str, fault: str, reason: str) -> None:
    pod = simulated_pod(core, namespace, fault, lambda p: waiting_reason(p) is not None)
    c = only_container(pod)
    assert pod.status.phase == "Pending" and condition(pod, "Ready").reason == "ContainersNotReady"
    assert c.state.waiting.reason == reason and c.ready is False and c.restart_count == 0
    assert f'"{IMAGE}"' in c.state.waiting.message
    if fault == "imagepull":
        assert c.state.waiting.message.startswith(f'Back-off pulling image "{IMAGE}": ErrImagePull: ')


@needs_local_cluster
def test_never_ready_runs_but_is_not_ready(core: client.CoreV1Api, namespace: str) -> None:
    pod = simulated_pod(core, namespace, "never-ready", lambda p: p.status.phase == "Running")
    c = only_container(pod)
    assert c.state.running is not None and c.ready is False and c.started is True
    ready = condition(pod, "Ready")
    assert (ready.status, ready.reason, ready.message) == ("False", "ContainersNotReady", "containers with unready status: [app]")


@needs_local_cluster
def test_job_fail_fails_the_pod_and_the_job(core: client.CoreV1Api, batch: client.BatchV1Api, namespace: str) -> None:
    make_job(batch, namespace, "seed", {spec.SIMULATE_LABEL: "job-fail"})
    job = watch_until(batch.list_namespaced_job, namespace, "seed", lambda j: is_true(j, "Failed"))
    assert condition(job, "Failed").reason == "BackoffLimitExceeded"
    (pod,) = core.list_namespaced_pod(namespace, label_selector="app=seed").items
    term = only_container(pod).state.terminated
    assert pod.status.phase == "Failed" and (term.exit_code, term.reason) == (1, "Error")


@needs_local_cluster
def test_slow_start_becomes_ready_after_a_delay(core: client.CoreV1Api, namespace: str) -> None:
    started = time.monotonic()
    pod = simulated_pod(core, namespace, "slow-start", lambda p: is_true(p, "Ready"), annotations={spec.SIMULATE_DELAY_ANNOTATION: "3s"})
    assert time.monotonic() - started >= 2.5
    assert pod.status.phase == "Running" and only_container(pod).ready is True


@needs_local_cluster
def test_slow_start_job_still_completes(batch: client.BatchV1Api, namespace: str) -> None:
    make_job(batch, namespace, "warm", {spec.SIMULATE_LABEL: "slow-start"})
    job = watch_until(batch.list_namespaced_job, namespace, "warm", lambda j: is_true(j, "Complete"), timeout=30)
    assert job.status.succeeded == 1


# --- logs, exec, port-forward -----------------------------------------------------------------------------

def kubectl_logs(namespace: str, pod: str, *extra: str) -> str | None:
    out = run("kubectl", "logs", "-n", namespace, pod, *extra, timeout=20)
    return out.stdout if out.returncode == 0 else None


def logs_containing(namespace: str, pod: str, needle: str) -> str | None:
    out = kubectl_logs(namespace, pod)
    return out if out and needle in out else None


@needs_local_cluster
def test_kubectl_logs_returns_the_configured_text(core: client.CoreV1Api, namespace: str, pod_logs: Callable[..., None]) -> None:
    simulated_pod(core, namespace, "crashloop", lambda p: waiting_reason(p) is not None)
    make_pod(core, namespace, "other")
    watch_until(core.list_namespaced_pod, namespace, "other", lambda p: is_true(p, "Ready"))

    pod_logs(namespace, "p-crashloop", "connecting to db:5432\npanic: connection refused")
    # kwok learns of the Logs object through its informer: give it a moment, not a fixed sleep.
    logs = poll_until(lambda: logs_containing(namespace, "p-crashloop", "panic"), what="configured logs")
    assert logs == "connecting to db:5432\npanic: connection refused\n"
    assert kubectl_logs(namespace, "p-crashloop", "--previous") == logs
    # Pods without their own Logs get the cluster-wide default text instead of an error.
    assert "simulated by kwok" in (kubectl_logs(namespace, "other") or "")


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(b"echo:" + self.request.recv(64))


@pytest.fixture
def echo_server() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@needs_local_cluster
def test_port_forward_reaches_the_configured_local_server(core: client.CoreV1Api, namespace: str, pod_port_forward: Callable[..., None], echo_server: int) -> None:
    make_pod(core, namespace, "db")
    watch_until(core.list_namespaced_pod, namespace, "db", lambda p: is_true(p, "Ready"))
    pod_port_forward(namespace, "db", {5432: ("127.0.0.1", echo_server)})

    def exchange() -> bytes | None:
        proc = subprocess.Popen(["kubectl", "port-forward", "-n", namespace, "pod/db", ":5432"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline() if proc.stdout else ""  # "Forwarding from 127.0.0.1:NNNNN -> 5432"
            if "Forwarding from" not in line:
                return None
            port = int(line.split("->")[0].rsplit(":", 1)[1])
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                conn.sendall(b"ping")
                return conn.recv(64) or None
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    assert poll_until(exchange, timeout=20, interval=0.5, what="port-forward echo") == b"echo:ping"


@needs_local_cluster
def test_exec_runs_the_command_on_the_host(core: client.CoreV1Api, namespace: str, pod_exec: Callable[..., None], tmp_path: Path) -> None:
    make_pod(core, namespace, "tools")
    watch_until(core.list_namespaced_pod, namespace, "tools", lambda p: is_true(p, "Ready"))
    pod_exec(namespace, "tools", tmp_path, {"GREETING": "hi"})

    def attempt() -> str | None:
        out = run("kubectl", "exec", "-n", namespace, "tools", "--", "sh", "-c", "echo $GREETING from $(pwd)", timeout=20)
        return out.stdout if out.returncode == 0 else None

    assert poll_until(attempt, what="kubectl exec").strip() == f"hi from {tmp_path}"


# --- the cluster itself -----------------------------------------------------------------------------------

@needs_local_cluster
def test_cluster_up_is_idempotent(kubeconfig: str) -> None:
    before = Path(kubeconfig).read_text()
    up = run(sys.executable, "-m", "envci.localcluster.command", "up", "--nodes", "simulated", timeout=120)
    assert up.returncode == 0, up.stderr
    assert up.stdout.strip().splitlines()[-1] == kubeconfig
    assert "reusing running cluster" in up.stderr
    assert Path(kubeconfig).read_text() == before  # same server, same credentials

    status = run(sys.executable, "-m", "envci.localcluster.command", "status", "--nodes", "simulated", "--output", "json")
    assert status.returncode == 0, status.stderr
    assert '"running": true' in status.stdout
