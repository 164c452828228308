"""The adapter's typed methods over the Kubernetes client: what each answer of the API becomes.

The generated API objects are replaced by stubs that answer as the API server would (a status, a
dropped connection); everything above the adapter is tested on tests/fakekube.py instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from envci.errors import InfrastructureError
from envci.kube import client as kc
from envci.kube.client import NO_RETRIES, Kube, RetryPolicy, WatchEvent

FORBIDDEN = '{"kind": "Status", "message": "leases.coordination.k8s.io is forbidden: User \\"ci\\" cannot create"}'


ONE_QUICK_RETRY = RetryPolicy(backoffs=(0,))


def kube(retry: RetryPolicy = ONE_QUICK_RETRY) -> Kube:
    return Kube(client.ApiClient(), retry)  # no request is sent: the API objects are stubbed


def refusal(status: int, body: str = "") -> ApiException:
    e = ApiException(status=status, reason="x")
    e.body = body
    return e


class Answers:
    """A stub API object: each method answers with what `answer` holds (an object or an error),
    and counts its calls."""

    def __init__(self, answer: Any) -> None:
        self.answer, self.calls = answer, 0

    def __getattr__(self, name: str) -> Any:
        def method(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if isinstance(self.answer, BaseException):
                raise self.answer
            return self.answer

        return method


@pytest.mark.parametrize(("call", "declined"), [
    (lambda k: k.create_lease("ns", {"metadata": {"name": "l"}}), 409),
    (lambda k: k.replace_lease("ns", {"metadata": {"name": "l"}}), 409),
    (lambda k: k.delete_lease("ns", "l"), 404),
])
def test_a_lease_write_is_declined_only_by_the_answer_its_caller_expects(call: Any, declined: int) -> None:
    k = kube()
    k._coordination = Answers(refusal(declined))
    assert call(k) is False
    k._coordination = Answers({})
    assert call(k) is True
    k._coordination = Answers(refusal(404 if declined == 409 else 409))  # e.g. no namespace: not "someone holds it"
    with pytest.raises(InfrastructureError):
        call(k)
    k._coordination = Answers(refusal(403, FORBIDDEN))
    with pytest.raises(InfrastructureError, match=r"Kubernetes API refused to \w+ lease in ns: leases.coordination.k8s.io is forbidden") as ei:
        call(k)
    assert "RBAC" in (ei.value.hint or "")


def test_a_missing_lease_reads_as_none_and_an_unreachable_server_as_an_infrastructure_error() -> None:
    k = kube()
    k._coordination = Answers(refusal(404))
    assert k.get_lease("ns", "l") is None
    once = k.with_retry(NO_RETRIES)
    stub = once._coordination = Answers(urllib3.exceptions.ProtocolError("connection reset"))
    with pytest.raises(InfrastructureError, match="cannot reach the Kubernetes API to read lease in ns after 1 attempts: ProtocolError"):
        once.get_lease("ns", "l", timeout=3)
    assert stub.calls == 1  # no retry: the renewal thread has a round of its own
    once._coordination = Answers(FileNotFoundError("/var/run/secrets/kubernetes.io/serviceaccount/token"))
    with pytest.raises(InfrastructureError, match="cannot read lease in ns: FileNotFoundError: .*/token"):
        once.get_lease("ns", "l")  # never a bare OSError out of the adapter: the lease logs it and carries on


def test_a_secret_that_does_not_exist_reads_as_none() -> None:
    k = kube()
    k._core = Answers(refusal(404))
    assert k.secret_data("ns", "s") is None
    k._core = Answers(client.V1Secret(data={"token": "dG9r"}))
    assert k.secret_data("ns", "s") == {"token": "dG9r"}


class FakeWatch:
    """kubernetes.watch.Watch as Kube.watch uses it: `stream` yields events, then ends as scripted."""

    script: list[Any] = []
    seen: dict[str, Any] = {}

    def stream(self, func: Any, *args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
        FakeWatch.seen = {"func": func.__name__, "args": args, **kwargs}
        for step in FakeWatch.script:
            if isinstance(step, BaseException):
                raise step
            yield {"type": step[0], "object": object(), "raw_object": step[1]}

    def stop(self) -> None:
        FakeWatch.seen["stopped"] = True


@pytest.fixture
def watching(monkeypatch: pytest.MonkeyPatch) -> type[FakeWatch]:
    monkeypatch.setattr(kc.watch, "Watch", FakeWatch)
    return FakeWatch


def test_one_watch_serves_pods_and_jobs_and_hands_out_plain_objects(watching: type[FakeWatch]) -> None:
    job = {"metadata": {"name": "load"}, "status": {"active": 1}}
    watching.script = [("MODIFIED", job)]
    assert list(kube().watch("Job", "ns", name="load", resource_version="7", seconds=30)) == [WatchEvent("MODIFIED", job)]
    assert watching.seen["func"] == "list_namespaced_job" and watching.seen["field_selector"] == "metadata.name=load"
    assert watching.seen["timeout_seconds"] == 30 and watching.seen["resource_version"] == "7" and watching.seen["stopped"]
    watching.script = []
    assert list(kube().watch("Pod", "ns", seconds=0.5)) == []
    assert watching.seen["func"] == "list_namespaced_pod" and "field_selector" not in watching.seen and watching.seen["timeout_seconds"] == 1


@pytest.mark.parametrize("end", [refusal(410), urllib3.exceptions.ProtocolError("dropped"), ConnectionResetError()])
def test_an_expired_or_dropped_watch_just_ends(watching: type[FakeWatch], end: BaseException) -> None:
    watching.script = [("ADDED", {"metadata": {"name": "p"}}), end]
    assert [e.type for e in kube().watch("Pod", "ns", seconds=5)] == ["ADDED"]
    assert watching.seen["stopped"]


def test_a_refused_watch_says_what_it_watched(watching: type[FakeWatch]) -> None:
    watching.script = [refusal(403, '{"kind": "Status", "message": "jobs.batch is forbidden"}')]
    with pytest.raises(InfrastructureError, match="Kubernetes API refused to watch Job load: jobs.batch is forbidden"):
        list(kube().watch("Job", "ns", name="load", seconds=5))
    with pytest.raises(InfrastructureError, match="refused to watch pods in ns"):
        list(kube().watch("Pod", "ns", seconds=5))


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
