"""Pure helpers for the local cluster: command lines, environments, kwok objects, parsed answers.

Nothing here touches the disk, a process or the network, so every rule is unit-tested directly;
cluster.py is the thin shell that runs what these functions describe.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

CLUSTER_NAME = "envci"
"""The real-node cluster's kwokctl name; one per host, shared by every checkout and test session."""
SIMULATED_NAME = "envci-sim"
"""The simulated (kwok-only) cluster's name: it runs beside the real one, with its own ports and kubeconfig."""
REAL = "real"
SIMULATED = "simulated"
FLAVOURS: tuple[str, ...] = (REAL, SIMULATED)


def cluster_name(flavour: str) -> str:
    return SIMULATED_NAME if flavour == SIMULATED else CLUSTER_NAME

KWOK_API_VERSION = "kwok.x-k8s.io/v1alpha1"
SIMULATE_LABEL = "envci.io/simulate"
SIMULATE_DELAY_ANNOTATION = "envci.io/simulate-delay"
FAULTS: tuple[str, ...] = ("crashloop", "imagepull", "errimagepull", "never-ready", "job-fail", "slow-start")
"""Values of the `envci.io/simulate` pod label that kwok.yaml turns into a kubelet-like status."""

DEFAULT_LOGS_NAME = "envci-default"
DEFAULT_LOG_TEXT = (
    "envci local cluster: this pod is simulated by kwok and runs no container.\n"
    "Create a kwok.x-k8s.io/v1alpha1 Logs object named after the pod to serve other text.\n"
)

# The control-plane binaries kwokctl starts, by its flag name -> our file name.
COMPONENT_FLAGS: tuple[tuple[str, str], ...] = (
    ("--kube-apiserver-binary", "kube-apiserver"),
    ("--kube-controller-manager-binary", "kube-controller-manager"),
    ("--kube-scheduler-binary", "kube-scheduler"),
    ("--kwok-controller-binary", "kwok"),
    ("--etcd-binary", "etcd"),
)
BINARIES: tuple[str, ...] = (
    "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kubelet", "kube-proxy", "etcd",
    "kwok", "kwokctl", "helm", "containerd", "containerd-shim-runc-v2", "ctr", "coredns",
)

_KEY_RE = re.compile(
    r"^k8s-(?P<kubernetes>[^_]+)_etcd-(?P<etcd>[^_]+)_kwok-(?P<kwok>[^_]+)_helm-(?P<helm>[^_]+)"
    r"_containerd-(?P<containerd>[^_]+)_coredns-(?P<coredns>[^_]+)$"
)


@dataclass(frozen=True)
class Layout:
    """Where the local cluster keeps its files, all under one cache root."""

    bin_dir: Path
    """Built binaries, in a directory named by every pinned version (build.sh --print-dir)."""
    name: str = CLUSTER_NAME
    """The kwokctl cluster name: `envci` (real node) or `envci-sim` (simulated nodes)."""

    @property
    def cache_root(self) -> Path:
        """`~/.cache/envci/localcluster`: the parent of every versions key."""
        return self.bin_dir.parent.parent

    @property
    def kwok_workdir(self) -> Path:
        """KWOK_WORKDIR: kwokctl's clusters live here instead of ~/.kwok, so `down` leaves no trace."""
        return self.cache_root / "kwok"

    @property
    def cluster_dir(self) -> Path:
        return self.kwok_workdir / "clusters" / self.name

    @property
    def kubeconfig(self) -> Path:
        """kwokctl's own kubeconfig for the cluster: a stable path, valid while the cluster exists."""
        return self.cluster_dir / "kubeconfig.yaml"

    @property
    def fingerprint_file(self) -> Path:
        """Inside the cluster directory, so `kwokctl delete cluster` removes it with everything else."""
        return self.cluster_dir / "envci-fingerprint"

    @property
    def lock_file(self) -> Path:
        return self.cache_root / f".lock-{self.name}"

    @property
    def default_log_file(self) -> Path:
        return self.cluster_dir / "envci-default.log"


def kwok_env(layout: Layout, base: Mapping[str, str]) -> dict[str, str]:
    """The environment kwokctl runs in.

    kwokctl has no --kubectl-binary flag and would otherwise download kubectl (or pick up an older
    one from PATH), so KWOK_KUBECTL_BINARY and PATH both point at the one we built.
    """
    env = dict(base)
    env["PATH"] = f"{layout.bin_dir}:{base.get('PATH', '')}".rstrip(":")
    env["KWOK_WORKDIR"] = str(layout.kwok_workdir)
    env["KWOK_KUBECTL_BINARY"] = str(layout.bin_dir / "kubectl")
    return env


def create_args(layout: Layout, config: Path) -> list[str]:
    """Arguments after `kwokctl --name envci` that create the cluster from local files only.

    kwokctl treats a local path as a binary to link and only downloads http(s) URLs, so with every
    component named here nothing is fetched (`kwokctl --dry-run` shows links, no URL).
    """
    args = ["--config", str(config), "create", "cluster", "--runtime", "binary"]
    for flag, name in COMPONENT_FLAGS:
        args += [flag, str(layout.bin_dir / name)]
    # An empty --kubeconfig keeps kwokctl from adding a context to the user's ~/.kube/config.
    args += ["--kubeconfig", "", "--timeout", "120s", "--wait", "60s"]
    return args


def kwokctl_config(base_text: str, patch: Mapping[str, Any]) -> str:
    """`base_text` (a kwokctl --config file) with `patch` merged into its KwokctlConfiguration.

    `patch["options"]` is merged key by key into the options; other keys (`componentsPatches`) are
    top-level fields. Lists are appended to, so the base file keeps its own settings.
    """
    docs = [d for d in yaml.safe_load_all(base_text) if d]
    target = next((d for d in docs if d.get("kind") == "KwokctlConfiguration"), None)
    if target is None:
        target = {"apiVersion": "config.kwok.x-k8s.io/v1alpha1", "kind": "KwokctlConfiguration", "options": {}}
        docs.insert(0, target)

    def merge(into: dict[str, Any], values: Mapping[str, Any]) -> None:
        for key, value in values.items():
            if isinstance(value, list) and isinstance(into.get(key), list):
                into[key] = [*into[key], *value]
            else:
                into[key] = value

    options = dict(target.get("options") or {})
    merge(options, patch.get("options", {}))
    target["options"] = options
    merge(target, {k: v for k, v in patch.items() if k != "options"})
    return yaml.safe_dump_all(docs, sort_keys=False)


def fingerprint(config_text: str, bin_dir: Path) -> str:
    """Identifies what a running cluster was made from; a different one means recreate it.

    Stages are fixed when kwok starts, so an edited kwok.yaml or new binaries only take effect in a
    new cluster.
    """
    digest = hashlib.sha256()
    digest.update(config_text.encode())
    digest.update(b"\0")
    digest.update(str(bin_dir).encode())
    return digest.hexdigest()[:16]


def versions_from_key(bin_dir: Path) -> dict[str, str]:
    """Pinned versions, read back from the cache key directory name (build.sh owns the pins)."""
    match = _KEY_RE.match(bin_dir.parent.name)
    return dict(match.groupdict()) if match else {}


def missing_binaries(present: set[str]) -> list[str]:
    return [b for b in BINARIES if b not in present]


def server_from_kubeconfig(text: str) -> str | None:
    """The API server URL of the current context (kwokctl writes exactly one)."""
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        return None
    current = doc.get("current-context")
    contexts = {c.get("name"): c.get("context", {}) for c in doc.get("contexts") or []}
    cluster_name = contexts.get(current, {}).get("cluster")
    for c in doc.get("clusters") or []:
        if c.get("name") == cluster_name:
            server = c.get("cluster", {}).get("server")
            return str(server) if server else None
    return None


def node_summary(node_list: Mapping[str, Any]) -> list[dict[str, Any]]:
    """[{name, ready}] from a NodeList in API JSON."""
    out = []
    for node in node_list.get("items") or []:
        conditions = (node.get("status") or {}).get("conditions") or []
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        out.append({"name": node["metadata"]["name"], "ready": ready})
    return out


def cri_log(text: str, *, stream: str = "stdout", when: datetime | None = None) -> str:
    """Text in the CRI log format that kwok reads (`<RFC3339Nano> <stream> F <line>` per line).

    kwok serves `kubectl logs` by parsing the file the way the kubelet parses containerd's logs, so
    plain text would be rejected line by line.
    """
    stamp = (when or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
    lines = text.splitlines() or [""]
    return "".join(f"{stamp} {stream} F {line}\n" for line in lines)


def logs_spec(logs_file: Path, containers: list[str] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"logsFile": str(logs_file), "previousLogsFile": str(logs_file)}
    if containers:
        entry["containers"] = list(containers)
    return {"logs": [entry]}


def default_cluster_logs(logs_file: Path) -> dict[str, Any]:
    """A ClusterLogs matching every pod, so `kubectl logs` answers instead of failing.

    A namespaced Logs object named after a pod takes precedence over any ClusterLogs (kwok looks it
    up first), which is how a test serves its own text.
    """
    return {
        "apiVersion": KWOK_API_VERSION,
        "kind": "ClusterLogs",
        "metadata": {"name": DEFAULT_LOGS_NAME, "labels": {"app.kubernetes.io/managed-by": "envci"}},
        "spec": logs_spec(logs_file),
    }


def default_storage_class() -> dict[str, Any]:
    """The default StorageClass whose claims kwok.yaml's volume stages bind (kwok's own definition)."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": "kwok-volume",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            "labels": {"app.kubernetes.io/managed-by": "envci"},
        },
        "provisioner": "kwok.x-k8s.io/volume",
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }


def default_objects(logs_file: Path) -> dict[str, Any]:
    """Everything `up` applies after the cluster answers, as one List."""
    return {"apiVersion": "v1", "kind": "List", "items": [default_cluster_logs(logs_file), default_storage_class()]}


def pod_logs(namespace: str, pod: str, logs_file: Path, containers: list[str] | None = None) -> dict[str, Any]:
    """A Logs object: `kubectl logs` of that pod (and `--previous`) returns the file's lines."""
    return {
        "apiVersion": KWOK_API_VERSION,
        "kind": "Logs",
        "metadata": {"name": pod, "namespace": namespace},
        "spec": logs_spec(logs_file, containers),
    }


def pod_port_forward(namespace: str, pod: str, forwards: Mapping[int, tuple[str, int]]) -> dict[str, Any]:
    """A PortForward object: `kubectl port-forward pod/<pod> P` tunnels to a local address:port."""
    return {
        "apiVersion": KWOK_API_VERSION,
        "kind": "PortForward",
        "metadata": {"name": pod, "namespace": namespace},
        "spec": {
            "forwards": [
                {"ports": [port], "target": {"address": address, "port": target}}
                for port, (address, target) in sorted(forwards.items())
            ]
        },
    }


def pod_exec(namespace: str, pod: str, workdir: Path, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """An Exec object: `kubectl exec` into that pod runs the command on this host, in `workdir`."""
    local: dict[str, Any] = {"workDir": str(workdir)}
    if env:
        local["envs"] = [{"name": k, "value": v} for k, v in sorted(env.items())]
    return {
        "apiVersion": KWOK_API_VERSION,
        "kind": "Exec",
        "metadata": {"name": pod, "namespace": namespace},
        "spec": {"execs": [{"local": local}]},
    }


def tail(text: str, lines: int = 20, width: int = 400) -> str:
    """The end of a tool's output, for an error message: enough to act on, never a wall of text."""
    kept = text.strip().splitlines()[-lines:]
    return "\n".join(line if len(line) <= width else line[:width] + "…" for line in kept)
