"""The Mirror's watchers on a scripted adapter: events change what it holds, a watch that ends goes on
from where it was, an expired one lists again, a kind that may not be watched is polled, and an
error the watcher cannot get past reaches the waiting thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from envci.errors import InfrastructureError
from envci.kube import mirror as mirror_mod
from envci.kube.client import WatchEvent, WatchRefused
from envci.kube.mirror import Mirror, applied

Obj = dict[str, Any]


def cm(name: str, version: str, value: str = "1") -> Obj:
    return {"kind": "ConfigMap", "metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": version}, "data": {"v": value}}


class Stream:
    """A watch as scripted: its events, then either the end (expired or not) or, with `hold`, a
    read that blocks until closed, as a quiet watch does."""

    def __init__(self, events: list[WatchEvent], *, expired: bool = False, hold: bool = False) -> None:
        self.events, self.expired, self.hold = events, expired, hold
        self.version: str | None = None
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[WatchEvent]:
        for e in self.events:
            self.version = e.object["metadata"]["resourceVersion"]
            yield e
        if self.hold:
            self.closed.wait(10)

    def close(self) -> None:
        self.closed.set()


class Scripted:
    """The two adapter calls a Mirror makes, answering from scripts and recording each call."""

    def __init__(self, lists: list[tuple[list[Obj], str] | Exception], watches: list[Stream | Exception]) -> None:
        self.lists, self.watches = lists, watches
        self.calls: list[tuple[str, str | None]] = []
        self.opened: list[Stream] = []

    def list_with_version(self, api_version: str, kind: str, namespace: str) -> tuple[list[Obj], str | None]:
        self.calls.append(("list", None))
        answer = self.lists.pop(0) if len(self.lists) > 1 else self.lists[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def open_watch(self, api_version: str, kind: str, namespace: str, *, resource_version: str | None, seconds: float) -> Stream:
        self.calls.append(("watch", resource_version))
        answer = self.watches.pop(0) if self.watches else Stream([], hold=True)
        if isinstance(answer, Exception):
            raise answer
        self.opened.append(answer)
        return answer


def until(mirror: Mirror, check: Callable[[dict[str, list[Obj]]], bool]) -> dict[str, list[Obj]]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        mirror.wait(0.5)
        seen = mirror.objects()
        if check(seen):
            return seen
    raise AssertionError(f"never seen; holds {mirror.objects()}")


def names(seen: dict[str, list[Obj]]) -> dict[str, str]:
    return {o["metadata"]["name"]: o["data"]["v"] for o in seen["ConfigMap"]}


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mirror_mod, "PAUSE_SECONDS", 0.01)
    monkeypatch.setattr(mirror_mod, "POLL_SECONDS", 0.01)


def test_applied_adds_replaces_and_removes_by_uid() -> None:
    held = {"uid-a": cm("a", "1")}
    held = applied(held, WatchEvent("ADDED", cm("b", "2")))
    held = applied(held, WatchEvent("MODIFIED", cm("a", "3", "2")))
    assert {k: v["data"]["v"] for k, v in held.items()} == {"uid-a": "2", "uid-b": "1"}
    assert list(applied(held, WatchEvent("DELETED", cm("b", "4")))) == ["uid-a"]


def test_what_is_listed_is_held_at_once_and_nothing_is_watched_before_a_wait() -> None:
    kube = Scripted([([cm("a", "1")], "5")], [])
    with Mirror(kube, "ns", [("v1", "ConfigMap")]) as m:  # type: ignore[arg-type]
        assert names(m.objects()) == {"a": "1"}
        assert kube.calls == [("list", None)]
    assert kube.opened == []


def test_events_change_what_it_holds_and_wake_the_wait() -> None:
    bare = {k: v for k, v in cm("c", "9").items() if k != "kind"}  # as a stub may send it; the rules need the kind
    kube = Scripted([([cm("a", "1")], "5")], [Stream([WatchEvent("ADDED", cm("b", "6")), WatchEvent("MODIFIED", cm("a", "7", "2")),
                                                      WatchEvent("DELETED", cm("b", "8")), WatchEvent("ADDED", bare)], hold=True)])
    with Mirror(kube, "ns", [("v1", "ConfigMap")]) as m:  # type: ignore[arg-type]
        seen = until(m, lambda seen: names(seen) == {"a": "2", "c": "1"})
        assert {(o["kind"], o["apiVersion"]) for o in seen["ConfigMap"] if o["metadata"]["name"] == "c"} == {("ConfigMap", "v1")}
        assert kube.calls == [("list", None), ("watch", "5")]  # from the version listed
        stream = kube.opened[0]
    assert stream.closed.is_set()  # closing the mirror ends the blocked read


def test_a_watch_the_server_ends_goes_on_from_its_last_event_without_listing_again() -> None:
    kube = Scripted([([], "5")], [Stream([WatchEvent("ADDED", cm("a", "9"))]), Stream([WatchEvent("ADDED", cm("b", "12"))], hold=True)])
    with Mirror(kube, "ns", [("v1", "ConfigMap")]) as m:  # type: ignore[arg-type]
        until(m, lambda seen: names(seen) == {"a": "1", "b": "1"})
    assert kube.calls == [("list", None), ("watch", "5"), ("watch", "9")]


def test_an_expired_version_lists_again_and_replaces_what_it_held() -> None:
    kube = Scripted([([cm("a", "1")], "5"), ([cm("c", "20")], "21")], [Stream([], expired=True), Stream([], hold=True)])
    with Mirror(kube, "ns", [("v1", "ConfigMap")]) as m:  # type: ignore[arg-type]
        until(m, lambda seen: names(seen) == {"c": "1"})  # a, deleted while no watch ran, is gone too
        deadline = time.monotonic() + 5
        while len(kube.calls) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert kube.calls == [("list", None), ("watch", "5"), ("list", None), ("watch", "21")]


def test_a_kind_that_may_be_listed_but_not_watched_is_listed_again_and_again() -> None:
    kube = Scripted([([cm("a", "1")], "5"), ([cm("a", "1"), cm("b", "6")], "6")], [WatchRefused("Kubernetes API refused to watch")])
    with Mirror(kube, "ns", [("v1", "ConfigMap")]) as m:  # type: ignore[arg-type]
        until(m, lambda seen: names(seen) == {"a": "1", "b": "1"})
    assert kube.calls[:3] == [("list", None), ("watch", "5"), ("list", None)]


def test_an_error_the_watcher_cannot_get_past_is_raised_to_the_waiting_thread() -> None:
    gone = InfrastructureError("cannot reach the Kubernetes API to list ConfigMap: ConnectionRefusedError")
    kube = Scripted([([cm("a", "1")], "5"), gone], [Stream([], expired=True)])
    with Mirror(kube, "ns", [("v1", "ConfigMap")]) as m:  # type: ignore[arg-type]
        assert m.wait(5) is True  # woken by the failure, not left to its timeout
        with pytest.raises(InfrastructureError, match="cannot reach the Kubernetes API"):
            m.objects()


def test_a_failing_first_list_fails_the_caller_at_once() -> None:
    kube = Scripted([InfrastructureError("Kubernetes API refused to list ConfigMap: forbidden")], [])
    with pytest.raises(InfrastructureError, match="forbidden"):
        Mirror(kube, "ns", [("v1", "ConfigMap")])  # type: ignore[arg-type]
