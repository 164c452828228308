"""The local cluster's real node, as a user meets it: containers run, names resolve, Services route,
logs/exec/port-forward are the kubelet's, images load from archives, environments are isolated from
each other, LoadBalancer Services get addresses, and `down` leaves nothing on the host.

Every workload uses an image built offline (`envci.local/busybox:1`) or one a test builds itself;
nothing is pulled. Each test works in a namespace of its own.
"""

from __future__ import annotations

import io
import json
import secrets
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from envci.config.model import NamespaceSettings
from envci.localcluster import cluster, node, nodespec
from envci.namespace import network_policy_objects

BUSYBOX = nodespec.BUSYBOX_IMAGE


def kubectl(kubeconfig: str, *args: str, input_text: str | None = None, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["kubectl", "--kubeconfig", kubeconfig, *args], input=input_text, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr or result.stdout}")
    return result


def apply(kubeconfig: str, namespace: str, *objects: dict[str, Any]) -> None:
    kubectl(kubeconfig, "-n", namespace, "apply", "-f", "-", input_text=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}))


def web(name: str, token: str) -> list[dict[str, Any]]:
    """A busybox httpd serving `token` at / on port 8080, behind a Service on port 80."""
    labels = {"app": name}
    script = f"mkdir -p /www && echo {token} > /www/index.html && exec httpd -f -p 8080 -h /www"
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "terminationGracePeriodSeconds": 1,
                        "containers": [{
                            "name": "web",
                            "image": BUSYBOX,
                            "imagePullPolicy": "Never",
                            "command": ["sh", "-c", script],
                            "ports": [{"containerPort": 8080, "name": "http"}],
                            "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
                        }],
                    },
                },
            },
        },
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}},
    ]


def shell_pod(name: str = "client") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "sh", "image": BUSYBOX, "imagePullPolicy": "Never", "command": ["sleep", "3600"]}],
        },
    }


def ready(kubeconfig: str, namespace: str, *deployments: str, pods: tuple[str, ...] = ()) -> None:
    for d in deployments:
        kubectl(kubeconfig, "-n", namespace, "rollout", "status", f"deployment/{d}", "--timeout=90s")
    for p in pods:
        kubectl(kubeconfig, "-n", namespace, "wait", "--for=condition=Ready", f"pod/{p}", "--timeout=90s")


def fetch_in_pod(kubeconfig: str, namespace: str, pod: str, url: str) -> subprocess.CompletedProcess[str]:
    # `timeout`, not wget's own -T: Debian's static busybox wget crashes with -T.
    return kubectl(kubeconfig, "-n", namespace, "exec", pod, "--", "timeout", "5", "wget", "-q", "-O", "-", url, check=False, timeout=30)


def test_the_real_node_is_ready_beside_the_control_plane(real_api_client: client.ApiClient) -> None:
    nodes = client.CoreV1Api(real_api_client).list_node().items
    real = [n for n in nodes if n.metadata.labels.get(nodespec.NODE_LABEL) == "real"]
    assert len(real) == 1, [n.metadata.name for n in nodes]
    info = real[0].status.node_info
    assert info.container_runtime_version.startswith("containerd://2.")
    assert info.kubelet_version.startswith("v1.36.")
    assert any(c.type == "Ready" and c.status == "True" for c in real[0].status.conditions)
    assert not (real[0].metadata.annotations or {}).get("kwok.x-k8s.io/node"), "the real node must not be a kwok node"
    addresses = {a.type: a.address for a in real[0].status.addresses}
    assert addresses["InternalIP"] == nodespec.Network().gateway


def test_pods_reach_a_service_by_its_dns_name_and_nothing_outside(real_kubeconfig: str, real_namespace: str) -> None:
    token = secrets.token_hex(8)
    apply(real_kubeconfig, real_namespace, *web("web", token), shell_pod())
    ready(real_kubeconfig, real_namespace, "web", pods=("client",))

    by_name = fetch_in_pod(real_kubeconfig, real_namespace, "client", f"http://web.{real_namespace}.svc.cluster.local/")
    assert by_name.stdout.strip() == token, by_name.stderr
    short = fetch_in_pod(real_kubeconfig, real_namespace, "client", "http://web/")
    assert short.stdout.strip() == token, short.stderr

    routes = kubectl(real_kubeconfig, "-n", real_namespace, "exec", "client", "--", "ip", "route").stdout
    assert "default" not in routes, f"pods must have no default route:\n{routes}"
    outside = kubectl(real_kubeconfig, "-n", real_namespace, "exec", "client", "--", "nslookup", "example.com", check=False)
    assert "NXDOMAIN" in outside.stdout + outside.stderr


def test_exec_logs_and_port_forward_are_the_kubelets(real_kubeconfig: str, real_namespace: str) -> None:
    token = secrets.token_hex(8)
    apply(real_kubeconfig, real_namespace, *web("web", token), shell_pod())
    ready(real_kubeconfig, real_namespace, "web", pods=("client",))

    hostname = kubectl(real_kubeconfig, "-n", real_namespace, "exec", "client", "--", "hostname").stdout.strip()
    assert hostname == "client"
    kubectl(real_kubeconfig, "-n", real_namespace, "exec", "client", "--", "sh", "-c", f"echo {token} > /proc/1/fd/1")
    logs = kubectl(real_kubeconfig, "-n", real_namespace, "logs", "client").stdout
    assert token in logs

    port = _free_port()
    forward = subprocess.Popen(
        ["kubectl", "--kubeconfig", real_kubeconfig, "-n", real_namespace, "port-forward", "deployment/web", f"{port}:8080"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        body = _get_with_retry(f"http://127.0.0.1:{port}/")
        assert body.strip() == token
    finally:
        forward.terminate()
        forward.wait(timeout=10)


def test_an_image_archive_made_elsewhere_loads_and_runs(real_kubeconfig: str, real_namespace: str, tmp_path: Path) -> None:
    token = secrets.token_hex(8)
    name = f"example.test/hello-{token[:6]}:1"
    archive = tmp_path / "hello.tar"
    _docker_save_archive(archive, name, Path("/bin/busybox"), ["/busybox", "sh", "-c", f"echo hello {token}; sleep 3600"])

    loaded = subprocess.run([sys.executable, "-m", "envci.cli", "cluster", "load-image", str(archive)], capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr
    assert name in loaded.stdout

    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hello"},
           "spec": {"terminationGracePeriodSeconds": 1, "containers": [{"name": "hello", "image": name, "imagePullPolicy": "Never"}]}}
    apply(real_kubeconfig, real_namespace, pod)
    ready(real_kubeconfig, real_namespace, pods=("hello",))
    assert f"hello {token}" in kubectl(real_kubeconfig, "-n", real_namespace, "logs", "hello").stdout


def test_load_image_refuses_a_file_that_is_not_an_image(tmp_path: Path, real_kubeconfig: str) -> None:
    bogus = tmp_path / "notes.tar"
    with tarfile.open(bogus, "w") as tar:
        data = b"just text\n"
        info = tarfile.TarInfo("notes.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    result = subprocess.run([sys.executable, "-m", "envci.cli", "cluster", "load-image", str(bogus)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert str(bogus) in result.stderr and "Traceback" not in result.stderr


def test_a_registry_pull_fails_at_once_and_stays_on_the_machine(real_kubeconfig: str, real_namespace: str) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pulls"},
           "spec": {"containers": [{"name": "c", "image": "registry.example.test/nothing:1", "imagePullPolicy": "IfNotPresent"}]}}
    apply(real_kubeconfig, real_namespace, pod)
    reason, message = "", ""
    for _ in range(120):
        status = json.loads(kubectl(real_kubeconfig, "-n", real_namespace, "get", "pod", "pulls", "-o", "json").stdout)["status"]
        waiting = ((status.get("containerStatuses") or [{}])[0].get("state") or {}).get("waiting") or {}
        reason, message = waiting.get("reason", ""), waiting.get("message", "")
        if reason in ("ErrImagePull", "ImagePullBackOff"):
            break
        time.sleep(0.5)
    assert reason in ("ErrImagePull", "ImagePullBackOff"), (reason, message)
    events = kubectl(real_kubeconfig, "-n", real_namespace, "get", "events", "-o", "json").stdout
    # The refusing loopback address from containerd's registry configuration, not a look-up abroad.
    assert "127.0.0.1:9" in message + events


def test_environments_are_isolated_by_their_network_policies(real_kubeconfig: str, real_api_client: client.ApiClient) -> None:
    """Two envci environments with envci's own namespace policies: pods reach their own Services, and
    not those of the other environment."""
    core = client.CoreV1Api(real_api_client)
    suffix = secrets.token_hex(3)
    spaces = [f"t-isolation-a-{suffix}", f"t-isolation-b-{suffix}"]
    try:
        for ns in spaces:
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns, labels={"created-by": "envci-tests"})))
            _wait_for_service_account(core, ns)
            apply(real_kubeconfig, ns, *network_policy_objects(NamespaceSettings()))
            apply(real_kubeconfig, ns, *web("web", ns), shell_pod())
        for ns in spaces:
            ready(real_kubeconfig, ns, "web", pods=("client",))
        a, b = spaces
        inside = _eventually(lambda: fetch_in_pod(real_kubeconfig, a, "client", "http://web/").stdout.strip() == a)
        assert inside, "a pod must reach a Service of its own environment"
        across = fetch_in_pod(real_kubeconfig, a, "client", f"http://web.{b}.svc.cluster.local/")
        assert across.stdout.strip() != b and across.returncode != 0, "a pod reached another environment's Service"
        pod_ip = json.loads(kubectl(real_kubeconfig, "-n", b, "get", "pod", "-l", "app=web", "-o", "json").stdout)["items"][0]["status"]["podIP"]
        direct = fetch_in_pod(real_kubeconfig, a, "client", f"http://{pod_ip}:8080/")
        assert direct.stdout.strip() != b, "a pod reached another environment's pod directly"
    finally:
        for ns in spaces:
            core.delete_namespace(ns, propagation_policy="Background")


def test_a_loadbalancer_service_gets_an_address_that_answers(real_kubeconfig: str, real_namespace: str) -> None:
    token = secrets.token_hex(8)
    objects = web("web", token)
    objects[1]["spec"]["type"] = "LoadBalancer"
    apply(real_kubeconfig, real_namespace, *objects)
    ready(real_kubeconfig, real_namespace, "web")
    address = ""
    for _ in range(60):
        svc = json.loads(kubectl(real_kubeconfig, "-n", real_namespace, "get", "service", "web", "-o", "json").stdout)
        ingress = (svc.get("status", {}).get("loadBalancer") or {}).get("ingress") or []
        if ingress:
            address = ingress[0]["ip"]
            break
        time.sleep(0.5)
    assert address.startswith("198.19."), address
    assert _get_with_retry(f"http://{address}/").strip() == token


def test_down_leaves_nothing_and_up_recovers_after_a_crash(real_kubeconfig: str, load_project_images: Callable[[], None]) -> None:
    """Kill the node's processes as a crash would, let `up` recover, then `down` and look for leftovers;
    the cluster is brought back at the end for the tests that follow."""
    settings = cluster.Settings(flavour="real")
    layout = cluster.node_layout(cluster._layout("real"))
    net = nodespec.Network()
    pids = [p for p in node.running(layout, net).values() if p]
    assert pids, "the node's processes should be running"
    for pid in pids:
        subprocess.run(["kill", "-9", str(pid)], check=False)
    cluster.up(settings)
    assert not node.dead_processes(layout, net)

    cluster.down(settings)
    assert node.leftovers(layout, net) == {"processes": [], "mounts": [], "links": [], "iptables": [], "cgroups": [], "directories": []}
    assert not Path("/var/lib/kubelet").exists() and not Path("/var/log/pods").exists()
    assert cluster.status("real")["running"] is False
    cluster.up(settings)
    assert cluster.status("real")["running"] is True
    load_project_images()  # `down` took the images with the node's state


# --- helpers ----------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_with_retry(url: str, attempts: int = 40) -> str:
    last: Exception | None = None
    for _ in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - a loopback or cluster address
                return response.read().decode()
        except OSError as e:
            last = e
            time.sleep(0.25)
    raise AssertionError(f"{url} did not answer: {last}")


def _eventually(check: Any, attempts: int = 20) -> bool:
    for _ in range(attempts):
        if check():
            return True
        time.sleep(0.5)
    return False


def _wait_for_service_account(core: client.CoreV1Api, namespace: str) -> None:
    for _ in range(100):
        try:
            core.read_namespaced_service_account("default", namespace)
            return
        except client.exceptions.ApiException:
            time.sleep(0.1)


def _docker_save_archive(out: Path, name: str, binary: Path, entrypoint: list[str]) -> None:
    """A docker-save archive written with nothing but tarfile and json, as another tool would write
    one: a single layer holding one static binary."""
    layer_buf = io.BytesIO()
    with tarfile.open(fileobj=layer_buf, mode="w") as layer:
        info = layer.gettarinfo(str(binary), arcname=Path(entrypoint[0]).name)
        info.uid = info.gid = 0
        with binary.open("rb") as f:
            layer.addfile(info, f)
    layer_bytes = layer_buf.getvalue()
    import hashlib

    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Entrypoint": entrypoint},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [name], "Layers": ["layer/layer.tar"]}]).encode()
    with tarfile.open(out, "w") as tar:
        for path, data in (("manifest.json", manifest), (config_name, config), ("layer/layer.tar", layer_bytes)):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_a_host_that_cannot_run_a_second_node_is_told_why(real_kubeconfig: str) -> None:
    """The running node holds the kubelet's ports: the host check names each one and what to do,
    before anything is changed."""
    layout = cluster.node_layout(cluster._layout("real"))
    found = node.problems(layout, nodespec.Network())
    assert any("TCP port 10250 is in use" in p and "--nodes simulated" in p for p in found), found
    with pytest.raises(node.HostUnsuitable) as ei:
        node.check_host(layout, nodespec.Network())
    assert "nothing was changed" in str(ei.value)
