"""Which API path serves a kind: its resource name (plural) and whether it lives in a namespace.

Kinds every supported Kubernetes serves are known here without asking. Any other kind (a CRD, an
aggregated API) is looked up in its own group-version's discovery document, once per process: a
full discovery of the cluster costs two dozen requests, per command, and a hundred environments at
once run hundreds of commands.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Resource:
    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        """Pure: the collection's path (or one object's, with `name`); `namespace` only for a
        namespaced kind, and then it may be None to list across all namespaces."""
        base = f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return f"{base}/{name}" if name else base


def _table(api_version: str, namespaced: bool, kinds: str) -> dict[tuple[str, str], Resource]:
    out = {}
    for entry in kinds.split():
        kind, _, plural = entry.partition(":")
        out[(api_version, kind)] = Resource(api_version, kind, plural or kind.lower() + "s", namespaced)
    return out


# Kinds served, at these versions, by every Kubernetes release still supported (GA for years).
KNOWN: dict[tuple[str, str], Resource] = {
    **_table("v1", True, "Pod Service ConfigMap Secret ServiceAccount PersistentVolumeClaim Event ResourceQuota "
             "LimitRange Endpoints:endpoints ReplicationController PodTemplate"),
    **_table("v1", False, "Namespace Node PersistentVolume"),
    **_table("apps/v1", True, "Deployment StatefulSet DaemonSet ReplicaSet ControllerRevision"),
    **_table("batch/v1", True, "Job CronJob"),
    **_table("networking.k8s.io/v1", True, "NetworkPolicy:networkpolicies Ingress:ingresses"),
    **_table("networking.k8s.io/v1", False, "IngressClass:ingressclasses"),
    **_table("rbac.authorization.k8s.io/v1", True, "Role RoleBinding"),
    **_table("rbac.authorization.k8s.io/v1", False, "ClusterRole ClusterRoleBinding"),
    **_table("coordination.k8s.io/v1", True, "Lease"),
    **_table("policy/v1", True, "PodDisruptionBudget"),
    **_table("autoscaling/v1", True, "HorizontalPodAutoscaler"),
    **_table("autoscaling/v2", True, "HorizontalPodAutoscaler"),
    **_table("storage.k8s.io/v1", False, "StorageClass:storageclasses CSIDriver CSINode VolumeAttachment"),
    **_table("scheduling.k8s.io/v1", False, "PriorityClass:priorityclasses"),
    **_table("apiextensions.k8s.io/v1", False, "CustomResourceDefinition"),
    **_table("admissionregistration.k8s.io/v1", False, "ValidatingWebhookConfiguration MutatingWebhookConfiguration"),
    **_table("events.k8s.io/v1", True, "Event"),
    **_table("discovery.k8s.io/v1", True, "EndpointSlice"),
}


def group_version_path(api_version: str) -> str:
    return f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"


def from_document(api_version: str, doc: dict[str, Any]) -> dict[str, Resource]:
    """Pure: a group-version's discovery document (APIResourceList) as kind → Resource; subresources
    (pods/log, deployments/scale) are not kinds of their own."""
    out: dict[str, Resource] = {}
    for r in doc.get("resources") or []:
        name = str(r.get("name") or "")
        if not name or "/" in name or not r.get("kind"):
            continue
        out.setdefault(str(r["kind"]), Resource(api_version, str(r["kind"]), name, bool(r.get("namespaced"))))
    return out


class Discovery:
    """Kind lookups for one process. A group-version the cluster serves is read once; one it does
    not serve is asked again next time, since a CRD installed by an earlier component may add it."""

    def __init__(self, fetch: Callable[[str], dict[str, Any] | None]) -> None:
        self._fetch = fetch  # a discovery path → its document, or None when the server has no such path
        self._served: dict[str, dict[str, Resource]] = {}
        self._lock = threading.Lock()

    def resolve(self, api_version: str, kind: str) -> Resource | None:
        """The resource serving a kind, or None when the cluster serves no such kind."""
        known = KNOWN.get((api_version, kind))
        if known is not None:
            return known
        with self._lock:
            kinds = self._served.get(api_version)
        if kinds is None or kind not in kinds:
            doc = self._fetch(group_version_path(api_version))
            if doc is None:
                return None
            kinds = from_document(api_version, doc)
            with self._lock:
                self._served[api_version] = kinds
        return kinds.get(kind)
