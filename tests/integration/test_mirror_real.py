"""Watches on a real API server: a Mirror follows changes made by another client without asking the
server again, an expired version is said to be expired, and closing a quiet watch ends its read."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from envci.kube.client import Kube, connect
from envci.kube.mirror import Mirror

pytestmark = pytest.mark.cluster

Obj = dict[str, Any]


def cm(name: str, value: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": value}}


def counted(kube: Kube) -> list[str]:
    """Every request `kube` sends from now on, as "METHOD path", with " (watch)" for a watch."""
    sent: list[str] = []
    transport = kube._http
    real = transport.request

    def request(method: str, path: str, **kw: Any) -> Any:
        sent.append(f"{method} {path}" + (" (watch)" if (kw.get("query") or {}).get("watch") else ""))
        return real(method, path, **kw)

    transport.request = request  # type: ignore[method-assign]
    return sent


def until(mirror: Mirror, check: Callable[[dict[str, str]], bool]) -> dict[str, str]:
    deadline = time.monotonic() + 10
    held: dict[str, str] = {}
    while time.monotonic() < deadline:
        mirror.wait(1)
        held = {o["metadata"]["name"]: o["data"]["v"] for o in mirror.objects()["ConfigMap"] if o["metadata"]["name"].startswith("m-")}
        if check(held):
            return held
    raise AssertionError(f"never seen; holds {held}")


def test_a_mirror_follows_another_clients_changes_on_its_open_watches_alone(kubeconfig: str, namespace: str) -> None:
    writer, reader = connect(kubeconfig), connect(kubeconfig)
    writer.apply(cm("m-a", "1"), namespace)
    sent = counted(reader)
    with reader.mirror(namespace, [("v1", "ConfigMap"), ("v1", "Pod")]) as m:
        assert until(m, lambda held: held == {"m-a": "1"})
        writer.apply(cm("m-b", "1"), namespace)
        assert until(m, lambda held: held == {"m-a": "1", "m-b": "1"})
        writer.apply(cm("m-a", "2"), namespace)
        assert until(m, lambda held: held == {"m-a": "2", "m-b": "1"})
        writer.delete("v1", "ConfigMap", "m-b", namespace)
        assert until(m, lambda held: held == {"m-a": "2"})
        assert m.objects()["Pod"] == []
    lists = [s for s in sent if not s.endswith("(watch)")]
    watches = [s for s in sent if s.endswith("(watch)")]
    assert sorted(lists) == sorted([f"GET /api/v1/namespaces/{namespace}/configmaps", f"GET /api/v1/namespaces/{namespace}/pods"])
    assert len(watches) == 2, sent  # one per kind, kept open through every change


def test_a_watch_from_a_version_the_server_no_longer_has_is_expired(kubeconfig: str, namespace: str) -> None:
    kube = connect(kubeconfig)
    for i in range(3):
        kube.apply(cm(f"m-{i}", "1"), namespace)
    stream = kube.open_watch("v1", "ConfigMap", namespace, resource_version="1", seconds=5)
    assert list(stream) == [] and stream.expired


def test_closing_a_quiet_watch_ends_its_read_at_once(kubeconfig: str, namespace: str) -> None:
    kube = connect(kubeconfig)
    _, version = kube.list_with_version("v1", "ConfigMap", namespace)
    stream = kube.open_watch("v1", "ConfigMap", namespace, resource_version=version, seconds=60)
    done = threading.Event()
    threading.Thread(target=lambda: (list(stream), done.set()), daemon=True).start()
    assert not done.wait(0.5)  # nothing changes: the read blocks
    started = time.monotonic()
    stream.close()
    assert done.wait(5), "the read went on after close"
    assert time.monotonic() - started < 2
    assert kube.list("v1", "ConfigMap", namespace) is not None  # the client works on after a closed watch
