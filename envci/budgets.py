"""Budgets: how many environments may live at once per app, per repository or per team.

Pure rules, no cluster: which budgets apply to a new environment (envci.yaml's and the cluster's
policy, the smaller for the same scope), which environments count against each, which expired
ones to tear down to make room, and the words of a refusal. The shell that reads the cluster
and acts on the decision is envci/stages/budgets.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from envci.config.model import Budget as BudgetSettings
from envci.identity import REPO_LABEL, label_value
from envci.namespace import A, rfc3339
from envci.timestamps import parse_time

Scope = Literal["app", "repo", "team"]
SCOPES: tuple[Scope, ...] = ("app", "repo", "team")
TEAM_LABEL = A + "team"
BUDGET_ANNOTATION = A + "budget"
"""The envci.yaml budget an environment was provisioned under, as JSON: `envci list` shows usage
against it without envci.yaml."""
SCOPE_LABELS: dict[Scope, str] = {"app": A + "app", "repo": REPO_LABEL, "team": TEAM_LABEL}

POLICY_CONFIGMAP = "envci-budgets"
POLICY_KEY = "budgets.yaml"
POLICY_NAMESPACE = "envci-system"
"""Where the janitor chart's README installs it; ENVCI_POLICY_NAMESPACE names another."""
LISTED = 5
"""How many of the environments that count against a budget a refusal names, oldest first: enough
to choose one to tear down, few enough to read in a CI log."""
CONFIG_SOURCE = "envci.yaml"


@dataclass(frozen=True)
class Budget:
    """One limit: at most `limit` live environments whose `scope` is `key`."""

    scope: Scope
    key: str
    """As people write it: the app's name, the repository (`acme/shop`), the team's name."""
    limit: int
    source: str
    """`envci.yaml`, or `policy NAMESPACE/envci-budgets`."""

    def describe(self) -> str:
        return f"{'repository' if self.scope == 'repo' else self.scope} {self.key}"

    def covers(self, env: Env) -> bool:
        return env.scope_value(self.scope) == label_value(self.key)

    def as_dict(self) -> dict[str, Any]:
        return {"scope": self.scope, "key": self.key, "max_environments": self.limit, "source": self.source}


@dataclass(frozen=True)
class Env:
    """An environment as budgets see it, read from its namespace's labels and annotations."""

    namespace: str
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    created: datetime | None = None
    expires: datetime | None = None
    terminating: bool = False

    def scope_value(self, scope: Scope) -> str | None:
        return self.labels.get(SCOPE_LABELS[scope])

    def expired(self, now: datetime) -> bool:
        # No readable expiry is never expired: a person decides about such an environment.
        return self.expires is not None and self.expires <= now


def env_from_namespace(ns: dict[str, Any]) -> Env:
    meta = ns.get("metadata") or {}
    labels = meta.get("labels") or {}
    ann = meta.get("annotations") or {}
    return Env(
        namespace=meta.get("name", ""),
        name=labels.get(A + "env") or meta.get("name", ""),
        labels=dict(labels),
        # The namespace's own creation, not envci.io/created-at: that one moves with every provision.
        created=parse_time(meta.get("creationTimestamp")) or parse_time(ann.get(A + "created-at")),
        expires=parse_time(ann.get(A + "expires-at")),
        terminating=bool(meta.get("deletionTimestamp")) or (ns.get("status") or {}).get("phase") == "Terminating",
    )


def oldest_first(envs: list[Env]) -> list[Env]:
    """By creation; an environment of unknown age sorts last, so it is never taken for the oldest."""
    return sorted(envs, key=lambda e: (e.created is None, e.created or datetime.min, e.name))


def counted(envs: list[Env], budget: Budget, *, exclude: str | None = None) -> list[Env]:
    """The environments that count against `budget`, oldest first: live (not being deleted), in its
    scope, and not `exclude` (the one being provisioned, which is always allowed to be provisioned again)."""
    return oldest_first([e for e in envs if not e.terminating and e.namespace != exclude and budget.covers(e)])


# --- which budgets apply --------------------------------------------------------------------------


Limit = Annotated[StrictInt, Field(ge=0)]
"""A policy's number of environments; 0 freezes the scope (only existing environments may be provisioned again)."""


class Policy(BaseModel):
    """The cluster's budgets (ConfigMap envci-budgets, key budgets.yaml): most live environments per
    app, per repository (as the CI system names it, `acme/shop`) and per team."""

    model_config = ConfigDict(extra="forbid")

    apps: dict[str, Limit] = Field(default_factory=dict)
    repos: dict[str, Limit] = Field(default_factory=dict)
    teams: dict[str, Limit] = Field(default_factory=dict)

    def entries(self) -> dict[Scope, dict[str, int]]:
        return {"app": self.apps, "repo": self.repos, "team": self.teams}


class PolicyError(ValueError):
    """The policy's text is not a budget policy; the message says where."""


def parse_policy(text: str | None) -> Policy:
    """The policy from the ConfigMap's budgets.yaml; an absent or empty one sets no budget."""
    if not text or not text.strip():
        return Policy()
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise PolicyError(f"it is not YAML: {str(e).splitlines()[0]}") from None
    if raw is None:
        return Policy()
    if not isinstance(raw, dict):
        raise PolicyError("the top level must be a mapping of apps, repos and teams")
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PolicyError(f"{where}: {first['msg'].lower()} (a number of environments, 0 or more)") from None
    return policy


def policy_budgets(policy: Policy, source: str) -> list[Budget]:
    return [Budget(scope, key, limit, source) for scope, entries in policy.entries().items() for key, limit in entries.items()]


@dataclass(frozen=True)
class Target:
    """What the environment being provisioned belongs to, in each scope (None: not known)."""

    app: str
    repo: str | None
    team: str | None

    def key(self, scope: Scope) -> str | None:
        return {"app": self.app, "repo": self.repo, "team": self.team}[scope]


def applicable(target: Target, settings: BudgetSettings | None, policy_list: list[Budget]) -> list[Budget]:
    """The budgets a new environment of `target` must fit: for each scope the stricter of envci.yaml's
    and the policy's (on a tie, envci.yaml's, which the reader can change). A scope whose key is
    unknown (no repository in the CI context, no team in envci.yaml) has no budget."""
    out: list[Budget] = []
    for scope in SCOPES:
        key = target.key(scope)
        if not key:
            continue
        candidates = [b for b in policy_list if b.scope == scope and label_value(b.key) == label_value(key)]
        if settings and settings.max_environments is not None and settings.scope == scope:
            candidates.insert(0, Budget(scope, key, settings.max_environments, CONFIG_SOURCE))
        if candidates:
            out.append(min(candidates, key=lambda b: b.limit))  # min keeps the first of equals
    return out


# --- the decision ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Over:
    """A budget the new environment would exceed, and what counts against it (oldest first)."""

    budget: Budget
    counted: list[Env]
    expired: int
    """How many of those have expired: what reap-oldest-expired could tear down."""


@dataclass(frozen=True)
class Decision:
    reap: list[tuple[Env, Budget]] = field(default_factory=list)
    """Expired environments to tear down first, oldest first, each with the budget it makes room under."""
    over: list[Over] = field(default_factory=list)
    """Budgets that cannot be met: the environment is refused (and nothing is torn down)."""


def decide(envs: list[Env], budgets: list[Budget], *, exclude: str, now: datetime, reap_expired: bool) -> Decision:
    """Whether one more environment fits every budget; with `reap_expired`, which expired environments
    would make it fit. Either every budget can be met, or nothing is torn down: a refusal changes nothing."""
    chosen: list[tuple[Env, Budget]] = []
    over: list[Over] = []
    for budget in budgets:
        mine = counted(envs, budget, exclude=exclude)
        taken = {e.namespace for e, _ in chosen}
        need = len([e for e in mine if e.namespace not in taken]) + 1 - budget.limit
        if need <= 0:
            continue
        expired = [e for e in mine if e.expired(now)]
        spare = [e for e in expired if e.namespace not in taken]
        if reap_expired and len(spare) >= need:
            chosen += [(e, budget) for e in spare[:need]]
        else:
            over.append(Over(budget, mine, len(expired)))
    return Decision(reap=[] if over else chosen, over=over)


# --- words ----------------------------------------------------------------------------------------


def short_age(td: timedelta) -> str:
    """The two largest units of an age, as a person glances at it: `3d4h`, `2h15m`, `40s`."""
    secs = max(0, int(td.total_seconds()))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if secs >= size or (unit == "s" and not parts):
            parts.append(f"{secs // size}{unit}")
            secs %= size
        if len(parts) == 2:
            break
    return "".join(parts)


def env_entry(env: Env, now: datetime) -> dict[str, Any]:
    return {
        "name": env.name,
        "namespace": env.namespace,
        "age": short_age(now - env.created) if env.created else None,
        "created_at": rfc3339(env.created) if env.created else None,
        "expires_at": rfc3339(env.expires) if env.expires else None,
        "expired": env.expired(now),
    }


def env_line(env: Env, now: datetime) -> str:
    age = f"{short_age(now - env.created)} old" if env.created else "age unknown"
    if env.expires is None:
        until = "no expiry recorded"
    elif env.expired(now):
        until = f"expired at {rfc3339(env.expires)}"
    else:
        until = f"expires at {rfc3339(env.expires)}"
    return f"{env.name} (namespace {env.namespace}): {age}, {until}"


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def refusal(name: str, over: list[Over], *, now: datetime, reap_expired: bool, policy_ref: str) -> tuple[str, str]:
    """(message, hint) for a refused environment: each budget it would exceed with the oldest
    environments that count against it, and what to do."""
    lines = []
    for o in over:
        b = o.budget
        head = f"environment {name} would be the {ordinal(len(o.counted) + 1)} of {b.describe()}, whose budget allows {b.limit} ({b.source})"
        if reap_expired:
            head += f"; {o.expired} of them expired, too few to make room"
        shown = o.counted[:LISTED]
        lines.append(head + ("; the oldest that count against it:" if shown else ""))
        lines += [f"  {env_line(e, now)}" for e in shown]
        if len(o.counted) > len(shown):
            lines.append(f"  ... and {len(o.counted) - len(shown)} more (`envci list` shows them all)")
    oldest = next((o.counted[0].name for o in over if o.counted), "NAME")
    raise_it = []
    if any(o.budget.source == CONFIG_SOURCE for o in over):
        raise_it.append("raise budget.max_environments in envci.yaml")
    if any(o.budget.source != CONFIG_SOURCE for o in over):
        raise_it.append(f"ask for the cluster's budget to be raised (ConfigMap {policy_ref}, the janitor chart's `budgets` values)")
    hint = f"tear one down with `envci teardown --env {oldest}`, or {' or '.join(raise_it)}"
    if not reap_expired and any(o.expired for o in over):
        hint += "; with budget.when_exceeded: reap-oldest-expired, provision tears expired ones down itself"
    return "\n".join(lines), hint


def marks(settings: BudgetSettings | None, target: Target) -> tuple[dict[str, str], dict[str, str]]:
    """(labels, annotations) that put the environment in its team and record envci.yaml's budget on it,
    so team budgets can count it and `envci list` can show usage without envci.yaml."""
    labels = {TEAM_LABEL: label_value(target.team)} if target.team else {}
    annotations = {}
    key = target.key(settings.scope) if settings else None
    if settings and settings.max_environments is not None and key:
        annotations[BUDGET_ANNOTATION] = json.dumps(
            {"scope": settings.scope, "key": key, "max_environments": settings.max_environments}, sort_keys=True
        )
    return labels, annotations


def recorded_budgets(namespaces: list[dict[str, Any]]) -> list[Budget]:
    """envci.yaml's budgets as the environments record them: for each scope and key, the one the most
    recently provisioned environment carries (an older one may predate a change to envci.yaml)."""
    newest: dict[tuple[str, str], tuple[float, Budget]] = {}
    for ns in namespaces:
        meta = ns.get("metadata") or {}
        ann = meta.get("annotations") or {}
        try:
            raw = json.loads(ann.get(BUDGET_ANNOTATION) or "null")
        except ValueError:
            continue  # edited by hand: ignored, as an unreadable expiry is
        if not isinstance(raw, dict) or raw.get("scope") not in SCOPES or not isinstance(raw.get("key"), str):
            continue
        limit = raw.get("max_environments")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            continue
        provisioned = parse_time(ann.get(A + "created-at"))  # moves with every provision: the newest config
        at = provisioned.timestamp() if provisioned else float("-inf")
        key = (raw["scope"], label_value(raw["key"]))
        if key not in newest or at >= newest[key][0]:
            newest[key] = (at, Budget(raw["scope"], raw["key"], limit, CONFIG_SOURCE))
    return [b for _, b in sorted(newest.values(), key=lambda x: (x[1].scope, x[1].key))]


def usage(envs: list[Env], budgets: list[Budget]) -> list[dict[str, Any]]:
    """Each budget with how many live environments count against it now."""
    out = []
    for b in budgets:
        used = len(counted(envs, b))
        out.append({**b.as_dict(), "used": used, "over": used > b.limit})
    return out


def usage_line(u: dict[str, Any]) -> str:
    what = "repository" if u["scope"] == "repo" else u["scope"]
    line = f"{what} {u['key']}: {u['used']} of {u['max_environments']} environments ({u['source']})"
    return line + (" over budget" if u["over"] else "")
