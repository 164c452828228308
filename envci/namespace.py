"""Pure builders for the objects that make a namespace an envci environment."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from envci.config.model import Limits, NamespaceSettings, Quota
from envci.durations import format_duration
from envci.identity import Identity

A = "envci.io/"
SUSPENDED_AT = A + "suspended-at"
"""When the environment was suspended (`envci suspend`). Present from the start of a suspend until
the end of a resume, so it covers every moment a workload may be scaled down."""
LAST_ACTIVITY = A + "last-activity"
"""When a stage last used the environment: provision, seed, test, resume and extend write it. The
janitor's `--suspend-after` counts idleness from it (envci/suspension.py, `last_activity`)."""


def rfc3339(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def namespace_object(
    ident: Identity, settings: NamespaceSettings, *, now: datetime, ttl: timedelta, digest: str,
    labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The namespace with envci's labels last, so user labels can never replace them. `labels` and
    `annotations` are more of envci's own (a budget's team and limit)."""
    labels = {**settings.labels, **(labels or {}), **ident.labels()}
    annotations = {
        **settings.annotations,
        **(annotations or {}),
        A + "created-at": rfc3339(now),
        LAST_ACTIVITY: rfc3339(now),
        A + "expires-at": rfc3339(now + ttl),
        A + "ttl": format_duration(ttl),
        A + "spec-digest": digest,
        A + "created-by": ident.ctx.actor or ident.ctx.system,
        A + "ci-system": ident.ctx.system,
    }
    if ident.ctx.build_url:
        annotations[A + "build-url"] = ident.ctx.build_url
    if ident.ctx.sha:
        annotations[A + "sha"] = ident.ctx.sha
    if ident.ctx.repo:
        annotations[A + "repo"] = ident.ctx.repo
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": ident.namespace, "labels": labels, "annotations": annotations},
    }


def quota_object(q: Quota) -> dict[str, Any] | None:
    hard = {
        "requests.cpu": q.cpu,
        "requests.memory": q.memory,
        "limits.cpu": q.limits_cpu,
        "limits.memory": q.limits_memory,
        "pods": q.pods,
        "services": q.services,
        "persistentvolumeclaims": q.persistentvolumeclaims,
    }
    hard = {k: str(v) for k, v in hard.items() if v is not None}
    if not hard:
        return None
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "envci-quota", "labels": {A + "managed": "true"}},
        "spec": {"hard": hard},
    }


def limit_range_object(lim: Limits) -> dict[str, Any] | None:
    def pick(cpu: str | None, mem: str | None) -> dict[str, str]:
        return {k: v for k, v in (("cpu", cpu), ("memory", mem)) if v is not None}

    item: dict[str, Any] = {"type": "Container"}
    for key, val in (
        ("default", pick(lim.default_cpu, lim.default_memory)),
        ("defaultRequest", pick(lim.default_request_cpu, lim.default_request_memory)),
        ("max", pick(lim.max_cpu, lim.max_memory)),
    ):
        if val:
            item[key] = val
    if len(item) == 1:
        return None
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "envci-limits", "labels": {A + "managed": "true"}},
        "spec": {"limits": [item]},
    }


def network_policy_objects(settings: NamespaceSettings) -> list[dict[str, Any]]:
    """Default-deny ingress, then allow the namespace itself and the listed namespaces."""
    if not settings.network.isolate:
        return []
    sources: list[dict[str, Any]] = [{"podSelector": {}}]
    for ns in settings.network.allow_from_namespaces:
        sources.append({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}})
    meta = {"labels": {A + "managed": "true"}}
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "envci-default-deny", **meta},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "envci-allow-same-namespace", **meta},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": sources}]},
        },
    ]


def guard_objects(settings: NamespaceSettings) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if settings.quota and (q := quota_object(settings.quota)):
        out.append(q)
    if settings.limits and (lr := limit_range_object(settings.limits)):
        out.append(lr)
    out.extend(network_policy_objects(settings))
    return out
