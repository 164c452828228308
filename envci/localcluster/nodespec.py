"""Pure description of the local cluster's real node: addresses, paths and every configuration file.

The real node is containerd + runc + the CNI bridge plugin + kubelet + kube-proxy (iptables mode)
running on this host beside the kwokctl control plane, with CoreDNS as a pod. Everything here is a
function of a `NodeLayout` and a `Network`, so the files are unit-tested as text and data; node.py
writes them and starts the processes.

Addresses come from 198.18.0.0/15 (reserved for benchmarks and tests, RFC 2544) so nothing the
cluster does can collide with, or leak to, a real private network: pods have no default route, the
Service range is routed to the bridge on the host, and a guard chain drops anything of that range
that would cross another interface.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

NODE_LABEL = "envci.io/node"
MANAGED_BY = {"app.kubernetes.io/managed-by": "envci"}

PAUSE_IMAGE = "envci.local/pause:3.10"
COREDNS_IMAGE = "envci.local/coredns:1.15.0"
BUSYBOX_IMAGE = "envci.local/busybox:1"
SYSTEM_IMAGES: tuple[str, ...] = (PAUSE_IMAGE, COREDNS_IMAGE, BUSYBOX_IMAGE)
"""Images `up` loads into the node: the sandbox, cluster DNS, and a shell for tests and diagnosis."""

REFUSING_REGISTRY = "http://127.0.0.1:9"
"""Where containerd is told every registry lives: the discard port on loopback, which refuses at once,
so a missing image fails in milliseconds and no packet leaves the machine."""

KERNEL_SYSCTLS: tuple[str, ...] = (
    "net.ipv4.ip_forward",
    "net.bridge.bridge-nf-call-iptables",
    "vm.overcommit_memory",
    "kernel.panic",
    "kernel.panic_on_oops",
)
"""Host settings the node changes (the bridge plugin and kube-proxy need forwarding and bridged
traffic through iptables; the kubelet sets the last three): recorded at `up`, restored at `down`."""

HOST_PORTS: tuple[int, ...] = (10248, 10249, 10250, 10256)
"""kubelet healthz, kube-proxy metrics, kubelet API, kube-proxy healthz: fixed, so checked at `up`."""


@dataclass(frozen=True)
class Network:
    """The node's addresses. Every range is inside 198.18.0.0/15."""

    bridge: str = "envci0"
    gateway: str = "198.18.0.1"
    """The bridge's address: the node's InternalIP, where pods reach the API server and the kubelet."""
    prefix: int = 17
    pod_subnet: str = "198.18.0.0/17"
    pod_range_start: str = "198.18.1.1"
    pod_range_end: str = "198.18.127.254"
    service_range: str = "198.19.0.0/17"
    """Given to kube-apiserver and kube-controller-manager; the simulated cluster uses 198.19.128.0/18."""
    kubernetes_service_ip: str = "198.19.0.1"
    dns_ip: str = "198.19.0.10"
    lb_pool: str = "198.19.255.0/24"
    """LoadBalancer addresses: outside both clusters' Service ranges (the API server never hands one out as a
    ClusterIP) and inside the routed range, so the host route keeps them on the machine."""
    routed: str = "198.19.0.0/16"
    """Routed to the bridge on the host: Service addresses never follow the default route, even when
    kube-proxy is down (an `unreachable` route would also stop host -> ClusterIP, whose DNAT happens
    after the routing decision)."""
    guarded: str = "198.18.0.0/15"
    cluster_domain: str = "cluster.local"


@dataclass(frozen=True)
class NodeLayout:
    """Where one real node keeps its state on the host; every path is derived from the cluster name."""

    cluster: str
    bin_dir: Path
    cluster_dir: Path
    """kwokctl's directory for the cluster: its pki/ and kubeconfig.yaml are the node's credentials."""

    @property
    def node_name(self) -> str:
        return f"{self.cluster}-node"

    @property
    def lib_dir(self) -> Path:
        """Persistent state: containerd's images and snapshots, the kubelet's pod directories, volumes."""
        return Path("/var/lib/envci") / self.cluster

    @property
    def run_dir(self) -> Path:
        """Runtime state on tmpfs: sockets, network namespaces, pid files, generated configuration."""
        return Path("/run/envci") / self.cluster

    @property
    def containerd_root(self) -> Path:
        return self.lib_dir / "containerd"

    @property
    def containerd_state(self) -> Path:
        return self.run_dir / "containerd"

    @property
    def containerd_socket(self) -> Path:
        return self.containerd_state / "containerd.sock"

    @property
    def kubelet_root(self) -> Path:
        return self.lib_dir / "kubelet"

    @property
    def volumes_dir(self) -> Path:
        """Where the host-path provisioner puts PersistentVolumes (kube-controller-manager's own)."""
        return self.lib_dir / "volumes"

    @property
    def cni_conf_dir(self) -> Path:
        return self.run_dir / "cni"

    @property
    def cni_ipam_dir(self) -> Path:
        return self.lib_dir / "cni-ipam"

    @property
    def config_dir(self) -> Path:
        return self.run_dir / "config"

    @property
    def pid_dir(self) -> Path:
        return self.run_dir / "pids"

    @property
    def host_state_file(self) -> Path:
        """The host settings found before `up` changed them; in /var/lib so a reboot does not lose it."""
        return self.lib_dir / "host-state.json"

    @property
    def logs_dir(self) -> Path:
        """Beside the binary cache, not in the node's directories: a failed `up` removes the node, and
        its logs are what says why."""
        return self.cluster_dir.parents[2] / "logs" / self.cluster

    @property
    def ca_cert(self) -> Path:
        return self.cluster_dir / "pki" / "ca.crt"

    @property
    def admin_cert(self) -> Path:
        return self.cluster_dir / "pki" / "admin.crt"

    @property
    def admin_key(self) -> Path:
        return self.cluster_dir / "pki" / "admin.key"

    @property
    def kubeconfig(self) -> Path:
        return self.cluster_dir / "kubeconfig.yaml"

    @property
    def resolv_conf(self) -> Path:
        """An empty resolv.conf for the kubelet: pods get only cluster DNS, never the host's resolvers."""
        return self.config_dir / "resolv.conf"


def cgroup_root(layout: NodeLayout) -> str:
    """The kubelet's cgroupRoot: every pod lives under it in each hierarchy, so `down` finds them all."""
    return f"/{layout.cluster}"


# --- kwokctl control plane ------------------------------------------------------------------------------

CONTROLLER_CLIENT_LIMITS = {"kube-api-qps": "300", "kube-api-burst": "600"}
"""kube-controller-manager's own limits on its requests to the API server (by default 20 a second,
bursts of 30). Every controller shares them; with a hundred environments created at once on this
one-tenant cluster they, not the API server, held each Deployment for tens of seconds."""

KWOKCTL_SETS = frozenset({"bind-address"})
"""Component arguments kwokctl already passes, which a patch must override rather than repeat."""


def control_plane_patches(layout: NodeLayout, net: Network) -> dict[str, Any]:
    """The KwokctlConfiguration options a real node needs from the control plane.

    kube-apiserver listens on every address (pods reach it at the bridge address; a guard rule drops
    its port on other interfaces), advertises the bridge address as the `kubernetes` Service's
    endpoint, talks to the kubelet with the admin client certificate (the kubelet refuses anonymous
    callers, so a pod cannot use the kubelet API to enter other environments' pods), and hands out
    Service addresses from the node's range. kube-controller-manager provisions host-path volumes.
    """

    def args(pairs: dict[str, str]) -> list[dict[str, Any]]:
        # kwokctl's `override` replaces an argument it sets itself and drops one it does not set.
        return [{"key": k, "value": v, "override": k in KWOKCTL_SETS} for k, v in pairs.items()]

    return {
        "options": {
            "kubeApiserverCertSANs": [net.gateway, net.kubernetes_service_ip, "kubernetes.default.svc"],
            # kwok's controller would take over every node, the real one included, and rewrite its status.
            "disable": ["kwok-controller"],
        },
        "componentsPatches": [
            {
                "name": "kube-apiserver",
                "extraArgs": args({
                    "bind-address": "0.0.0.0",
                    "advertise-address": net.gateway,
                    "service-cluster-ip-range": net.service_range,
                    "kubelet-preferred-address-types": "InternalIP,Hostname",
                    "kubelet-client-certificate": str(layout.admin_cert),
                    "kubelet-client-key": str(layout.admin_key),
                }),
            },
            {
                "name": "kube-controller-manager",
                "extraArgs": args({
                    "service-cluster-ip-range": net.service_range,
                    "enable-hostpath-provisioner": "true",
                    **CONTROLLER_CLIENT_LIMITS,
                }),
            },
        ],
    }


SIMULATED_POD_RANGE = "198.18.128.0/17"
"""Pod addresses on simulated nodes (kwok hands them out from each node's podCIDR): beside the real
node's pods (198.18.0.0/17), never 10/8 as kwokctl's own node template would give."""


def simulated_nodes(count: int, *, pods_per_node: int = 250) -> list[dict[str, Any]]:
    """Pure: the simulated cluster's Node objects, each with a /24 of SIMULATED_POD_RANGE. kwok acts
    for every node (it runs with --manage-all-nodes) and marks them Ready. 250 pods each, so a
    hundred three-pod environments fit on two."""
    base = ipaddress.ip_network(SIMULATED_POD_RANGE)
    subnets = base.subnets(new_prefix=24)
    nodes = []
    for i in range(count):
        name, cidr = f"node-{i:06d}", str(next(subnets))
        size = {"cpu": "32", "memory": "256Gi", "pods": str(pods_per_node)}
        nodes.append({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                         "labels": {"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                    "kubernetes.io/arch": "amd64", "node-role.kubernetes.io/agent": ""}},
            "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
            "status": {"capacity": size, "allocatable": size},
        })
    return nodes


def simulated_patches() -> dict[str, Any]:
    """The simulated cluster's Service range: 198.19.128.0/18, beside the real node's, never 10/8; and
    the controllers' request limits (CONTROLLER_CLIENT_LIMITS)."""
    services = [{"key": "service-cluster-ip-range", "value": "198.19.128.0/18", "override": False}]
    limits = [{"key": k, "value": v, "override": False} for k, v in CONTROLLER_CLIENT_LIMITS.items()]
    return {
        "componentsPatches": [
            {"name": "kube-apiserver", "extraArgs": services},
            {"name": "kube-controller-manager", "extraArgs": services + limits},
        ],
    }


# --- containerd -----------------------------------------------------------------------------------------

def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def _toml(tables: dict[str, dict[str, Any]], top: dict[str, Any]) -> str:
    lines = [f"{k} = {_toml_value(v)}" for k, v in top.items()]
    for name, values in tables.items():
        lines += ["", f"[{name}]"] + [f"  {k} = {_toml_value(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def containerd_config(layout: NodeLayout, net: Network) -> str:
    """containerd 2.x configuration (version 3).

    - `restrict_oom_score_adj`: these VMs lack CAP_SYS_RESOURCE, so runc could not lower a sandbox's
      oom_score_adj and every sandbox failed with "can't get final child's PID from pipe: EOF".
    - `netns_mounts_under_state_dir`: network namespaces live under our state directory, not in
      /run/netns, so `down` finds every one of them.
    - registry `config_path`: hosts.toml for every registry points at a refusing loopback port.
    """
    cri_images = "plugins.'io.containerd.cri.v1.images'"
    cri_runtime = "plugins.'io.containerd.cri.v1.runtime'"
    tables: dict[str, dict[str, Any]] = {
        "grpc": {"address": str(layout.containerd_socket)},
        "ttrpc": {"address": str(layout.containerd_socket) + ".ttrpc"},
        "metrics": {"address": ""},
        cri_images: {"snapshotter": "overlayfs"},
        f"{cri_images}.pinned_images": {"sandbox": PAUSE_IMAGE},
        f"{cri_images}.registry": {"config_path": str(registry_dir(layout))},
        cri_runtime: {
            "restrict_oom_score_adj": True,
            "netns_mounts_under_state_dir": True,
            "enable_selinux": False,
            "max_container_log_line_size": 16384,
        },
        f"{cri_runtime}.containerd": {"default_runtime_name": "runc"},
        f"{cri_runtime}.containerd.runtimes.runc": {"runtime_type": "io.containerd.runc.v2"},
        f"{cri_runtime}.containerd.runtimes.runc.options": {
            "BinaryName": "/usr/bin/runc", "SystemdCgroup": False, "Root": str(layout.run_dir / "runc"),
        },
        f"{cri_runtime}.cni": {"bin_dirs": ["/usr/lib/cni"], "conf_dir": str(layout.cni_conf_dir), "max_conf_num": 1},
        "plugins.'io.containerd.grpc.v1.cri'": {"stream_server_address": "127.0.0.1", "stream_server_port": "0"},
        "plugins.'io.containerd.transfer.v1.local'": {"config_path": str(registry_dir(layout))},
        # Defaults outside our directories (/opt/containerd, the NRI socket) would outlive `down`.
        "plugins.'io.containerd.internal.v1.opt'": {"path": str(layout.lib_dir / "opt")},
        "plugins.'io.containerd.nri.v1.nri'": {"disable": True},
    }
    top = {
        "version": 3,
        "root": str(layout.containerd_root),
        "state": str(layout.containerd_state),
    }
    return _toml(tables, top)


def registry_dir(layout: NodeLayout) -> Path:
    return layout.config_dir / "certs.d"


def registry_hosts(allow_pulls: bool) -> str:
    """`certs.d/_default/hosts.toml`: every registry's pulls go to a refusing loopback address unless
    the user opted in (then containerd's defaults apply, and the file is not written)."""
    if allow_pulls:
        return ""
    return (
        "# envci local cluster: registry pulls are off (set ENVCI_ALLOW_PULLS=1 to allow them)\n"
        f'server = "{REFUSING_REGISTRY}"\n'
        f'[host."{REFUSING_REGISTRY}"]\n'
        '  capabilities = ["pull", "resolve"]\n'
        "  skip_verify = true\n"
    )


# --- CNI ------------------------------------------------------------------------------------------------

CNI_NETWORK = "envci-node"


def cni_conflist(layout: NodeLayout, net: Network) -> dict[str, Any]:
    """Bridge + host-local + portmap. No ipMasq (nothing is masqueraded off the machine) and no
    default route in pods: they reach the pod subnet on the link and Services through the gateway."""
    return {
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": net.bridge,
                "isGateway": True,
                "isDefaultGateway": False,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(layout.cni_ipam_dir),
                    "ranges": [[{
                        "subnet": net.pod_subnet,
                        "rangeStart": net.pod_range_start,
                        "rangeEnd": net.pod_range_end,
                        "gateway": net.gateway,
                    }]],
                    "routes": [{"dst": net.routed, "gw": net.gateway}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


# --- kubelet and kube-proxy -----------------------------------------------------------------------------

def kubelet_config(layout: NodeLayout, net: Network) -> dict[str, Any]:
    """KubeletConfiguration for a host with cgroup v1 (hybrid) and no systemd in charge of cgroups."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": cgroup_root(layout),
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "address": net.gateway,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(layout.ca_cert)},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDNS": [net.dns_ip],
        "clusterDomain": net.cluster_domain,
        "resolvConf": str(layout.resolv_conf),
        "failSwapOn": False,
        "serializeImagePulls": False,
        "maxPods": 250,
        # A CI host's disk fills with images and caches; the defaults (10-15 % free) would evict pods
        # on a machine that is only busy, not full.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 99,
        "imageGCLowThresholdPercent": 98,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "protectKernelDefaults": False,
        "makeIPTablesUtilChains": True,
        "logging": {"format": "text"},
        # Short status intervals make "Ready" and probe results show up quickly in tests and CI.
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
    }


def kubelet_args(layout: NodeLayout, net: Network) -> list[str]:
    return [
        str(layout.bin_dir / "kubelet"),
        f"--config={layout.config_dir / 'kubelet.yaml'}",
        f"--kubeconfig={layout.kubeconfig}",
        f"--root-dir={layout.kubelet_root}",
        f"--cert-dir={layout.lib_dir / 'kubelet-pki'}",
        f"--hostname-override={layout.node_name}",
        f"--node-ip={net.gateway}",
        f"--node-labels={NODE_LABEL}=real",
        "--v=1",
    ]


def kube_proxy_config(layout: NodeLayout, net: Network) -> dict[str, Any]:
    """iptables mode; NodePorts only on the node's bridge address, never on the host's own interfaces."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(layout.kubeconfig)},
        "hostnameOverride": layout.node_name,
        "clusterCIDR": net.pod_subnet,
        "bindAddress": net.gateway,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "nodePortAddresses": [f"{net.gateway}/32"],
        "conntrack": {"maxPerCore": 0},
        "iptables": {"masqueradeAll": False, "syncPeriod": "10s", "minSyncPeriod": "0s"},
    }


def kube_proxy_args(layout: NodeLayout) -> list[str]:
    return [str(layout.bin_dir / "kube-proxy"), f"--config={layout.config_dir / 'kube-proxy.yaml'}", "--v=1"]


def agent_args(layout: NodeLayout, net: Network, python: str) -> list[str]:
    """The node agent (NetworkPolicy enforcement and LoadBalancer addresses) in this interpreter."""
    return [
        python, "-m", "envci.localcluster.agent",
        "--kubeconfig", str(layout.kubeconfig),
        "--node-ip", net.gateway,
        "--pod-cidr", net.pod_subnet,
        "--bridge", net.bridge,
        "--lb-pool", net.lb_pool,
    ]


def containerd_args(layout: NodeLayout) -> list[str]:
    return [str(layout.bin_dir / "containerd"), "--config", str(layout.config_dir / "containerd.toml")]


# --- host network guard ---------------------------------------------------------------------------------

GUARD_IN = "ENVCI-GUARD-IN"
GUARD_OUT = "ENVCI-GUARD-OUT"
GUARD_JUMPS: tuple[tuple[str, str], ...] = (
    ("INPUT", GUARD_IN), ("FORWARD", GUARD_IN), ("FORWARD", GUARD_OUT), ("OUTPUT", GUARD_OUT),
)
"""(built-in chain, guard chain): each jump is inserted first in its chain, so nothing before it can
accept a packet the guard would drop."""


def guard_chains(net: Network, api_port: int) -> dict[str, list[list[str]]]:
    """The guard chains' rules (filter table).

    Nothing of 198.18.0.0/15 may cross an interface other than the bridge and loopback: no pod packet
    leaves the machine (pods have no default route; this holds even if one is added), no Service
    address is sent out (should kube-proxy be down and the route gone), and nobody off the machine
    reaches the node's addresses, or the API server, which must listen on every address for pods to
    reach it at the bridge address.
    """
    comment = ["-m", "comment", "--comment"]
    return {
        GUARD_IN: [
            ["-i", "lo", "-j", "RETURN"],
            ["-i", net.bridge, "-j", "RETURN"],
            ["-d", net.guarded, *comment, "envci: node addresses are not reachable from off the machine", "-j", "DROP"],
            ["-p", "tcp", "--dport", str(api_port), "-m", "addrtype", "--dst-type", "LOCAL",
             *comment, "envci: the API server answers this machine and its pods only", "-j", "DROP"],
        ],
        GUARD_OUT: [
            ["-o", "lo", "-j", "RETURN"],
            ["-o", net.bridge, "-j", "RETURN"],
            ["-d", net.guarded, *comment, "envci: node addresses never leave the machine", "-j", "DROP"],
            ["-s", net.guarded, *comment, "envci: pods never reach off the machine", "-j", "DROP"],
        ],
    }


# --- cluster add-ons ------------------------------------------------------------------------------------

def corefile(net: Network) -> str:
    """Cluster names only: there is no upstream resolver here, so every other name is NXDOMAIN at once
    (a forwarder would wait for timeouts on every look-up of an outside name)."""
    return (
        f"{net.cluster_domain}:53 in-addr.arpa:53 ip6.arpa:53 {{\n"
        "    errors\n"
        "    health :8080\n"
        "    ready :8181\n"
        f"    kubernetes {net.cluster_domain} in-addr.arpa ip6.arpa {{\n"
        "        pods insecure\n"
        "        fallthrough in-addr.arpa ip6.arpa\n"
        "        ttl 5\n"
        "    }\n"
        "    cache 5\n"
        "    loadbalance\n"
        "}\n"
        ".:53 {\n"
        "    errors\n"
        "    template ANY ANY {\n"
        "        rcode NXDOMAIN\n"
        "    }\n"
        "}\n"
    )


def addon_objects(net: Network, layout: NodeLayout) -> list[dict[str, Any]]:
    """CoreDNS (RBAC, configuration, Deployment, the kube-dns Service) and the default StorageClass."""
    labels = {"k8s-app": "kube-dns", **MANAGED_BY}
    ns = "kube-system"
    corefile_text = corefile(net)
    # The pod template carries the Corefile's digest, so a changed Corefile rolls CoreDNS on `up`.
    digest = hashlib.sha256(corefile_text.encode()).hexdigest()[:12]
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", "namespace": ns, "labels": MANAGED_BY}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "envci:coredns", "labels": MANAGED_BY},
            "rules": [
                {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"], "verbs": ["list", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "envci:coredns", "labels": MANAGED_BY},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "envci:coredns"},
            "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": ns}],
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "coredns", "namespace": ns, "labels": MANAGED_BY}, "data": {"Corefile": corefile_text}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "coredns", "namespace": ns, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                "template": {
                    "metadata": {"labels": labels, "annotations": {"envci.io/corefile": digest}},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "priorityClassName": "system-cluster-critical",
                        "dnsPolicy": "Default",
                        "containers": [{
                            "name": "coredns",
                            "image": COREDNS_IMAGE,
                            "imagePullPolicy": "IfNotPresent",
                            "args": ["-conf", "/etc/coredns/Corefile"],
                            "ports": [
                                {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                            ],
                            "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
                            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 2},
                            "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 10, "failureThreshold": 5},
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
                                "readOnlyRootFilesystem": True,
                            },
                            "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns", "readOnly": True}],
                        }],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": ns, "labels": labels},
            "spec": {
                "clusterIP": net.dns_ip,
                "selector": {"k8s-app": "kube-dns"},
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                ],
            },
        },
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": "standard",
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                "labels": MANAGED_BY,
            },
            # kube-controller-manager's own host-path provisioner (--enable-hostpath-provisioner): real
            # directories on the one node, deleted with their claims.
            "provisioner": "kubernetes.io/host-path",
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
        },
    ]


def dump_yaml(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False)
