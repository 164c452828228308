"""The node agent's object mirror: events applied to the copy, 410 relists at once, failures back off.

The list function is faked at the HTTP response (what the kubernetes client returns with
`_preload_content=False`): a body for a list, a stream of JSON lines for a watch.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from envci.localcluster import kubewatch
from envci.localcluster.kubewatch import Gone, Mirror, apply_event


def pod(name: str, rv: str, ns: str = "envci-a") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": rv}, "status": {"podIP": "198.18.1.9"}}


def test_apply_event() -> None:
    objects: dict[str, Any] = {}
    assert apply_event(objects, {"type": "ADDED", "object": pod("a", "5")}) == "5"
    assert apply_event(objects, {"type": "MODIFIED", "object": {**pod("a", "6"), "spec": {"x": 1}}}) == "6"
    assert objects["envci-a/a"]["spec"] == {"x": 1}
    assert apply_event(objects, {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}}) == "9"
    assert list(objects) == ["envci-a/a"]
    apply_event(objects, {"type": "DELETED", "object": pod("a", "10")})
    assert objects == {}
    with pytest.raises(Gone):
        apply_event(objects, {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}})
    with pytest.raises(RuntimeError, match="500"):
        apply_event(objects, {"type": "ERROR", "object": {"kind": "Status", "code": 500, "message": "boom"}})


class Response:
    def __init__(self, data: bytes = b"", lines: list[dict[str, Any]] | None = None) -> None:
        self.data = data
        self._lines = lines or []
        self.released = False

    def stream(self, amt: int = 0, decode_content: bool = True) -> Any:
        text = "".join(json.dumps(e) + "\n" for e in self._lines).encode()
        # split mid-line, as a socket does
        yield from (text[i:i + 7] for i in range(0, len(text), 7))

    def release_conn(self) -> None:
        self.released = True


class FakeApi:
    """Answers calls in order from a script of (expected call kind, response or exception)."""

    def __init__(self, script: list[tuple[str, Any]], stop: threading.Event) -> None:
        self.script = script
        self.calls: list[dict[str, Any]] = []
        self.stop = stop

    def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        if not self.script:
            self.stop.set()
            return Response(lines=[])
        kind, answer = self.script.pop(0)
        assert kind == ("watch" if kwargs.get("watch") else "list"), kwargs
        if isinstance(answer, Exception):
            raise answer
        return answer


def listing(rv: str, *items: dict[str, Any]) -> Response:
    return Response(json.dumps({"kind": "PodList", "metadata": {"resourceVersion": rv}, "items": list(items)}).encode())


def test_mirror_relists_after_410_and_backs_off_after_failures() -> None:
    stop = threading.Event()
    sleeps: list[float] = []
    changes: list[int] = []
    api = FakeApi([
        ("list", listing("10", pod("a", "3"))),
        ("watch", Response(lines=[{"type": "ADDED", "object": pod("b", "11")},
                                  {"type": "BOOKMARK", "object": {"kind": "Pod", "metadata": {"resourceVersion": "12"}}}])),
        ("watch", Response(lines=[{"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}])),
        ("list", ConnectionRefusedError("API server restarting")),
        ("list", ConnectionRefusedError("API server restarting")),
        ("list", listing("20", pod("c", "19"))),
        ("watch", ConnectionResetError("connection reset")),
        ("list", listing("30", pod("c", "19"))),
    ], stop)
    mirror = Mirror("pods", api, lambda: changes.append(1), stop, sleep=lambda s: sleeps.append(s) or False)
    mirror.run()
    assert sorted(o["metadata"]["name"] for o in mirror.snapshot()) == ["c"]
    assert mirror.synced
    assert sleeps == [*kubewatch.BACKOFF[:2], kubewatch.BACKOFF[0]]  # none after the 410; a good list resets it
    watches = [c for c in api.calls if c.get("watch")]
    assert [w["resource_version"] for w in watches] == ["10", "12", "20", "30"]  # resumes from the bookmark
    assert all(w["allow_watch_bookmarks"] and w["timeout_seconds"] == kubewatch.WATCH_SECONDS for w in watches)
    assert len(changes) == 4  # three lists and one ADDED; the bookmark is no change
