"""Pure rules of the local cluster: command lines, environment, kwok objects, parsed answers."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from envci.localcluster import spec
from envci.localcluster.cluster import KWOK_CONFIG

BIN = Path("/cache/envci/localcluster/k8s-v1.36.3_etcd-v3.6.16_kwok-v0.8.0_helm-v3.22.0_containerd-v2.4.2_coredns-v1.15.0/bin")
LAYOUT = spec.Layout(bin_dir=BIN)


def test_layout_keeps_everything_under_the_cache_root() -> None:
    assert LAYOUT.cache_root == Path("/cache/envci/localcluster")
    assert LAYOUT.kubeconfig == Path("/cache/envci/localcluster/kwok/clusters/envci/kubeconfig.yaml")
    assert LAYOUT.fingerprint_file.parent == LAYOUT.cluster_dir
    assert LAYOUT.default_log_file.parent == LAYOUT.cluster_dir


def test_kwok_env_points_kubectl_and_path_at_the_built_binaries() -> None:
    env = spec.kwok_env(LAYOUT, {"PATH": "/usr/bin", "HOME": "/root"})
    assert env["PATH"] == f"{BIN}:/usr/bin"
    assert env["KWOK_KUBECTL_BINARY"] == f"{BIN}/kubectl"
    assert env["KWOK_WORKDIR"] == "/cache/envci/localcluster/kwok"
    assert env["HOME"] == "/root"


def test_create_args_name_every_component_by_local_path_and_skip_the_user_kubeconfig() -> None:
    args = spec.create_args(LAYOUT, Path("/repo/kwok.yaml"))
    pairs = dict(itertools.pairwise(args))
    assert args[:6] == ["--config", "/repo/kwok.yaml", "create", "cluster", "--runtime", "binary"]
    for flag, name in spec.COMPONENT_FLAGS:
        assert pairs[flag] == f"{BIN}/{name}"
    assert not any(a.startswith("http") for a in args)
    assert pairs["--kubeconfig"] == ""


def test_fingerprint_changes_with_the_config_or_the_binaries() -> None:
    base = spec.fingerprint("a", BIN)
    assert base == spec.fingerprint("a", BIN)
    assert base != spec.fingerprint("b", BIN)
    assert base != spec.fingerprint("a", BIN.parent.parent / "other" / "bin")


def test_versions_are_read_from_the_cache_key() -> None:
    assert spec.versions_from_key(BIN) == {
        "kubernetes": "v1.36.3", "etcd": "v3.6.16", "kwok": "v0.8.0", "helm": "v3.22.0", "containerd": "v2.4.2", "coredns": "v1.15.0",
    }
    assert spec.versions_from_key(Path("/elsewhere/bin")) == {}


def test_missing_binaries_keeps_the_build_order() -> None:
    present = {"kubectl", "helm", "kubelet", "kube-proxy", "containerd", "containerd-shim-runc-v2", "ctr", "coredns"}
    assert spec.missing_binaries(present) == ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd", "kwok", "kwokctl"]
    assert spec.missing_binaries(set(spec.BINARIES)) == []


KUBECONFIG = """
apiVersion: v1
kind: Config
current-context: kwok-envci
contexts:
- name: other
  context: {cluster: other}
- name: kwok-envci
  context: {cluster: kwok-envci, user: kwok-envci}
clusters:
- name: other
  cluster: {server: https://10.0.0.1:6443}
- name: kwok-envci
  cluster: {server: https://127.0.0.1:32758}
"""


@pytest.mark.parametrize(
    "text, server",
    [(KUBECONFIG, "https://127.0.0.1:32758"), ("", None), ("{not yaml", None), ("current-context: x", None)],
)
def test_server_from_kubeconfig(text: str, server: str | None) -> None:
    assert spec.server_from_kubeconfig(text) == server


def test_node_summary_reads_the_ready_condition() -> None:
    nodes = {"items": [
        {"metadata": {"name": "a"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        {"metadata": {"name": "b"}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}},
        {"metadata": {"name": "c"}},
    ]}
    assert spec.node_summary(nodes) == [{"name": "a", "ready": True}, {"name": "b", "ready": False}, {"name": "c", "ready": False}]
    assert spec.node_summary({}) == []


def test_cri_log_writes_one_full_line_per_text_line() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert spec.cri_log("one\ntwo", when=when) == (
        "2026-01-02T03:04:05.678901000Z stdout F one\n2026-01-02T03:04:05.678901000Z stdout F two\n"
    )
    assert spec.cri_log("", when=when, stream="stderr") == "2026-01-02T03:04:05.678901000Z stderr F \n"


def test_kwok_objects_are_named_after_the_pod() -> None:
    logs = spec.pod_logs("ns", "web-0", Path("/tmp/web.log"), ["app"])
    assert (logs["kind"], logs["metadata"]) == ("Logs", {"name": "web-0", "namespace": "ns"})
    assert logs["spec"] == {"logs": [{"logsFile": "/tmp/web.log", "previousLogsFile": "/tmp/web.log", "containers": ["app"]}]}

    forward = spec.pod_port_forward("ns", "db-0", {5432: ("127.0.0.1", 15432), 80: ("127.0.0.1", 8080)})
    assert forward["kind"] == "PortForward"
    assert forward["spec"]["forwards"] == [
        {"ports": [80], "target": {"address": "127.0.0.1", "port": 8080}},
        {"ports": [5432], "target": {"address": "127.0.0.1", "port": 15432}},
    ]

    ex = spec.pod_exec("ns", "tools", Path("/work"), {"B": "2", "A": "1"})
    assert ex["spec"] == {"execs": [{"local": {"workDir": "/work", "envs": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}}]}
    assert all(o["apiVersion"] == "kwok.x-k8s.io/v1alpha1" for o in (logs, forward, ex))


def test_default_cluster_logs_match_every_pod() -> None:
    obj = spec.default_cluster_logs(Path("/c/default.log"))
    assert obj["kind"] == "ClusterLogs" and "selector" not in obj["spec"]
    assert obj["spec"]["logs"] == [{"logsFile": "/c/default.log", "previousLogsFile": "/c/default.log"}]


def test_tail_keeps_the_last_lines_and_cuts_long_ones() -> None:
    text = "\n".join(f"line {i}" for i in range(50)) + "\n" + "x" * 1000
    out = spec.tail(text, lines=3, width=10).splitlines()
    assert out == ["line 48", "line 49", "x" * 10 + "…"]


# --- kwok.yaml: the fault stages and the defaults they must not collide with -----------------------------

def _stages() -> dict[str, dict]:
    docs = list(yaml.safe_load_all(KWOK_CONFIG.read_text()))
    return {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Stage"}


def _label_rule(stage: dict) -> dict | None:
    for expr in stage["spec"]["selector"]["matchExpressions"]:
        if expr.get("key") == f'.metadata.labels["{spec.SIMULATE_LABEL}"]':
            return expr
    return None


def test_kwok_config_enables_the_debugging_crds_and_loopback_only() -> None:
    (conf,) = [d for d in yaml.safe_load_all(KWOK_CONFIG.read_text()) if d["kind"] == "KwokctlConfiguration"]
    assert set(conf["options"]["enableCRDs"]) == {"ClusterLogs", "Logs", "ClusterExec", "Exec", "ClusterPortForward", "PortForward"}
    assert conf["options"]["bindAddress"] == "127.0.0.1"


def test_kwok_config_keeps_every_default_stage() -> None:
    assert {"node-initialize", "node-heartbeat-with-lease", "pod-ready", "pod-complete", "pod-delete"} <= set(_stages())


def test_default_pod_ready_leaves_simulated_pods_alone() -> None:
    assert _label_rule(_stages()["pod-ready"]) == {"key": f'.metadata.labels["{spec.SIMULATE_LABEL}"]', "operator": "DoesNotExist"}


def test_default_pod_complete_skips_every_fault_but_slow_start() -> None:
    rule = _label_rule(_stages()["pod-complete"])
    assert rule is not None and rule["operator"] == "NotIn"
    assert set(rule["values"]) == set(spec.FAULTS) - {"slow-start"}


def test_every_fault_has_exactly_one_stage() -> None:
    claimed: list[str] = []
    for name, stage in _stages().items():
        rule = _label_rule(stage)
        if name.startswith("envci-") and rule:
            assert rule["operator"] == "In"
            claimed += rule["values"]
    assert sorted(claimed) == sorted(spec.FAULTS)


def test_pod_delete_applies_to_simulated_pods_too() -> None:
    assert _label_rule(_stages()["pod-delete"]) is None


def test_default_objects_are_the_logs_and_the_default_storage_class() -> None:
    objs = spec.default_objects(Path("/c/default.log"))
    assert [o["kind"] for o in objs["items"]] == ["ClusterLogs", "StorageClass"]
    sc = objs["items"][1]
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    # kwok.yaml's volume stages select claims by this class name.
    assert f"self.spec.storageClassName == '{sc['metadata']['name']}'" in KWOK_CONFIG.read_text()


def test_simulated_nodes_hand_out_pod_addresses_beside_the_real_nodes_never_from_private_ranges() -> None:
    import ipaddress

    from envci.localcluster import nodespec

    nodes = nodespec.simulated_nodes(3)
    cidrs = [ipaddress.ip_network(n["spec"]["podCIDR"]) for n in nodes]
    assert [n["metadata"]["name"] for n in nodes] == ["node-000000", "node-000001", "node-000002"]
    assert len(set(cidrs)) == 3 and all(c.subnet_of(ipaddress.ip_network("198.18.128.0/17")) for c in cidrs)
    assert not any(c.overlaps(ipaddress.ip_network(nodespec.Network().pod_subnet)) for c in cidrs)  # the real node's pods
    assert all(not c.is_private or c.subnet_of(ipaddress.ip_network("198.18.0.0/15")) for c in cidrs)
    assert all(n["status"]["capacity"]["pods"] == "250" and n["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake" for n in nodes)
