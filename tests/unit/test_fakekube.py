"""The in-memory fake stays true to the `Kube` adapter it stands in for: same methods, and the
cluster behaviour stage tests lean on."""

from __future__ import annotations

import inspect

import pytest
from fakekube import FakeKube  # tests/ is on sys.path

from envci.errors import ConfigError, InfrastructureError
from envci.kube.client import Kube


def ns(name: str, **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def cm(name: str, **meta: object) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **meta}, "data": {"a": "1"}}


def public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {n: inspect.signature(f) for n, f in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_")}


def test_the_fake_has_every_method_of_the_adapter_with_the_same_parameters() -> None:
    real, fake = public_methods(Kube), public_methods(FakeKube)
    missing = sorted(set(real) - set(fake))
    assert not missing, f"FakeKube lacks {missing}"
    for name, sig in real.items():
        want = [(p.name, p.kind, p.default) for p in sig.parameters.values()]
        have = [(p.name, p.kind, p.default) for p in fake[name].parameters.values()]
        assert have == want, f"FakeKube.{name}{fake[name]} differs from Kube.{name}{sig}"


def test_objects_live_only_in_a_namespace_that_exists() -> None:
    kube = FakeKube()
    with pytest.raises(InfrastructureError, match='namespaces "a" not found'):
        kube.apply(cm("x"), "a")
    kube.apply(ns("a", team="x"), None)
    kube.apply(cm("x"), "a")
    assert kube.get("v1", "ConfigMap", "x", "a")["data"] == {"a": "1"}
    assert [n["metadata"]["name"] for n in kube.namespaces("team=x")] == ["a"]
    assert kube.namespaces("team=y") == []


def test_deleting_a_namespace_takes_its_objects_and_a_finalizer_holds_it_terminating() -> None:
    kube = FakeKube()
    kube.apply(ns("a"), None)
    kube.apply(cm("plain"), "a")
    kube.apply(cm("held", finalizers=["example.com/hold"]), "a")
    assert kube.delete("v1", "Namespace", "a")
    assert kube.get("v1", "ConfigMap", "plain", "a") is None
    assert kube.namespace("a")["status"]["phase"] == "Terminating"
    with pytest.raises(InfrastructureError, match="being terminated"):
        kube.apply(cm("late"), "a")
    kube.patch_merge("v1", "ConfigMap", "held", {"metadata": {"finalizers": None}}, "a")
    assert kube.namespace("a") is None
    assert not kube.delete("v1", "Namespace", "a")  # already gone


def test_an_emptied_namespace_can_linger_for_some_reads() -> None:
    kube = FakeKube(linger=2)
    kube.apply(ns("a"), None)
    kube.delete("v1", "Namespace", "a")
    assert [kube.namespace("a") is None for _ in range(3)] == [False, False, True]


def test_a_lease_is_replaced_only_from_the_version_last_read() -> None:
    kube = FakeKube()
    kube.apply(ns("a"), None)
    body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"}, "spec": {"holderIdentity": "me"}}
    assert kube.create_lease("a", body) and not kube.create_lease("a", body)
    first = kube.get_lease("a", "l")
    second = kube.get_lease("a", "l")
    second["spec"]["holderIdentity"] = "other"
    assert kube.replace_lease("a", second)
    assert not kube.replace_lease("a", first)  # stale resourceVersion: a conflict
    assert kube.get_lease("a", "l")["spec"]["holderIdentity"] == "other"
    assert kube.delete_lease("a", "l") and not kube.delete_lease("a", "l")


def test_discovery_and_failures_answer_as_the_adapter_does() -> None:
    kube = FakeKube()
    assert kube.is_namespaced("apps/v1", "Deployment") and not kube.is_namespaced("rbac.authorization.k8s.io/v1", "ClusterRole")
    with pytest.raises(ConfigError, match="no API for Widget"):
        kube.is_namespaced("example.com/v1", "Widget")
    kube.fail("get", InfrastructureError("boom"), times=1)
    with pytest.raises(InfrastructureError):
        kube.namespace("a")
    assert kube.namespace("a") is None


def test_waiting_moves_the_clock_to_the_next_change_or_the_timeout() -> None:
    kube = FakeKube()
    kube.apply(ns("a"), None)
    kube.at(3, lambda k: k.add(cm("x"), "a"))
    kube.at(5, lambda k: k.delete("v1", "ConfigMap", "x", "a"))
    events = kube.watch("ConfigMap", "a", seconds=10)
    first = next(events)
    assert (first.type, first.object["metadata"]["name"], kube.elapsed) == ("ADDED", "x", 3)
    assert [e.type for e in events] == ["DELETED"] and kube.elapsed == 10  # on to the watch's own timeout
    kube.wait_for_pod_change("a", 2)
    assert kube.elapsed == 12
