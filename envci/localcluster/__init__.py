"""The embedded local Kubernetes cluster: a real control plane with a real node (containerd, kubelet,
kube-proxy, CoreDNS), or, as a second cluster beside it, nodes and pods simulated by kwok.

`up()` returns a kubeconfig path in seconds once build.sh has cached the binaries; `down()` removes
every process, mount, link, route, iptables chain and file the cluster made. See docs/localcluster.md.
"""

from __future__ import annotations

from envci.localcluster.cluster import (
    BinariesUnavailable,
    Settings,
    binaries_dir,
    down,
    ensure_binaries,
    kubeconfig_path,
    status,
    up,
)

__all__ = [
    "BinariesUnavailable",
    "Settings",
    "binaries_dir",
    "down",
    "ensure_binaries",
    "kubeconfig_path",
    "status",
    "up",
]
