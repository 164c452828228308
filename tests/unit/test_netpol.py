from __future__ import annotations

from envci.config.model import NamespaceSettings, Network
from envci.namespace import network_policy_objects
from envci.netpol import ingress_allowed


def allowed(policies: list, src_ns: str, src_labels: dict | None = None) -> bool:
    return ingress_allowed(
        policies, dst_ns="envci-a", dst_pod={"app": "web"}, src_ns=src_ns,
        src_ns_labels={"kubernetes.io/metadata.name": src_ns, **(src_labels or {})}, src_pod={"app": "x"},
    )


def test_default_policies_isolate_environments() -> None:
    pols = network_policy_objects(NamespaceSettings())
    assert allowed(pols, "envci-a")  # inside the environment
    assert allowed(pols, "ingress-nginx")  # the ingress controller
    assert not allowed(pols, "envci-b")  # another environment
    assert not allowed(pols, "default")


def test_isolation_off_allows_everything() -> None:
    pols = network_policy_objects(NamespaceSettings(network=Network(isolate=False)))
    assert pols == [] and allowed(pols, "envci-b")


def test_custom_allow_list() -> None:
    pols = network_policy_objects(NamespaceSettings(network=Network(allow_from_namespaces=["monitoring"])))
    assert allowed(pols, "monitoring") and not allowed(pols, "ingress-nginx")
