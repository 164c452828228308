"""reap and extend: the janitor's side of the lifecycle.

`reap` finds every environment whose expiry has passed (or, optionally, whose PR is closed) and
tears it down with its external resources; with `suspend_after`, it also suspends every other
environment idle that long (envci/suspension.py says how idleness is read). One environment that
fails to go is reported and skipped; it never stops the sweep. `extend` pushes an environment's expiry.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import requests

from envci.errors import EnvciError, InfrastructureError, LockedError
from envci.kube.client import Kube
from envci.kube.lease import LeaseSettings, settings_from_env
from envci.namespace import LAST_ACTIVITY, rfc3339
from envci.output import Reporter
from envci.stages.suspend import suspend
from envci.stages.teardown import find_namespace, teardown
from envci.suspension import suspend_reason
from envci.timestamps import parse_time

PrIsOpen = Callable[[Mapping[str, str]], bool | None]
REAP_PARALLEL = 8
"""Teardowns a sweep starts at once: enough to hide round trips, few enough not to flood the API server."""


def janitor_lease() -> LeaseSettings:
    """The janitor does not wait for a stage that holds an environment's lease: a stage running is
    activity, so the environment is not idle after all, and the next sweep looks again."""
    return dataclasses.replace(settings_from_env(), wait=timedelta(0))


def expiry_of(ns: dict[str, Any]) -> datetime | None:
    """When the environment may be reaped; None when unrecorded or unreadable (then it is kept)."""
    return parse_time(((ns.get("metadata") or {}).get("annotations") or {}).get("envci.io/expires-at"))


def reap_reason(ns: dict[str, Any], now: datetime, pr_open: PrIsOpen | None = None) -> str | None:
    """Pure (given `pr_open`): why this environment should go, or None to keep it."""
    meta = ns.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return None  # already going; teardown of a Terminating namespace is someone else's wait
    exp = expiry_of(ns)
    if exp is not None and exp <= now:
        return f"expired at {rfc3339(exp)}"
    if exp is None:
        return None  # no expiry recorded: never guess, a person decides
    if pr_open is not None:
        labels = meta.get("labels") or {}
        ann = meta.get("annotations") or {}
        if labels.get("envci.io/pr") and ann.get("envci.io/repo"):
            state = pr_open({"repo": ann["envci.io/repo"], "pr": labels["envci.io/pr"], "system": ann.get("envci.io/ci-system", "")})
            if state is False:
                return f"pull request {labels['envci.io/pr']} is closed"
    return None


def github_pr_open(token: str, api: str = "https://api.github.com") -> PrIsOpen:
    def check(info: Mapping[str, str]) -> bool | None:
        if info.get("system") not in ("github", ""):
            return None
        try:
            r = requests.get(
                f"{api}/repos/{info['repo']}/pulls/{info['pr']}",
                headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"},
                timeout=10,
            )
        except requests.RequestException:
            return None  # unknown: keep the environment
        if r.status_code != 200:
            return None
        return bool(r.json().get("state") == "open")

    return check


def gitlab_mr_open(token: str, api: str) -> PrIsOpen:
    def check(info: Mapping[str, str]) -> bool | None:
        if info.get("system") != "gitlab":
            return None
        project = quote(info["repo"], safe="")
        try:
            r = requests.get(f"{api}/projects/{project}/merge_requests/{info['pr']}", headers={"PRIVATE-TOKEN": token}, timeout=10)
        except requests.RequestException:
            return None
        if r.status_code != 200:
            return None
        return bool(r.json().get("state") == "opened")

    return check


def reap(
    kube: Kube,
    rep: Reporter,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    pr_open: PrIsOpen | None = None,
    app: str | None = None,
    teardown_fn: Callable[..., dict[str, Any]] = teardown,
    suspend_after: timedelta | None = None,
    suspend_fn: Callable[..., dict[str, Any]] = suspend,
    wait_seconds: float = 180,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Sweep once. Expired environments (or, with `pr_open`, those of closed PRs) are deleted; with
    `suspend_after`, the others idle that long are suspended instead (their data kept)."""
    now = now or datetime.now(timezone.utc)
    selector = "envci.io/managed=true" + (f",envci.io/app={app}" if app else "")
    counts: Counter[str] = Counter()
    reaped: list[dict[str, str]] = []
    failed: list[dict[str, str]] = []
    doomed: list[tuple[str, str]] = []
    idle: list[tuple[str, str]] = []
    for ns in kube.namespaces(selector):
        name = ns["metadata"]["name"]
        counts["seen"] += 1
        reason = reap_reason(ns, now, pr_open)
        if reason is None and suspend_after is not None:
            why = suspend_reason(ns, now, suspend_after)
            if why is not None:
                rep.progress(f"{'would suspend' if dry_run else 'suspending'} {name}: {why}")
                idle.append((name, why))
                continue
        if reason is None:
            counts["kept"] += 1
            continue
        rep.progress(f"{'would reap' if dry_run else 'reaping'} {name}: {reason}")
        if dry_run:
            counts["would_reap"] += 1
            reaped.append({"namespace": name, "reason": reason})
            continue
        doomed.append((name, reason))

    def start(name: str) -> EnvciError | None:
        try:
            teardown_fn(kube, rep, namespace=name, wait=False)
            return None
        except EnvciError as e:
            return e

    # Start every deletion first, several at once, and wait for them together: each teardown is a few
    # round trips and the namespace controller takes seconds per namespace; a sweep of two hundred
    # should take neither two hundred times the one nor the other.
    with ThreadPoolExecutor(max_workers=REAP_PARALLEL) as pool:
        outcomes = list(pool.map(start, [name for name, _ in doomed]))
    for (name, reason), error in zip(doomed, outcomes):
        if error is None:
            reaped.append({"namespace": name, "reason": reason})
        else:
            counts["failed"] += 1
            failed.append({"namespace": name, "reason": reason, "error": error.message, "action": "reap"})
            rep.warn(f"could not reap {name}: {error.message}")
    pending = {r["namespace"] for r in reaped}
    end = time.monotonic() + wait_seconds
    while pending and not dry_run and time.monotonic() < end:
        pending = {n for n in pending if kube.namespace(n) is not None}
        if pending:
            sleep(0.5)
    for r in reaped:
        if dry_run:
            continue
        if r["namespace"] in pending:
            counts["still_terminating"] += 1
            r["still_terminating"] = "true"
        else:
            counts["reaped"] += 1
    if pending and not dry_run:
        rep.warn(f"still terminating after {wait_seconds:.0f}s: {', '.join(sorted(pending))} (`envci teardown --env NAME` explains why)")
    suspended = _suspend_idle(kube, rep, idle, dry_run=dry_run, counts=counts, failed=failed, suspend_fn=suspend_fn)
    return {"dry_run": dry_run, "counts": dict(counts), "reaped": reaped, "suspended": suspended, "failed": failed}


def _suspend_idle(
    kube: Kube, rep: Reporter, idle: list[tuple[str, str]], *, dry_run: bool, counts: Counter[str], failed: list[dict[str, str]],
    suspend_fn: Callable[..., dict[str, Any]],
) -> list[dict[str, str]]:
    """Suspend each idle environment, one after another: each is a few patches, and one that is in
    use (its lease held) or fails is reported and skipped, never stopping the sweep."""
    done: list[dict[str, str]] = []
    for name, reason in idle:
        if dry_run:
            counts["would_suspend"] += 1
            done.append({"namespace": name, "reason": reason})
            continue
        try:
            suspend_fn(kube, rep, namespace=name, lease_settings=janitor_lease())
        except LockedError:
            counts["in_use"] += 1
            rep.progress(f"  {name} is in use (a stage holds its lock); left active")
            continue
        except EnvciError as e:
            counts["failed"] += 1
            failed.append({"namespace": name, "reason": reason, "error": e.message, "action": "suspend"})
            rep.warn(f"could not suspend {name}: {e.message}")
            continue
        counts["suspended"] += 1
        done.append({"namespace": name, "reason": reason})
    return done


def extend(kube: Kube, rep: Reporter, *, namespace: str | None, name: str | None, ttl: timedelta, now: datetime | None = None) -> dict[str, Any]:
    ns = find_namespace(kube, namespace=namespace, name=name)
    if ns is None:
        raise InfrastructureError(f"environment {name or namespace} does not exist", hint="`envci list` shows the environments")
    now = now or datetime.now(timezone.utc)
    new_expiry = now + ttl
    ns_name = ns["metadata"]["name"]
    # Extending is using: the janitor's --suspend-after counts idleness from here too.
    kube.patch_merge("v1", "Namespace", ns_name, {"metadata": {"annotations": {"envci.io/expires-at": rfc3339(new_expiry), LAST_ACTIVITY: rfc3339(now)}}})
    rep.progress(f"{ns_name} now expires at {rfc3339(new_expiry)}")
    return {"namespace": ns_name, "expires_at": rfc3339(new_expiry)}
