"""Pure Job rules shared by seed and test Jobs: manifest, outcome, pod failure reasons."""

from __future__ import annotations

from envci.kube.jobs import (
    SPEC_HASH_ANNOTATION,
    JobResult,
    job_object,
    outcome,
    pod_failure,
    pods_of_job,
    spec_hash,
)


def test_job_object_never_restarts_in_place_and_carries_its_spec_hash() -> None:
    obj = job_object("load", image="app:1", command=["sh", "-c", "load"], env={"B": "2", "A": "1"}, pod_labels={"x": "y"}, deadline_seconds=60)
    spec = obj["spec"]
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] == 60
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["containers"][0]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert spec["template"]["metadata"]["labels"] == {"x": "y"}
    assert obj["metadata"]["annotations"][SPEC_HASH_ANNOTATION] == spec_hash(obj)


def test_spec_hash_changes_with_the_command_only() -> None:
    a = job_object("load", image="app:1", command=["a"])
    b = job_object("load", image="app:1", command=["b"])
    assert spec_hash(a) != spec_hash(b)
    assert spec_hash(a) == spec_hash(job_object("load", image="app:1", command=["a"]))


def cond(kind: str, reason: str = "", message: str = "") -> dict[str, str]:
    return {"type": kind, "status": "True", "reason": reason, "message": message}


def test_outcome_reads_terminal_and_early_conditions() -> None:
    assert outcome({"status": {"active": 1}}).state == "running"
    failed = outcome({"status": {"conditions": [cond("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")]}})
    assert (failed.state, failed.reason) == ("failed", "BackoffLimitExceeded")
    early = outcome({"status": {"conditions": [cond("FailureTarget", "DeadlineExceeded")]}})
    assert (early.state, early.reason) == ("failed", "DeadlineExceeded")
    assert outcome({"status": {"conditions": [cond("SuccessCriteriaMet", "CompletionsReached"), cond("Complete", "CompletionsReached")]}}).state == "succeeded"
    not_true = {"status": {"conditions": [{"type": "Failed", "status": "False"}]}}
    assert outcome(not_true).state == "running"


def test_pod_failure_names_container_reason_and_exit_code() -> None:
    pod = {"status": {"containerStatuses": [{"name": "main", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}}
    assert pod_failure(pod) == "main: Error, exit code 1"
    ok = {"status": {"containerStatuses": [{"name": "main", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}}
    assert pod_failure(ok) == ""
    pull = {"status": {"containerStatuses": [{"name": "main", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "no such image"}}}]}}
    assert "ImagePullBackOff" in pod_failure(pull)


def test_pods_of_job_ignores_pods_of_an_earlier_job_with_the_same_name() -> None:
    job = {"metadata": {"name": "load", "uid": "new"}}
    pods = [
        {"metadata": {"name": "load-b", "creationTimestamp": "2026-01-01T00:00:02Z", "ownerReferences": [{"uid": "new"}]}},
        {"metadata": {"name": "load-old", "creationTimestamp": "2026-01-01T00:00:00Z", "ownerReferences": [{"uid": "old"}]}},
        {"metadata": {"name": "load-a", "creationTimestamp": "2026-01-01T00:00:01Z", "ownerReferences": [{"uid": "new"}]}},
    ]
    assert [p["metadata"]["name"] for p in pods_of_job(job, pods)] == ["load-a", "load-b"]


def test_describe_includes_reason_and_log_tail() -> None:
    r = JobResult("load", "ns", "failed", "BackoffLimitExceeded", "gave up", pods=["load-x"], logs={"load-x": "line 1\nboom\n"})
    text = r.describe()
    assert "Job ns/load failed: BackoffLimitExceeded: gave up" in text
    assert "    | boom" in text
