"""The diagnostics bundle: which cause comes first, what is collected and where it goes, what the
one-page summary says, and (with the cluster replaced by a fake of the `Kube` adapter serving real
object shapes) that everything written is redacted and a Secret's data never is."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from envci import redact
from envci.errors import CancelledError, ConfigError, InfrastructureError, NotReadyError, OwnershipError, SupersededError
from envci.kube import readiness
from envci.manifests import COMPONENT_LABEL, OTHER
from envci.report import diagnostics as dx
from envci.report.diagnostics import Cause, Limits, Summary
from envci.stages.diagnose import Target, write_bundle
from envci.stages.wait_ready import Item

DATA = Path(__file__).resolve().parents[1] / "data" / "readiness"
NOW = datetime(2026, 1, 1, 10, 5, 0, tzinfo=timezone.utc)
CRASHING = datetime(2026, 1, 1, 10, 0, 30, tzinfo=timezone.utc)
"""When pod-crash-running has restarted and not yet stayed up long enough to count as recovered."""
Obj = dict[str, Any]


def load(name: str) -> Obj:
    obj: Obj = json.loads((DATA / f"{name}.json").read_text())
    return obj


def cause(component: str, reason: str, *, failed: bool = True, workload: str = "") -> Cause:
    return Cause(component, workload or f"Deployment/{component}", reason, f"{component} is {reason}", failed)


# --- when, and the first cause ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "collect"),
    [
        (NotReadyError("x"), True),
        (InfrastructureError("helm failed"), True),
        (None, True),  # tests that did not pass
        (ConfigError("bad"), False),  # nothing was changed
        (OwnershipError("not ours"), False),
        (SupersededError("newer build"), False),
        (CancelledError("signal"), False),
    ],
)
def test_a_bundle_is_written_for_failures_not_for_bad_input_or_cancellation(error: Exception | None, collect: bool) -> None:
    assert dx.should_collect(error) is collect


def test_a_specific_reason_beats_a_timeout_even_when_only_related() -> None:
    causes = [cause("db", "Timeout"), cause("db", "ProvisioningFailed", failed=False, workload="PersistentVolumeClaim/data-db-0")]
    assert dx.first_cause(causes) == causes[1]


def test_failed_beats_not_ready_yet() -> None:
    causes = [cause("web", "NotReady", failed=False), cause("web", "CrashLoopBackOff")]
    assert dx.first_cause(causes) == causes[1]


def test_a_component_installed_earlier_comes_first() -> None:
    causes = [cause("web", "CrashLoopBackOff"), cause("db", "OOMKilled")]
    assert dx.first_cause(causes, ["db", "web"]) == causes[1]
    assert dx.first_cause(causes, ["web", "db"]) == causes[0]
    assert dx.first_cause(causes) == causes[0]  # otherwise wait-ready's order
    assert dx.first_cause([]) is None


def test_causes_come_from_wait_readys_failures_related_ones_not_failed() -> None:
    failures = [
        {"component": "db", "workload": "StatefulSet/db", "reason": "Unschedulable", "message": "m1", "events": [], "logs": {}},
        {"component": "db", "workload": "PersistentVolumeClaim/data-db-0", "reason": "ProvisioningFailed", "message": "m2", "related": True},
    ]
    assert dx.causes_from_failures(failures) == [
        Cause("db", "StatefulSet/db", "Unschedulable", "m1", True), Cause("db", "PersistentVolumeClaim/data-db-0", "ProvisioningFailed", "m2", False),
    ]


def test_causes_seen_while_collecting_are_explained_like_wait_ready_does() -> None:
    pvc = load("pvc-pending")
    events = load("events-pvc-no-storageclass")["items"]
    verdict = readiness.assess(pvc, [], now=NOW)
    found = dx.causes_from_items([Item("db", pvc, verdict)], events)
    explained = readiness.explain(verdict, pvc, events)
    assert found == [Cause("db", f"PersistentVolumeClaim/{pvc['metadata']['name']}", explained.reason, explained.message, False, explained.pods)]
    assert found[0].reason == "ProvisioningFailed"
    merged = dx.merge_causes([Cause("db", found[0].workload, "Timeout", "t", True)], found)
    assert [c.reason for c in merged] == ["Timeout"]  # the stage's own verdict is not repeated


# --- what is collected, and where ---------------------------------------------------------------


def crash_pod(name: str = "web-7c5ddbdf54-c4r7s") -> Obj:
    pod = load("pod-crash-running")
    pod["metadata"]["name"] = name
    return pod


def test_not_ready_objects_and_the_pods_they_name_each_once() -> None:
    dep = load("deployment-rolling-out")
    ready_pod = load("pod-ready")
    bad_pod = crash_pod()
    items = [Item("web", dep, readiness.Verdict("failed", "CrashLoopBackOff", "m", (bad_pod["metadata"]["name"],)))]
    objs = dx.not_ready_objects(items + items, [ready_pod, bad_pod, bad_pod], now=NOW, rules=readiness.Rules(settle=timedelta(0)))
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [("Deployment", "web"), ("Pod", "web-7c5ddbdf54-c4r7s")]


def test_logs_are_the_current_and_previous_instance_of_each_container_not_ready_pods_first() -> None:
    pods = [load("pod-ready"), crash_pod("zz-crash")]
    requests, left_out = dx.log_requests(pods, first=["zz-crash"])
    assert [(r.pod, r.container, r.previous, r.path) for r in requests] == [
        ("zz-crash", "app", True, "logs/zz-crash/app.previous.log"),
        ("zz-crash", "app", False, "logs/zz-crash/app.log"),
        (pods[0]["metadata"]["name"], "app", False, f"logs/{pods[0]['metadata']['name']}/app.log"),
    ]
    assert left_out == []
    few, left_out = dx.log_requests(pods, first=["zz-crash"], limits=Limits(max_pods=1))
    assert {r.pod for r in few} == {"zz-crash"} and left_out == [pods[0]["metadata"]["name"]]


def test_file_names_cannot_leave_the_bundle() -> None:
    assert dx.object_path({"kind": "Deployment", "metadata": {"name": "web"}}) == "objects/deployment-web.yaml"
    for path in (dx.log_path("../../etc", "a/b", previous=False), dx.object_path({"kind": "../Pod", "metadata": {"name": ".."}})):
        parts = Path(path).parts
        assert len(parts) == (3 if path.startswith("logs/") else 2) and ".." not in parts, path


def test_a_secrets_values_and_last_applied_copies_are_never_written() -> None:
    secret = {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "managedFields": [{"manager": "envci"}],
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": '{"data":{"password":"aHVudGVyMg=="}}', "team": "a"}},
        "data": {"password": "aHVudGVyMg=="}, "stringData": {"url": "postgres://u:hunter2@db"},
    }
    original = copy.deepcopy(secret)
    text = dx.object_yaml(secret)
    assert "aHVudGVyMg" not in text and "hunter2" not in text and "managedFields" not in text
    assert yaml.safe_load(text)["data"] == {"password": "(12 characters, not written)"}
    assert yaml.safe_load(text)["metadata"]["annotations"] == {"team": "a"}
    assert secret == original


def test_logs_are_cut_from_their_start_and_absence_is_said() -> None:
    text = dx.log_text("x" * 100 + "the end", limits=Limits(log_chars=20))
    assert text.endswith("the end") and "characters cut" in text
    assert dx.log_text(None).startswith("(no log:")
    assert dx.log_text("") == "(empty log)\n"


def test_events_are_oldest_first_and_bounded() -> None:
    events = load("events-readiness-failing")["items"]
    text = dx.events_text(list(reversed(events)), limits=Limits(max_events=1))
    assert text.splitlines()[0] == f"({len(events) - 1} earlier events left out)"
    assert len(text.splitlines()) == 2
    assert dx.events_text([]) == "(no events)\n"


# --- the summary --------------------------------------------------------------------------------


def summary(**kw: Any) -> str:
    base: dict[str, Any] = {
        "stage": "wait-ready", "name": "shop-pr-42", "namespace": "envci-shop-pr-42", "error": "environment shop-pr-42 is not ready:\n  ...",
        "collected_at": NOW, "cause": Cause("web", "Deployment/web", "CrashLoopBackOff", "pod web-1 container app is in a crash loop", True, ("web-1",)),
        "expires_at": "2026-01-01T14:00:00Z", "files": ("events.txt", "objects/deployment-web.yaml", "logs/web-1/app.log"),
    }
    base["causes"] = (base["cause"],)
    base.update(kw)
    return dx.render_summary(Summary(**base))


def test_summary_names_the_first_cause_first() -> None:
    text = summary()
    assert text.splitlines()[0] == "# envci diagnostics: wait-ready failed for shop-pr-42"
    assert text.splitlines()[2] == "**First cause:** component `web`: Deployment/web **CrashLoopBackOff**: pod web-1 container app is in a crash loop"
    assert "| web | Deployment/web | CrashLoopBackOff |" in text
    assert "- `objects/`: 1 object(s)" in text and "- `logs/`: 1 log(s)" in text


def test_summary_of_a_kept_environment_gives_the_exact_commands_to_reach_it() -> None:
    text = summary(keep="kept")
    assert "Kept for inspection (`--keep-on-failure`) until 2026-01-01T14:00:00Z, when the janitor reaps it" in text
    for command in (
        "kubectl -n envci-shop-pr-42 get all,events",
        "kubectl -n envci-shop-pr-42 describe deployment/web",
        "kubectl -n envci-shop-pr-42 logs web-1 --all-containers",
        "envci logs --env shop-pr-42 web",
        "envci logs --env shop-pr-42 web -f",
    ):
        assert f"\n{command}\n" in text


def test_summary_of_an_environment_torn_down_says_how_to_keep_one() -> None:
    text = summary(keep="torn-down")
    assert "run `envci up --keep-on-failure`" in text
    assert "kubectl -n" not in text


def test_commands_carry_the_kubeconfig_given_and_skip_a_component_of_none() -> None:
    other = Cause(OTHER, "Job/seed", "BackoffLimitExceeded", "m", True)
    cmds = dx.reach_commands("ns", "env", other, kubeconfig="/tmp/kc")
    assert cmds[0] == "kubectl --kubeconfig /tmp/kc -n ns get all,events"
    assert cmds[-2] == "envci logs --env env --kubeconfig /tmp/kc"


def test_summary_without_a_failing_object_names_the_error_and_stays_one_page() -> None:
    text = summary(cause=None, causes=(), error="seed[0] sql db/schema.sql: syntax error at line 3")
    assert "**First cause:** seed[0] sql db/schema.sql: syntax error at line 3 (every workload is ready)" in text
    many = tuple(cause(f"c{i}", "CrashLoopBackOff") for i in range(40))
    long = summary(causes=many, warnings=tuple(f"w{i}" for i in range(100)))
    assert len(long.splitlines()) < 80
    assert "…and 25 more" in long


def test_table_cells_cannot_break_the_table() -> None:
    text = summary(causes=(Cause("web", "Deployment/web", "Error", "a | b\nc", True),))
    assert "| a \\| b c |" in text


# --- the bundle, on a fake cluster --------------------------------------------------------------


class FakeKube:
    """The part of the `Kube` adapter the bundle reads."""

    def __init__(self, objects: list[Obj], pods: list[Obj], events: list[Obj], logs: dict[tuple[str, str, bool], str | None]) -> None:
        self.objects, self._pods, self._events, self.logs = objects, pods, events, logs
        self.exists = True

    def with_retry(self, retry: Any) -> FakeKube:
        return self

    def namespace(self, name: str) -> Obj | None:
        return {"metadata": {"name": name, "annotations": {"envci.io/expires-at": "2026-01-01T14:00:00Z"}}} if self.exists else None

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        return None

    def list(self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None) -> list[Obj]:
        return [o for o in self.objects if o.get("kind") == kind]

    def pods(self, namespace: str) -> list[Obj]:
        return self._pods

    def events(self, namespace: str) -> list[Obj]:
        if not self._events:
            raise InfrastructureError("Kubernetes API refused to list Event: forbidden")
        return self._events

    def read_log(self, namespace: str, pod: str, container: str, *, previous: bool = False, **kw: Any) -> str | None:
        return self.logs.get((pod, container, previous))


TOKEN = "tok-5f1e9c2a7d"


@pytest.fixture
def crash() -> FakeKube:
    dep = load("deployment-rolling-out")
    dep["metadata"]["labels"][COMPONENT_LABEL] = "web"
    pod = crash_pod()
    pod["spec"]["containers"][0]["env"] = [{"name": "TOKEN", "value": TOKEN}]
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "c2VjcmV0"}}
    logs = {(pod["metadata"]["name"], "app", True): f"2026-01-01T10:00:01Z boom, token {TOKEN}\n",
            (pod["metadata"]["name"], "app", False): None}
    return FakeKube([dep, secret], [pod], load("events-readiness-failing")["items"], logs)


def test_the_bundle_holds_summary_events_objects_and_logs_all_redacted(tmp_path: Path, crash: FakeKube) -> None:
    redact.register(TOKEN)
    target = Target("shop-pr-42", "envci-shop-pr-42", "wait-ready", ("web",), keep="kept")
    failures = [{"component": "web", "workload": "Deployment/web", "reason": "CrashLoopBackOff", "message": "crash loop", "events": [], "logs": {}}]
    path = write_bundle(crash, target, tmp_path, error=f"not ready; token {TOKEN}", failures=failures, now=CRASHING)  # type: ignore[arg-type]
    assert path == tmp_path / "diagnostics"
    files = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
    assert files == ["events.txt", "logs/web-7c5ddbdf54-c4r7s/app.log", "logs/web-7c5ddbdf54-c4r7s/app.previous.log",
                     "objects/deployment-web.yaml", "objects/pod-web-7c5ddbdf54-c4r7s.yaml", "summary.md"]
    everything = "".join(p.read_text() for p in path.rglob("*") if p.is_file())
    assert TOKEN not in everything and redact.MASK in everything
    assert "boom, token ***" in (path / "logs/web-7c5ddbdf54-c4r7s/app.previous.log").read_text()
    assert (path / "logs/web-7c5ddbdf54-c4r7s/app.log").read_text().startswith("(no log:")
    assert "c2VjcmV0" not in everything  # a Secret is never among the objects written
    text = (path / "summary.md").read_text()
    assert "**First cause:** component `web`: Deployment/web **CrashLoopBackOff**: crash loop" in text
    assert "envci logs --env shop-pr-42 web" in text


def test_a_new_bundle_replaces_the_old_one_and_what_could_not_be_read_is_said(tmp_path: Path, crash: FakeKube) -> None:
    stale = tmp_path / "diagnostics" / "logs" / "gone-pod" / "app.log"
    stale.parent.mkdir(parents=True)
    stale.write_text("old")
    crash._events = []  # listing events is refused
    path = write_bundle(crash, Target("e", "ns", "seed"), tmp_path, error="seed failed", now=NOW)  # type: ignore[arg-type]
    assert path is not None and not stale.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind
    assert "- not collected: events: Kubernetes API refused to list Event: forbidden" in (path / "summary.md").read_text()


def test_no_namespace_no_bundle(tmp_path: Path, crash: FakeKube) -> None:
    crash.exists = False
    assert write_bundle(crash, Target("e", "ns", "provision"), tmp_path, error="x", now=NOW) is None  # type: ignore[arg-type]
    assert not (tmp_path / "diagnostics").exists()
