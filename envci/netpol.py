"""Pure: would NetworkPolicies let a pod in one namespace reach a pod in another?

Local clusters enforce no network policy (no CNI), so isolation between environments is verified
by evaluating the policies that are really in the cluster, with the Kubernetes semantics for
ingress rules (ports are not considered).
"""

from __future__ import annotations

from typing import Any

from envci.kube.readiness import _matches


def _selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """An empty selector selects everything."""
    if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        return True
    return _matches(selector, labels)


def _peer_allows(peer: dict[str, Any], dst_ns: str, src_ns: str, src_ns_labels: dict[str, str], src_pod: dict[str, str]) -> bool:
    if "ipBlock" in peer:
        return False  # pod-to-pod traffic is judged by selectors, not CIDRs
    ns_sel, pod_sel = peer.get("namespaceSelector"), peer.get("podSelector")
    if ns_sel is None:
        return src_ns == dst_ns and _selects(pod_sel, src_pod)
    return _selects(ns_sel, src_ns_labels) and _selects(pod_sel, src_pod)


def ingress_allowed(
    policies: list[dict[str, Any]],
    *,
    dst_ns: str,
    dst_pod: dict[str, str],
    src_ns: str,
    src_ns_labels: dict[str, str],
    src_pod: dict[str, str],
) -> bool:
    selecting = [
        p
        for p in policies
        if "Ingress" in ((p.get("spec") or {}).get("policyTypes") or ["Ingress"])
        and _selects((p.get("spec") or {}).get("podSelector"), dst_pod)
    ]
    if not selecting:
        return True
    for p in selecting:
        for rule in (p.get("spec") or {}).get("ingress") or []:
            peers = rule.get("from")
            if not peers:
                return True
            if any(_peer_allows(peer, dst_ns, src_ns, src_ns_labels, src_pod) for peer in peers):
                return True
    return False
