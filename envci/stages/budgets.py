"""Budgets in the stages: provision refuses an environment beyond a budget, or makes room by tearing
down expired ones; `envci list` shows usage. The rules are pure, in envci/budgets.py; this module
reads the cluster (the policy ConfigMap, the environments) and acts on their decision.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from envci.budgets import (
    CONFIG_SOURCE,
    POLICY_CONFIGMAP,
    POLICY_KEY,
    POLICY_NAMESPACE,
    SCOPES,
    Budget,
    PolicyError,
    Target,
    applicable,
    counted,
    decide,
    env_entry,
    env_from_namespace,
    marks,
    parse_policy,
    policy_budgets,
    recorded_budgets,
    refusal,
    usage,
)
from envci.config.loader import LoadedConfig
from envci.config.yamlpos import line_for
from envci.errors import BudgetExceededError, ConfigError, EnvciError, InfrastructureError
from envci.identity import label_value
from envci.kube.client import Kube
from envci.namespace import rfc3339
from envci.output import Reporter
from envci.stages.teardown import teardown

MANAGED = "envci.io/managed=true"


def policy_namespace(env: Mapping[str, str] = os.environ) -> str:
    """Where the cluster's budget policy lives: the janitor chart's namespace."""
    return env.get("ENVCI_POLICY_NAMESPACE") or POLICY_NAMESPACE


def policy_ref(namespace: str) -> str:
    return f"{namespace}/{POLICY_CONFIGMAP}"


def read_policy(kube: Kube, *, namespace: str, warn: Callable[[str], None]) -> list[Budget]:
    """The cluster's budgets; none when the ConfigMap does not exist.

    One that cannot be read (the credentials may not read ConfigMaps there) is warned about and
    passed over: budgets keep environments from piling up, they are no security boundary, and a
    build should not fail for a permission a platform team has not granted yet. One that is not a
    budget policy is refused (exit 2): whoever wrote it meant limits, and guessing would ignore them."""
    ref = policy_ref(namespace)
    try:
        cm = kube.get("v1", "ConfigMap", POLICY_CONFIGMAP, namespace)
    except InfrastructureError as e:
        warn(f"cannot read the cluster's budgets (ConfigMap {ref}): {e.message}; only envci.yaml's budget applies. "
             f"Grant `get` on it to these credentials (the janitor chart's budgets.readers)")
        return []
    if cm is None:
        return []
    try:
        policy = parse_policy((cm.get("data") or {}).get(POLICY_KEY))
    except PolicyError as e:
        raise ConfigError(
            f"the cluster's budget policy (ConfigMap {ref}, key {POLICY_KEY}) is not valid: {e}",
            hint="fix it in the janitor chart's `budgets` values (helm upgrade), e.g. budgets: {apps: {shop: 10}}; "
            "nothing was changed",
        ) from None
    return policy_budgets(policy, f"policy {ref}")


def target_of(cfg: LoadedConfig) -> Target:
    b = cfg.spec.budget
    return Target(app=cfg.identity.app, repo=cfg.identity.ctx.repo or None, team=b.team if b else None)


def namespace_marks(cfg: LoadedConfig) -> tuple[dict[str, str], dict[str, str]]:
    """The labels and annotations provision puts on the namespace for budgets."""
    return marks(cfg.spec.budget, target_of(cfg))


def make_room(
    kube: Kube,
    cfg: LoadedConfig,
    rep: Reporter,
    *,
    now: datetime,
    teardown_fn: Callable[..., dict[str, Any]] = teardown,
    env: Mapping[str, str] = os.environ,
) -> dict[str, Any]:
    """Before provision creates anything: refuse the environment when a budget has no room for it
    (BudgetExceededError, exit 2, nothing changed), or with `when_exceeded: reap-oldest-expired` tear
    down just enough of the oldest expired environments to make room first.

    The count is a snapshot: two provisions at the same moment may both find room for one. Budgets
    keep environments from piling up over days; they do not serialise builds."""
    settings = cfg.spec.budget
    target = target_of(cfg)
    ns = policy_namespace(env)
    if settings and settings.max_environments is not None and not target.key(settings.scope):
        rep.warn(f"budget: the CI context names no repository, so envci.yaml's budget of {settings.max_environments} per repository "
                 "is not applied")
    budgets = applicable(target, settings, read_policy(kube, namespace=ns, warn=rep.warn))
    if not budgets:
        return {"budgets": [], "reaped": []}
    envs = [env_from_namespace(n) for n in kube.namespaces(MANAGED)]
    reap_expired = bool(settings and settings.when_exceeded == "reap-oldest-expired")
    decision = decide(envs, budgets, exclude=cfg.identity.namespace, now=now, reap_expired=reap_expired)
    if decision.over:
        message, hint = refusal(cfg.identity.name, decision.over, now=now, reap_expired=reap_expired, policy_ref=policy_ref(ns))
        mine = next((o for o in decision.over if o.budget.source == CONFIG_SOURCE), None)
        where: dict[str, Any] = {}
        if mine is not None:  # point at the line a reader would change
            where = {"file": str(cfg.file), "line": line_for(cfg.lines, ("budget", "max_environments")), "field": "budget.max_environments"}
        raise BudgetExceededError(
            message, hint=hint, **where,
            budgets=[{**o.budget.as_dict(), "used": len(o.counted), "environments": [env_entry(e, now) for e in o.counted]} for o in decision.over],
        )
    reaped = []
    for victim, budget in decision.reap:
        assert victim.expires is not None  # decide() takes only expired environments
        rep.progress(f"budget: tearing down environment {victim.name}, expired at {rfc3339(victim.expires)}, to make room under "
                     f"the budget of {budget.limit} for {budget.describe()} ({budget.source})")
        try:
            teardown_fn(kube, rep, namespace=victim.namespace, wait=False)
        except EnvciError as e:
            raise InfrastructureError(
                f"could not tear down expired environment {victim.name} to make room under the budget of {budget.describe()}: {e.message}",
                hint=f"`envci teardown --env {victim.name}` says what holds it; then provision again",
            ) from None
        reaped.append({"name": victim.name, "namespace": victim.namespace, "expires_at": rfc3339(victim.expires), **budget.as_dict()})
    gone = {r["namespace"] for r in reaped}
    left = [e for e in envs if e.namespace not in gone]
    # What each budget holds once this environment exists: the report a pipeline can warn on.
    after = [{**b.as_dict(), "used": len(counted(left, b, exclude=cfg.identity.namespace)) + 1} for b in budgets]
    return {"budgets": after, "reaped": reaped}


def list_usage(kube: Kube, namespaces: list[dict[str, Any]], *, app: str | None, warn: Callable[[str], None],
               env: Mapping[str, str] = os.environ) -> list[dict[str, Any]]:
    """Usage against every budget known to the cluster: the policy's, and envci.yaml's as the environments
    record them. With `app`, only the budgets its environments count against (and its own)."""
    envs = [env_from_namespace(n) for n in namespaces]
    budgets = read_policy(kube, namespace=policy_namespace(env), warn=warn) + recorded_budgets(namespaces)
    if app:
        mine = [e for e in envs if e.scope_value("app") == label_value(app)]
        budgets = [b for b in budgets if (b.scope == "app" and label_value(b.key) == label_value(app)) or any(b.covers(e) for e in mine)]
    budgets.sort(key=lambda b: (SCOPES.index(b.scope), b.key, b.source != CONFIG_SOURCE))
    return usage(envs, budgets)
