"""status and list: what an environment is made of, whether it is ready or suspended, and when it expires."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from envci import state as st
from envci.identity import label_value
from envci.kube import readiness
from envci.kube.client import Kube
from envci.stages.teardown import find_namespace
from envci.stages.wait_ready import judge, list_workloads
from envci.namespace import LAST_ACTIVITY
from envci.suspension import state_of, suspended_at
from envci.timestamps import parse_time


def summarize_namespace(ns: dict[str, Any], now: datetime) -> dict[str, Any]:
    meta = ns["metadata"]
    labels = meta.get("labels") or {}
    ann = meta.get("annotations") or {}
    expires = ann.get("envci.io/expires-at")
    # An unreadable expiry (edited by hand) is shown as written and never counts as expired.
    expires_at = parse_time(expires)
    expired = expires_at is not None and expires_at <= now
    return {
        "name": labels.get("envci.io/env", meta["name"]),
        "namespace": meta["name"],
        "app": labels.get("envci.io/app"),
        "pr": labels.get("envci.io/pr"),
        "branch": labels.get("envci.io/branch"),
        "build": labels.get("envci.io/build"),
        "created_at": ann.get("envci.io/created-at"),
        "expires_at": expires,
        "expired": expired,
        "terminating": bool(meta.get("deletionTimestamp")),
        "state": state_of(ns),
        "suspended_at": suspended_at(ns),
        "last_activity": ann.get(LAST_ACTIVITY),
    }


def list_environments(kube: Kube, *, app: str | None = None, now: datetime | None = None) -> list[dict[str, Any]]:
    sel = "envci.io/managed=true" + (f",envci.io/app={app}" if app else "")
    now = now or datetime.now(timezone.utc)
    return sorted((summarize_namespace(n, now) for n in kube.namespaces(sel)), key=lambda e: e["name"])


def overview(kube: Kube, *, app: str | None = None, now: datetime | None = None, warn: Callable[[str], None] = lambda m: None,
             env: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """`envci list`: the environments (of `app`, if given), and usage against every budget that counts them.
    All managed namespaces are read once: a repository's or a team's budget counts other apps' too."""
    from envci.stages.budgets import list_usage

    now = now or datetime.now(timezone.utc)
    every = kube.namespaces("envci.io/managed=true")
    mine = [n for n in every if not app or ((n["metadata"].get("labels") or {}).get("envci.io/app") == label_value(app))]
    envs = sorted((summarize_namespace(n, now) for n in mine), key=lambda e: e["name"])
    return {"environments": envs, "budgets": list_usage(kube, every, app=app, warn=warn, env=env)}


def status(kube: Kube, *, namespace: str | None = None, name: str | None = None) -> dict[str, Any] | None:
    ns = find_namespace(kube, namespace=namespace, name=name)
    if ns is None:
        return None
    now = datetime.now(timezone.utc)
    out = summarize_namespace(ns, now)
    ns_name = ns["metadata"]["name"]
    state = st.load(kube, ns_name)
    release_map = {(r.release or n): n for n, r in (state.components.items() if state else [])}
    items = judge(list_workloads(kube, ns_name), kube.pods(ns_name), release_map, now=now, rules=readiness.Rules())
    out["components"] = {
        n: {"kind": r.kind, "release": r.release, "revision": r.revision, "status": r.status} for n, r in (state.components.items() if state else [])
    }
    out["workloads"] = [
        {"component": i.component, "workload": i.ref, "state": i.verdict.state, "reason": i.verdict.reason, "message": i.verdict.message}
        for i in items
    ]
    # Workloads at zero replicas count as ready; a suspended environment serves nothing all the same.
    out["ready"] = out["state"] == "active" and all(i.verdict.state == "ready" for i in items)
    out["urls"] = state.urls if state else {}
    out["external"] = st.external_from_namespace(ns)
    out["history"] = state.history[-10:] if state else []
    out["overrides"] = dict(state.overrides) if state else {}
    return out


def format_status(s: dict[str, Any]) -> str:
    lines = [
        f"environment {s['name']}  namespace {s['namespace']}",
        f"  ready: {'yes' if s['ready'] else 'no'}   expires: {s['expires_at']}{' (expired)' if s['expired'] else ''}",
    ]
    if s.get("state") == "suspended":
        lines.append(f"  suspended since {s['suspended_at']}: workloads scaled to zero, data kept (`envci resume` brings it back)")
    elif s.get("state") == "terminating":
        lines.append("  terminating: the namespace is being deleted")
    for n, c in s["components"].items():
        rev = f" revision {c['revision']}" if c.get("revision") else ""
        lines.append(f"  component {n}: {c['kind']} {c['status']}{rev}")
    for w in s["workloads"]:
        lines.append(f"    {w['workload']} [{w['component']}] {w['state']}: {w['message']}")
    for n, u in s["urls"].items():
        lines.append(f"  url {n}: {u}")
    for path, value in (s.get("overrides") or {}).items():
        lines.append(f"  override {path}={value}")
    return "\n".join(lines)


def format_list(envs: list[dict[str, Any]], budgets: list[dict[str, Any]] | None = None) -> str:
    from envci.budgets import usage_line

    table = _table(envs)
    return table + ("\n\n" + "\n".join(usage_line(u) for u in budgets) if budgets else "")


def _table(envs: list[dict[str, Any]]) -> str:
    if not envs:
        return "no environments"
    rows = [("NAME", "NAMESPACE", "APP", "PR", "STATE", "EXPIRES")]
    for e in envs:
        rows.append((e["name"], e["namespace"], e["app"] or "", e["pr"] or "", e["state"],
                     (e["expires_at"] or "") + (" expired" if e["expired"] else "")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
