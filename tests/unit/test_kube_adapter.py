"""The adapter's typed methods over the Kubernetes client: what each answer of the API becomes.

The generated API objects are replaced by stubs that answer as the API server would (a status, a
dropped connection); everything above the adapter is tested on tests/fakekube.py instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3

from envci.errors import InfrastructureError
from envci.kube import client as kc
from envci.kube.client import NO_RETRIES, Kube, RetryPolicy, WatchEvent
from envci.kube.transport import ApiError
from kubestub import transport  # tests/ is on sys.path

FORBIDDEN = '{"kind": "Status", "message": "leases.coordination.k8s.io is forbidden: User \\"ci\\" cannot create"}'


ONE_QUICK_RETRY = RetryPolicy(backoffs=(0,))


def kube(retry: RetryPolicy = ONE_QUICK_RETRY) -> Kube:
    return Kube(transport(), retry)  # no request is sent: the adapter's request method is stubbed


def refusal(status: int, body: str = "") -> ApiError:
    return ApiError(status, "x", body)


class Answers:
    """A stub of the adapter's one request method: answers with what `answer` holds (a JSON body, a
    list of watch lines, or an error), and records each request."""

    def __init__(self, answer: Any) -> None:
        self.answer, self.calls = answer, 0
        self.requests: list[dict[str, Any]] = []

    def __call__(self, method: str, path: str, **kwargs: Any) -> Any:
        self.calls += 1
        self.requests.append({"method": method, "path": path, **kwargs})
        if isinstance(self.answer, BaseException):
            raise self.answer
        if kwargs.get("stream"):
            self.last = Stream(self.answer)
            return self.last
        return self.answer


class Stream:
    """An open response of watch events, one JSON per line, that may end with an error."""

    def __init__(self, script: list[Any]) -> None:
        self.script, self.released, self.closed = script, False, False

    def stream(self, amt: Any = None, decode_content: bool = False) -> Iterator[bytes]:
        for step in self.script:
            if isinstance(step, BaseException):
                raise step
            yield (json.dumps({"type": step[0], "object": step[1]}) + "\n\n").encode()

    def release_conn(self) -> None:
        self.released = True

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(("call", "declined"), [
    (lambda k: k.create_lease("ns", {"metadata": {"name": "l"}}), 409),
    (lambda k: k.replace_lease("ns", {"metadata": {"name": "l"}}), 409),
    (lambda k: k.delete_lease("ns", "l"), 404),
])
def test_a_lease_write_is_declined_only_by_the_answer_its_caller_expects(call: Any, declined: int) -> None:
    k = kube()
    k._rest = Answers(refusal(declined))  # type: ignore[method-assign]
    assert call(k) is False
    k._rest = stub = Answers({})  # type: ignore[method-assign]
    assert call(k) is True
    assert stub.requests[0]["path"].startswith("/apis/coordination.k8s.io/v1/namespaces/ns/leases")
    k._rest = Answers(refusal(404 if declined == 409 else 409))  # type: ignore[method-assign]  # e.g. no namespace: not "someone holds it"
    with pytest.raises(InfrastructureError):
        call(k)
    k._rest = Answers(refusal(403, FORBIDDEN))  # type: ignore[method-assign]
    with pytest.raises(InfrastructureError, match=r"Kubernetes API refused to \w+ lease in ns: leases.coordination.k8s.io is forbidden") as ei:
        call(k)
    assert "RBAC" in (ei.value.hint or "")


def test_a_missing_lease_reads_as_none_and_an_unreachable_server_as_an_infrastructure_error() -> None:
    k = kube()
    k._rest = Answers(refusal(404))  # type: ignore[method-assign]
    assert k.get_lease("ns", "l") is None
    once = k.with_retry(NO_RETRIES)
    stub = once._rest = Answers(urllib3.exceptions.ProtocolError("connection reset"))  # type: ignore[method-assign]
    with pytest.raises(InfrastructureError, match="cannot reach the Kubernetes API to read lease in ns after 1 attempts: ProtocolError"):
        once.get_lease("ns", "l", timeout=3)
    assert stub.calls == 1 and stub.requests[0]["timeout"] == 3  # no retry: the renewal thread has a round of its own
    once._rest = Answers(FileNotFoundError("/var/run/secrets/kubernetes.io/serviceaccount/token"))  # type: ignore[method-assign]
    with pytest.raises(InfrastructureError, match="cannot read lease in ns: FileNotFoundError: .*/token"):
        once.get_lease("ns", "l")  # never a bare OSError out of the adapter: the lease logs it and carries on


def test_a_secret_that_does_not_exist_reads_as_none() -> None:
    k = kube()
    k._rest = Answers(refusal(404))  # type: ignore[method-assign]
    assert k.secret_data("ns", "s") is None
    k._rest = Answers({"kind": "Secret", "data": {"token": "dG9r"}})  # type: ignore[method-assign]
    assert k.secret_data("ns", "s") == {"token": "dG9r"}


def test_one_watch_serves_pods_and_jobs_and_hands_out_plain_objects() -> None:
    job = {"metadata": {"name": "load"}, "status": {"active": 1}}
    k = kube()
    k._rest = stub = Answers([("MODIFIED", job)])  # type: ignore[method-assign]
    assert list(k.watch("Job", "ns", name="load", resource_version="7", seconds=30)) == [WatchEvent("MODIFIED", job)]
    [req] = stub.requests
    assert req["path"] == "/apis/batch/v1/namespaces/ns/jobs" and req["query"]["fieldSelector"] == "metadata.name=load"
    assert req["query"]["watch"] is True and req["query"]["timeoutSeconds"] == 30 and req["query"]["resourceVersion"] == "7"
    k._rest = stub = Answers([])  # type: ignore[method-assign]
    assert list(k.watch("Pod", "ns", seconds=0.5)) == []
    [req] = stub.requests
    assert req["path"] == "/api/v1/namespaces/ns/pods" and req["query"]["fieldSelector"] is None and req["query"]["timeoutSeconds"] == 1


@pytest.mark.parametrize("end", [refusal(410), urllib3.exceptions.ProtocolError("dropped"), ConnectionResetError()])
def test_an_expired_or_dropped_watch_just_ends(end: BaseException) -> None:
    k = kube()
    k._rest = Answers([("ADDED", {"metadata": {"name": "p"}}), end])  # type: ignore[method-assign]
    assert [e.type for e in k.watch("Pod", "ns", seconds=5)] == ["ADDED"]


def test_an_expired_resource_version_reported_inside_the_watch_just_ends() -> None:
    k = kube()
    k._rest = Answers([("ADDED", {"metadata": {"name": "p"}}), ("ERROR", {"kind": "Status", "code": 410, "message": "too old"}),  # type: ignore[method-assign]
                       ("ADDED", {"metadata": {"name": "q"}})])
    assert [e.object["metadata"]["name"] for e in k.watch("Pod", "ns", seconds=5)] == ["p"]


def test_any_other_error_inside_a_watch_of_pods_or_jobs_is_raised_with_what_it_watched() -> None:
    k = kube()
    k._rest = Answers([("ERROR", {"kind": "Status", "code": 500, "message": "etcd is gone"})])  # type: ignore[method-assign]
    with pytest.raises(InfrastructureError, match="Kubernetes API refused to watch Job load: etcd is gone"):
        list(k.watch("Job", "ns", name="load", seconds=5))


def test_a_watch_left_at_its_first_event_does_not_hand_back_a_half_read_connection() -> None:
    k = kube()
    k._rest = stub = Answers([("ADDED", {"metadata": {"name": "p"}}), ("ADDED", {"metadata": {"name": "q"}})])  # type: ignore[method-assign]
    for _ in k.watch("Pod", "ns", seconds=5):
        break
    assert stub.last.closed and not stub.last.released


def test_a_refused_watch_says_what_it_watched() -> None:
    k = kube()
    k._rest = Answers(refusal(403, '{"kind": "Status", "message": "jobs.batch is forbidden"}'))  # type: ignore[method-assign]
    with pytest.raises(InfrastructureError, match="Kubernetes API refused to watch Job load: jobs.batch is forbidden"):
        list(k.watch("Job", "ns", name="load", seconds=5))


class FakeExecStream:
    def __init__(self, *, still_open: bool, status: str = "", output: str = "") -> None:
        self.open, self.status, self.output, self.closed = still_open, status, output, False

    def run_forever(self, timeout: float) -> None:
        pass

    def is_open(self) -> bool:
        return self.open

    def close(self) -> None:
        self.closed = True

    def read_channel(self, channel: int, timeout: float = 0) -> str:
        assert channel == kc.EXEC_ERROR_CHANNEL
        return self.status

    def read_all(self) -> str:
        return self.output


def test_exec_returns_the_final_status_and_the_output(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = FakeExecStream(still_open=False, status='{"status": "Success"}', output="loaded 3 rows\n")
    monkeypatch.setattr(kc, "_stream", lambda *a, **kw: stream)
    result = kube().exec("ns", "web-0", ["load"], container="app", timeout=5)
    assert result == kc.ExecResult(True, {"status": "Success"}, "loaded 3 rows\n")


def test_exec_still_running_at_its_timeout_is_closed_and_unfinished(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = FakeExecStream(still_open=True, output="half")
    monkeypatch.setattr(kc, "_stream", lambda *a, **kw: stream)
    result = kube().exec("ns", "web-0", ["sleep", "99"], container=None, timeout=1)
    assert (result.finished, result.status, result.output, stream.closed) == (False, None, "half", True)


def test_exec_failures_become_infrastructure_errors_naming_the_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*a: Any, **kw: Any) -> Any:
        raise RuntimeError("handshake status 500 Internal Server Error")

    monkeypatch.setattr(kc, "_stream", broken)
    with pytest.raises(InfrastructureError, match="exec in pod ns/web-0 failed: handshake status 500"):
        kube().exec("ns", "web-0", ["x"], container=None, timeout=1)


def cm_at(name: str, version: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": version}}


def test_an_open_watch_yields_changes_and_goes_on_from_its_last_version_bookmarks_included() -> None:
    k = kube()
    k._rest = stub = Answers([("ADDED", cm_at("a", "5")), ("BOOKMARK", cm_at("", "9"))])  # type: ignore[method-assign]
    stream = k.open_watch("v1", "ConfigMap", "ns", resource_version="4", seconds=50)
    assert [(e.type, e.object["metadata"]["name"]) for e in stream] == [("ADDED", "a")]
    assert (stream.version, stream.expired) == ("9", False)
    assert stub.requests[0]["query"] == {"watch": True, "resourceVersion": "4", "timeoutSeconds": 50, "allowWatchBookmarks": True}
    assert "timeout" not in stub.requests[0]  # the adapter's own read timeout: a silent connection is given up
    assert stub.last.released and not stub.last.closed  # read to its end: the connection serves the next request


@pytest.mark.parametrize("code", [410, 500])
def test_a_watch_the_server_ends_with_an_error_asks_for_a_new_list(code: int) -> None:
    k = kube()
    answer = Answers([("ADDED", cm_at("a", "5")), ("ERROR", {"kind": "Status", "code": code, "message": "too old resource version"})])
    k._rest = answer  # type: ignore[method-assign]
    stream = k.open_watch("v1", "ConfigMap", "ns", resource_version="4", seconds=50)
    assert len(list(stream)) == 1 and stream.expired
    assert answer.last.closed  # left mid-answer


def test_a_dropped_watch_ends_quietly_and_its_connection_is_not_reused() -> None:
    k = kube()
    k._rest = stub = Answers([("ADDED", cm_at("a", "5")), urllib3.exceptions.ProtocolError("reset")])  # type: ignore[method-assign]
    stream = k.open_watch("v1", "ConfigMap", "ns", resource_version="4", seconds=50)
    assert len(list(stream)) == 1 and not stream.expired and stream.version == "5"
    assert stub.last.closed and not stub.last.released


@pytest.mark.parametrize(("status", "outcome"), [(403, kc.WatchRefused), (410, None), (500, InfrastructureError)])
def test_opening_a_watch_answers_refusal_expiry_and_failure_apart(status: int, outcome: Any) -> None:
    k = kube(NO_RETRIES)
    k._rest = Answers(refusal(status, FORBIDDEN))  # type: ignore[method-assign]
    if outcome is None:
        stream = k.open_watch("v1", "ConfigMap", "ns", resource_version="4", seconds=50)
        assert list(stream) == [] and stream.expired
    else:
        with pytest.raises(outcome):
            k.open_watch("v1", "ConfigMap", "ns", resource_version="4", seconds=50)


def test_delete_all_is_one_request_to_one_namespaces_collection_and_never_every_namespaces() -> None:
    k = kube()
    k._rest = stub = Answers({})  # type: ignore[method-assign]
    k.delete_all("v1", "Pod", "envci-pr-1")
    assert [(r["method"], r["path"], r["body"]) for r in stub.requests] == [
        ("DELETE", "/api/v1/namespaces/envci-pr-1/pods", {"propagationPolicy": "Background"})]
    k._rest = Answers(refusal(404))  # type: ignore[method-assign]
    k.delete_all("v1", "Pod", "gone")  # nothing there: nothing to do
    k._rest = Answers(refusal(403, FORBIDDEN))  # type: ignore[method-assign]
    with pytest.raises(InfrastructureError, match="refused to delete the Pods in envci-pr-1"):
        k.delete_all("v1", "Pod", "envci-pr-1")
    k._rest = stub = Answers({})  # type: ignore[method-assign]
    with pytest.raises(ValueError):
        k.delete_all("v1", "Pod", "")
    assert stub.requests == []
