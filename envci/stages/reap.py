"""reap and extend: the janitor's side of the lifecycle.

`reap` finds every environment whose expiry has passed (or, optionally, whose PR is closed) and
tears it down with its external resources. One environment that fails to go is reported and
skipped; it never stops the sweep. `extend` pushes an environment's expiry.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import requests

from envci.errors import EnvciError, InfrastructureError
from envci.kube.client import Kube
from envci.namespace import rfc3339
from envci.output import Reporter
from envci.stages.teardown import find_namespace, teardown
from envci.timestamps import parse_time

PrIsOpen = Callable[[Mapping[str, str]], bool | None]
REAP_PARALLEL = 8
"""Teardowns a sweep starts at once: enough to hide round trips, few enough not to flood the API server."""


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
    wait_seconds: float = 180,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    now = now or datetime.now(timezone.utc)
    selector = "envci.io/managed=true" + (f",envci.io/app={app}" if app else "")
    counts: Counter[str] = Counter()
    reaped: list[dict[str, str]] = []
    failed: list[dict[str, str]] = []
    doomed: list[tuple[str, str]] = []
    for ns in kube.namespaces(selector):
        name = ns["metadata"]["name"]
        counts["seen"] += 1
        reason = reap_reason(ns, now, pr_open)
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
            failed.append({"namespace": name, "reason": reason, "error": error.message})
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
    return {"dry_run": dry_run, "counts": dict(counts), "reaped": reaped, "failed": failed}


def extend(kube: Kube, rep: Reporter, *, namespace: str | None, name: str | None, ttl: timedelta, now: datetime | None = None) -> dict[str, Any]:
    ns = find_namespace(kube, namespace=namespace, name=name)
    if ns is None:
        raise InfrastructureError(f"environment {name or namespace} does not exist", hint="`envci list` shows the environments")
    now = now or datetime.now(timezone.utc)
    new_expiry = now + ttl
    ns_name = ns["metadata"]["name"]
    kube.patch_merge("v1", "Namespace", ns_name, {"metadata": {"annotations": {"envci.io/expires-at": rfc3339(new_expiry)}}})
    rep.progress(f"{ns_name} now expires at {rfc3339(new_expiry)}")
    return {"namespace": ns_name, "expires_at": rfc3339(new_expiry)}
