"""Pure: the diagnostics bundle a failed stage leaves in the report folder: what goes in, where it
goes, and what its one-page summary says.

Layout, under the report folder (`--output-dir`, default `envci-report/`):

    diagnostics/
      summary.md                             the first cause, what is not ready, how to reach the environment
      events.txt                             the namespace's events, oldest first
      objects/<kind>-<name>.yaml             every object that is not ready (a Secret's data never)
      logs/<pod>/<container>.log             the last lines of each container's current instance
      logs/<pod>/<container>.previous.log    and of the instance before it, when it restarted

The first cause is not diagnosed a second time: it is chosen among wait-ready's own verdicts (the
failures a NotReadyError carries, or `judge` on the objects as they are, explained by
`readiness.explain`). The I/O (reading the cluster, writing the files through the redactor) is
in envci/stages/diagnose.py.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal, Protocol

import yaml

from envci import podlogs
from envci.errors import (
    CancelledError,
    ConfigError,
    LockedError,
    OwnershipError,
    SupersededError,
)
from envci.kube import readiness
from envci.manifests import OTHER
from envci.redact import truncate
from envci.report.model import RunResult

Obj = dict[str, Any]

DIAGNOSTICS_DIR = "diagnostics"
SUMMARY_FILE = "summary.md"
EVENTS_FILE = "events.txt"
OBJECTS_DIR = "objects"
LOGS_DIR = "logs"

Keep = Literal["kept", "torn-down", "left"]
"""What happens to the environment after the bundle is written: kept for a person (`envci up
--keep-on-failure`), torn down by `envci up`, or left as a single stage leaves it (until
`envci teardown` or the janitor)."""


@dataclass(frozen=True)
class Limits:
    """How much a bundle holds: enough to find the cause, small enough to upload as a CI artifact."""

    max_pods: int = 40
    """Pods whose logs are collected, those that are not ready first. An environment runs a handful
    of workloads; past this, the rest are named in the summary, not read."""
    log_lines: int = 300
    """Lines read of each log (its tail): a crash is explained at the end of a log."""
    log_chars: int = 64_000
    """Characters kept of each log, from its end, so one line of megabytes stays bounded."""
    max_events: int = 500
    """Events written to events.txt, the latest."""
    max_objects: int = 60
    """Not-ready objects written as YAML, in the order of the summary."""
    summary_rows: int = 15
    """Rows of each table in summary.md, so it stays one page."""
    message_chars: int = 400
    """Characters of one message (an event's, a verdict's) in the summary."""


def should_collect(error: BaseException | None) -> bool:
    """Whether a failure deserves a bundle: not bad input (nothing was changed), not a newer build
    or another stage holding the environment, not a cancellation."""
    if error is None:
        return True
    return not isinstance(error, (ConfigError, OwnershipError, SupersededError, LockedError, CancelledError, KeyboardInterrupt))


def tests_not_passed(run: RunResult) -> str:
    """What a bundle written after tests that did not pass names as its error: tests that fail
    raise nothing, yet the summary needs one line saying why it exists."""
    c = run.counts
    return f"tests {run.outcome}: {c.tests} tests, {c.failed + c.errors} failed (the test report is beside diagnostics/)"


# --- the first cause ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Cause:
    """One object that is not ready, in wait-ready's words."""

    component: str
    workload: str
    """`Kind/name`."""
    reason: str
    message: str
    failed: bool
    """Failed for good or out of time; otherwise not ready (yet)."""
    pods: tuple[str, ...] = ()


GENERIC_REASONS = frozenset({"", "Timeout", "Progressing", "Pending", "Running", "ContainerCreating", "PodInitializing", "Settling"})
"""Reasons that say only "not there yet": a specific one (CrashLoopBackOff, ProvisioningFailed) on
another object explains them."""


class Judged(Protocol):
    """What wait-ready's `judge` returns for each object (stages.wait_ready.Item)."""

    component: str
    obj: Obj
    verdict: readiness.Verdict

    @property
    def ref(self) -> str: ...


def causes_from_failures(failures: Iterable[Obj]) -> list[Cause]:
    """The failures of a NotReadyError (wait-ready's `diagnose`), already explained; `related`
    ones (not ready in a failed component) were not failed themselves."""
    return [
        Cause(
            component=str(f.get("component") or ""), workload=str(f.get("workload") or ""), reason=str(f.get("reason") or ""),
            message=str(f.get("message") or ""), failed=not f.get("related"),
        )
        for f in failures
        if f.get("workload")
    ]


def causes_from_items(items: Iterable[Judged], events: list[Obj]) -> list[Cause]:
    """Every object that is not ready, its verdict explained by what the kubelet or a controller said."""
    out = []
    for i in items:
        if i.verdict.state == "ready":
            continue
        v = readiness.explain(i.verdict, i.obj, events)
        out.append(Cause(i.component, i.ref, v.reason, v.message, v.state == "failed", v.pods))
    return out


def first_cause(causes: Sequence[Cause], component_order: Sequence[str] = ()) -> Cause | None:
    """The cause to read first.

    A specific reason beats a generic one (a Deployment's "Timeout" is explained by its claim's
    "ProvisioningFailed"); then failed beats not ready yet; then a component installed earlier
    beats one that depends on it; then the order given (wait-ready's)."""
    if not causes:
        return None
    position = {name: i for i, name in enumerate(component_order)}

    def rank(indexed: tuple[int, Cause]) -> tuple[int, int, int, int]:
        index, c = indexed
        return (c.reason in GENERIC_REASONS, not c.failed, position.get(c.component, len(position)), index)

    return min(enumerate(causes), key=rank)[1]


def merge_causes(primary: Sequence[Cause], seen_now: Sequence[Cause]) -> list[Cause]:
    """The stage's own causes first, then objects found not ready while collecting that it did not name."""
    named = {(c.component, c.workload) for c in primary}
    return [*primary, *(c for c in seen_now if (c.component, c.workload) not in named)]


# --- what to collect ----------------------------------------------------------------------------


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def not_ready_objects(items: Iterable[Judged], pods: list[Obj], *, now: datetime, rules: readiness.Rules) -> list[Obj]:
    """Objects to write as YAML: every judged object that is not ready, the pods its verdict names,
    and any other pod that is not ready; each once, objects before pods."""
    chosen: list[Obj] = []
    named: set[str] = set()
    for i in items:
        if i.verdict.state != "ready":
            chosen.append(i.obj)
            named.update(i.verdict.pods)
    for p in pods:
        if _name(p) in named or readiness.assess_pod(p, now=now, rules=rules).state != "ready":
            chosen.append(p)
    seen: set[tuple[str, str]] = set()
    out = []
    for obj in chosen:
        key = (str(obj.get("kind") or ""), _name(obj))
        if key not in seen:
            seen.add(key)
            out.append(obj)
    return out


@dataclass(frozen=True)
class LogRequest:
    pod: str
    container: str
    previous: bool
    path: str
    """Relative to the bundle."""


def log_requests(pods: list[Obj], *, first: Iterable[str] = (), limits: Limits = Limits()) -> tuple[list[LogRequest], list[str]]:
    """Which logs to read: each container's current instance and, after a restart, the one before.

    Pods named in `first` (not ready) come first; past `limits.max_pods` pods are only named.
    Returns (requests, pods left out)."""
    urgent = set(first)
    ordered = sorted(pods, key=lambda p: (_name(p) not in urgent, _name(p)))
    out = []
    for pod in ordered[: limits.max_pods]:
        for inst in podlogs.instances(pod):
            out.append(LogRequest(inst.pod, inst.container, inst.previous, log_path(inst.pod, inst.container, previous=inst.previous)))
    return out, [_name(p) for p in ordered[limits.max_pods :]]


# --- file layout --------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_part(text: str) -> str:
    """A file name part from an object's name: Kubernetes names are safe already; anything else
    (a slash, `..`) is replaced, so nothing is written outside the bundle."""
    cleaned = _UNSAFE.sub("_", text).strip(".") or "_"
    return cleaned[:120]


def object_path(obj: Obj) -> str:
    return f"{OBJECTS_DIR}/{safe_part(str(obj.get('kind') or 'object').lower())}-{safe_part(_name(obj))}.yaml"


def log_path(pod: str, container: str, *, previous: bool) -> str:
    return f"{LOGS_DIR}/{safe_part(pod)}/{safe_part(container)}{'.previous' if previous else ''}.log"


# --- file contents ------------------------------------------------------------------------------

DROPPED_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)
"""A whole earlier copy of the object (of a Secret too, with its data): never written."""


def sanitize(obj: Obj) -> Obj:
    """The object as written: no managedFields (noise), no last-applied copy, and a Secret's
    values replaced by their length. Registered secret values are masked later by the writer."""
    out = copy.deepcopy(obj)
    meta = out.get("metadata") or {}
    meta.pop("managedFields", None)
    annotations = meta.get("annotations") or {}
    for key in DROPPED_ANNOTATIONS:
        annotations.pop(key, None)
    if str(out.get("kind")) == "Secret":
        for key in ("data", "stringData"):
            if isinstance(out.get(key), dict):
                out[key] = {k: f"({len(str(v or ''))} characters, not written)" for k, v in out[key].items()}
    return out


def object_yaml(obj: Obj) -> str:
    plain = json.loads(json.dumps(sanitize(obj), default=str))
    return yaml.safe_dump(plain, sort_keys=False, default_flow_style=False, allow_unicode=True)


def log_text(text: str | None, *, limits: Limits = Limits()) -> str:
    """A log as written: the end of it, or a note that there was nothing to read."""
    if text is None:
        return "(no log: the instance had not started yet, or the kubelet has removed it)\n"
    return truncate(text, limits.log_chars) if text else "(empty log)\n"


def event_line(e: Obj, *, limit: int = 1000) -> str:
    t = readiness.event_time(e)
    when = t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if t else "-"
    obj = e.get("involvedObject") or e.get("regarding") or {}
    count = e.get("count") or (e.get("series") or {}).get("count")
    times = f" (x{count})" if isinstance(count, int) and count > 1 else ""
    message = " ".join(str(e.get("message") or e.get("note") or "").split())
    return f"{when} {str(e.get('type') or ''):<7} {str(e.get('reason') or ''):<24} {obj.get('kind')}/{obj.get('name')}{times}: {truncate(message, limit)}"


def sorted_events(events: Iterable[Obj]) -> list[Obj]:
    return sorted(events, key=lambda e: readiness.event_time(e) or datetime.min.replace(tzinfo=timezone.utc))


def events_text(events: list[Obj], *, limits: Limits = Limits()) -> str:
    ordered = sorted_events(events)
    cut = len(ordered) - limits.max_events
    lines = [event_line(e) for e in ordered[-limits.max_events :]]
    head = [f"({cut} earlier events left out)"] if cut > 0 else []
    return "\n".join(head + lines) + "\n" if lines else "(no events)\n"


# --- the summary --------------------------------------------------------------------------------


def reach_commands(namespace: str, name: str, cause: Cause | None = None, *, kubeconfig: str | None = None) -> list[str]:
    """The exact commands a person runs to look at the environment the bundle describes."""
    kc = f" --kubeconfig {kubeconfig}" if kubeconfig else ""
    kubectl = f"kubectl{kc} -n {namespace}"
    out = [f"{kubectl} get all,events"]
    if cause is not None:
        out.append(f"{kubectl} describe {cause.workload.lower()}")
        for pod in cause.pods[:1]:
            out.append(f"{kubectl} logs {pod} --all-containers")
    component = f" {cause.component}" if cause is not None and cause.component and cause.component != OTHER else ""
    out.append(f"envci logs --env {name}{kc}{component}")
    out.append(f"envci logs --env {name}{kc}{component} -f")
    return out


def _cell(text: str, limit: int) -> str:
    return truncate(" ".join(text.split()), limit).replace("|", "\\|").replace("\n", " ")


def _fenced(text: str) -> list[str]:
    return ["```", text.replace("```", "'''").rstrip(), "```"]


@dataclass(frozen=True)
class Summary:
    """Everything summary.md says."""

    stage: str
    name: str
    namespace: str
    error: str
    collected_at: datetime
    cause: Cause | None = None
    causes: tuple[Cause, ...] = ()
    warnings: tuple[str, ...] = ()
    """Latest Warning events, already formatted (`event_line`)."""
    keep: Keep = "left"
    expires_at: str = ""
    kubeconfig: str | None = None
    files: tuple[str, ...] = ()
    left_out_pods: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    """What could not be collected."""


def render_summary(s: Summary, *, limits: Limits = Limits()) -> str:
    """Pure: summary.md, one page: the first cause, then what else is not ready, how to reach the
    environment, and what the other files hold."""
    lines = [f"# envci diagnostics: {s.stage} failed for {s.name}", ""]
    if s.cause is not None:
        c = s.cause
        lines.append(f"**First cause:** component `{c.component}`: {c.workload} **{c.reason}**: {_cell(c.message, limits.message_chars)}")
    else:
        lines.append(f"**First cause:** {_cell(s.error.splitlines()[0] if s.error else 'unknown', limits.message_chars)} (every workload is ready)")
    lines += ["", f"Environment `{s.name}`, namespace `{s.namespace}`; collected {s.collected_at.strftime('%Y-%m-%dT%H:%M:%SZ')}.", ""]
    lines += ["## The error", "", *_fenced(truncate(s.error, 1500)), ""]
    if s.causes:
        lines += ["## Not ready", "", "| component | object | reason | message |", "| --- | --- | --- | --- |"]
        for c in s.causes[: limits.summary_rows]:
            lines.append(f"| {_cell(c.component, 60)} | {_cell(c.workload, 80)} | {_cell(c.reason, 40)} | {_cell(c.message, 200)} |")
        if len(s.causes) > limits.summary_rows:
            lines.append(f"\n…and {len(s.causes) - limits.summary_rows} more; every one is in `{OBJECTS_DIR}/`.")
        lines.append("")
    if s.warnings:
        lines += ["## Latest warnings", "", *_fenced("\n".join(s.warnings[-8:])), ""]
    lines += ["## Reach the environment", ""]
    commands = reach_commands(s.namespace, s.name, s.cause, kubeconfig=s.kubeconfig)
    until = f" until {s.expires_at}" if s.expires_at else ""
    if s.keep == "torn-down":
        lines += [
            "`envci up` tears the environment down after writing this bundle. To keep a failed environment for a",
            "person to inspect, run `envci up --keep-on-failure`; the janitor still reaps it once its TTL runs out.",
            "",
        ]
    else:
        said = (
            f"Kept for inspection (`--keep-on-failure`){until}, when the janitor reaps it; `envci teardown --env {s.name}` removes it sooner."
            if s.keep == "kept"
            else f"It stays until `envci teardown --env {s.name}` removes it"
            + (f", or the janitor reaps it after {s.expires_at}." if s.expires_at else ".")
        )
        lines += [said, "", *_fenced("\n".join(commands)), ""]
    lines += ["## Files", ""]
    lines.append(f"- `{EVENTS_FILE}`: the namespace's events, oldest first")
    objects = [f for f in s.files if f.startswith(OBJECTS_DIR + "/")]
    logs = [f for f in s.files if f.startswith(LOGS_DIR + "/")]
    lines.append(f"- `{OBJECTS_DIR}/`: {len(objects)} object(s) that are not ready, as YAML (Secrets' values never written)")
    lines.append(f"- `{LOGS_DIR}/`: {len(logs)} log(s), the last {limits.log_lines} lines of each (`.previous.log`: the instance before a restart)")
    if s.left_out_pods:
        lines.append(f"- pods not read (past {limits.max_pods}): {', '.join(s.left_out_pods[:10])}{' …' if len(s.left_out_pods) > 10 else ''}")
    for p in s.problems[:5]:
        lines.append(f"- not collected: {_cell(p, 200)}")
    return "\n".join(lines).rstrip() + "\n"
