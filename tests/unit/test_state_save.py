"""The environment's record: a save writes the ConfigMap each time, and the namespace's copy of
external resources once per process and then only when they change."""

from __future__ import annotations

import json

from fakekube import FakeKube  # tests/ is on sys.path

from envci import state as st


def namespace_writes(kube: FakeKube, ns: str) -> int:
    return sum(1 for c in kube.calls if c == f"patch Namespace/{ns}")


def test_the_namespace_is_written_again_only_when_external_resources_change() -> None:
    kube = FakeKube()
    kube.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "envci-a"}})
    state = st.EnvState(name="a", namespace="envci-a", app="shop")
    st.save(kube, state)  # type: ignore[arg-type]
    state.record("provision", "started")
    st.save(kube, state)  # type: ignore[arg-type]
    assert namespace_writes(kube, "envci-a") == 1
    state.add_external({"type": "s3", "name": "b"})
    st.save(kube, state)  # type: ignore[arg-type]
    assert namespace_writes(kube, "envci-a") == 2
    annotations = kube.namespace("envci-a")["metadata"]["annotations"]  # type: ignore[index]
    assert json.loads(annotations[st.EXTERNAL_ANNOTATION]) == [{"type": "s3", "name": "b"}]
    loaded = st.load(kube, "envci-a")  # type: ignore[arg-type]
    assert loaded is not None and loaded.history[-1]["stage"] == "provision"
    st.save(kube, loaded)  # type: ignore[arg-type]
    assert namespace_writes(kube, "envci-a") == 3  # another process (a loaded state) writes it once itself
    assert "external_on_namespace" not in kube.get("v1", "ConfigMap", st.STATE_CONFIGMAP, "envci-a")["data"]["state.json"]  # type: ignore[index]
