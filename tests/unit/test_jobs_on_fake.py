"""Running a Job to its end on the fake adapter: the watch that waits for it, and what it reports."""

from __future__ import annotations

from typing import Any

from fakekube import FakeKube  # tests/ is on sys.path

from envci.kube.jobs import JOB_NAME_LABEL, job_object, run_job

NS = "envci-shop-pr-1"


def cluster() -> FakeKube:
    kube = FakeKube()
    kube.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    return kube


def finished(kind: str, reason: str = "", message: str = "") -> dict[str, Any]:
    return {"conditions": [{"type": kind, "status": "True", "reason": reason, "message": message}]}


def failed_pod(kube: FakeKube, job: str, name: str, exit_code: int) -> None:
    uid = kube.get("batch/v1", "Job", job, NS)["metadata"]["uid"]  # type: ignore[index]
    kube.add({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": name, "labels": {JOB_NAME_LABEL: job}, "ownerReferences": [{"kind": "Job", "name": job, "uid": uid, "controller": True}]},
        "status": {"phase": "Failed", "containerStatuses": [{"name": "main", "state": {"terminated": {"exitCode": exit_code, "reason": "Error"}}}]}}, NS)


def test_a_job_that_completes_is_seen_when_it_does() -> None:
    kube = cluster()
    kube.at(7, lambda k: k.set_status("Job", "load", NS, finished("Complete")))
    result = run_job(kube, NS, job_object("load", image="app:1"), timeout=60, log_lines=0, clock=kube.monotonic)  # type: ignore[arg-type]
    assert result.succeeded and result.seconds == 7 and kube.calls == ["apply Job/load"]


def test_a_failed_job_reports_the_controllers_reason_and_its_pods_logs() -> None:
    kube = cluster()

    def fail(k: FakeKube) -> None:
        failed_pod(k, "migrate", "migrate-abc", 3)
        k.logs[("migrate-abc", "", False)] = "applying 001.sql\nrelation users does not exist\n"
        k.set_status("Job", "migrate", NS, finished("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit"))

    kube.at(4, fail)
    result = run_job(kube, NS, job_object("migrate", image="app:1"), timeout=60, clock=kube.monotonic)  # type: ignore[arg-type]
    assert (result.state, result.reason) == ("failed", "BackoffLimitExceeded")
    assert "pod migrate-abc: main: Error, exit code 3" in result.message
    assert result.pods == ["migrate-abc"] and "relation users does not exist" in result.logs["migrate-abc"]


def test_a_job_still_running_at_the_timeout_fails_as_a_timeout() -> None:
    kube = cluster()
    result = run_job(kube, NS, job_object("slow", image="app:1"), timeout=90, log_lines=0, clock=kube.monotonic)  # type: ignore[arg-type]
    assert (result.state, result.reason) == ("failed", "Timeout") and result.message.startswith("not finished within 90s")
    assert 90 <= kube.elapsed < 91  # woken by each watch's own timeout, never polled in between


def test_a_job_deleted_while_awaited_fails_as_deleted() -> None:
    kube = cluster()
    kube.at(2, lambda k: k.delete("batch/v1", "Job", "gone", NS))
    result = run_job(kube, NS, job_object("gone", image="app:1"), timeout=60, log_lines=0, clock=kube.monotonic)  # type: ignore[arg-type]
    assert (result.state, result.reason) == ("failed", "Deleted") and kube.elapsed == 2  # seen on the watch, not at its timeout


def test_a_job_that_succeeded_with_the_same_spec_is_not_run_again_and_another_spec_replaces_it() -> None:
    kube = cluster()
    kube.at(1, lambda k: k.set_status("Job", "seed", NS, finished("Complete")))
    run_job(kube, NS, job_object("seed", image="app:1"), timeout=60, log_lines=0, clock=kube.monotonic)  # type: ignore[arg-type]
    kube.calls.clear()
    again = run_job(kube, NS, job_object("seed", image="app:1"), timeout=60, reuse_succeeded=True, clock=kube.monotonic)  # type: ignore[arg-type]
    assert again.reused and kube.calls == []
    kube.at(kube.elapsed + 1, lambda k: k.set_status("Job", "seed", NS, finished("Complete")))
    other = run_job(kube, NS, job_object("seed", image="app:2"), timeout=60, reuse_succeeded=True, log_lines=0, clock=kube.monotonic)  # type: ignore[arg-type]
    assert other.succeeded and not other.reused and kube.calls == ["delete Job/seed", "apply Job/seed"]
