"""The kinds envci knows without asking are served by a real API server exactly as it knows them,
and the adapter reaches a CRD's kind through discovery."""

from __future__ import annotations

import secrets
import subprocess

import pytest

from envci.errors import ConfigError
from envci.kube.client import connect
from envci.kube.discovery import KNOWN, from_document, group_version_path

pytestmark = pytest.mark.cluster


def test_every_known_kind_is_served_as_envci_knows_it(kubeconfig: str) -> None:
    kube = connect(kubeconfig)
    served: dict[str, dict[str, object]] = {}
    for (api_version, kind), known in sorted(KNOWN.items()):
        if api_version not in served:
            doc = kube._discovery_document(group_version_path(api_version))
            assert doc is not None, f"the API server serves no {api_version}"
            served[api_version] = dict(from_document(api_version, doc))
        assert served[api_version].get(kind) == known, f"{kind} ({api_version})"


def test_a_custom_kind_is_found_once_its_crd_exists_and_refused_before(kubeconfig: str) -> None:
    group = f"t{secrets.token_hex(3)}.envci.test"
    kube = connect(kubeconfig)
    with pytest.raises(ConfigError, match=f"the cluster has no API for Widget \\({group}/v1\\)"):
        kube.is_namespaced(f"{group}/v1", "Widget")
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {"group": group, "scope": "Cluster", "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
    }
    kube.apply(crd, None)
    try:
        subprocess.run(["kubectl", "wait", "--for=condition=Established", f"crd/widgets.{group}", "--timeout=60s"],
                       check=True, capture_output=True, env=None)
        assert kube.is_namespaced(f"{group}/v1", "Widget") is False  # the same process: a miss is asked again
        kube.apply({"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}, "size": 3}, None)
        got = kube.get(f"{group}/v1", "Widget", "w")
        assert got is not None and got["size"] == 3
        assert [w["metadata"]["name"] for w in kube.list(f"{group}/v1", "Widget")] == ["w"]
        assert kube.delete(f"{group}/v1", "Widget", "w") is True
        assert kube.delete(f"{group}/v1", "Widget", "w") is False
    finally:
        kube.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", f"widgets.{group}")
