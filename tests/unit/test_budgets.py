"""Budgets as pure rules: which environments count, which budgets apply, what to tear down, what a
refusal says, and the policy's and envci.yaml's shapes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from envci.budgets import (
    BUDGET_ANNOTATION,
    CONFIG_SOURCE,
    Budget,
    Env,
    PolicyError,
    Target,
    applicable,
    counted,
    decide,
    env_from_namespace,
    marks,
    parse_policy,
    policy_budgets,
    recorded_budgets,
    refusal,
    short_age,
    usage,
    usage_line,
)
from envci.config.model import Budget as Settings
from envci.config.model import Spec
from envci.identity import label_value
from envci.namespace import rfc3339

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
POLICY = "policy envci-system/envci-budgets"


def env(name: str, *, app: str = "shop", repo: str | None = "acme/shop", team: str | None = None, age_h: float = 1,
        expires_in_h: float | None = 3, terminating: bool = False) -> Env:
    labels = {"envci.io/app": app, "envci.io/env": name}
    if repo:
        labels["envci.io/repo"] = label_value(repo)
    if team:
        labels["envci.io/team"] = team
    return Env(
        namespace=f"envci-{name}", name=name, labels=labels, created=NOW - timedelta(hours=age_h),
        expires=None if expires_in_h is None else NOW + timedelta(hours=expires_in_h), terminating=terminating,
    )


def app_budget(limit: int, source: str = CONFIG_SOURCE) -> Budget:
    return Budget("app", "shop", limit, source)


# --- reading an environment ---------------------------------------------------------------------


def test_an_environment_is_read_from_its_namespace() -> None:
    ns = {"metadata": {"name": "envci-shop-pr-1", "creationTimestamp": "2026-03-01T10:00:00Z",
                       "labels": {"envci.io/env": "shop-pr-1", "envci.io/app": "shop", "envci.io/team": "payments"},
                       "annotations": {"envci.io/expires-at": "2026-03-01T11:00:00Z", "envci.io/created-at": "2026-03-01T11:30:00Z"}}}
    e = env_from_namespace(ns)
    assert (e.name, e.namespace, e.scope_value("team")) == ("shop-pr-1", "envci-shop-pr-1", "payments")
    # Age is the namespace's own: envci.io/created-at moves with every provision.
    assert e.created == datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)
    assert e.expired(NOW) and not e.terminating


def test_a_namespace_being_deleted_is_terminating_and_an_unreadable_expiry_never_expires() -> None:
    e = env_from_namespace({"metadata": {"name": "x", "deletionTimestamp": "2026-03-01T10:00:00Z",
                                         "annotations": {"envci.io/expires-at": "yesterday"}}})
    assert e.terminating and e.expires is None and not e.expired(NOW)
    assert env_from_namespace({"metadata": {"name": "y"}, "status": {"phase": "Terminating"}}).terminating


# --- counting -------------------------------------------------------------------------------------


def test_counted_leaves_out_terminating_ones_other_scopes_and_the_one_being_provisioned() -> None:
    envs = [
        env("shop-pr-1", age_h=5),
        env("shop-pr-2", age_h=9),
        env("shop-pr-3", terminating=True),
        env("blog-pr-1", app="blog"),
        env("shop-pr-4", age_h=2),
    ]
    assert [e.name for e in counted(envs, app_budget(5), exclude="envci-shop-pr-4")] == ["shop-pr-2", "shop-pr-1"]


def test_a_repository_budget_counts_every_app_of_the_repository_by_its_label_value() -> None:
    envs = [env("shop-pr-1"), env("blog-pr-1", app="blog"), env("other-pr-1", repo="acme/other")]
    b = Budget("repo", "acme/shop", 5, CONFIG_SOURCE)
    assert {e.name for e in counted(envs, b)} == {"shop-pr-1", "blog-pr-1"}


def test_unknown_age_sorts_last() -> None:
    envs = [Env("envci-a", "a", {"envci.io/app": "shop"}), env("b", age_h=1)]
    assert [e.name for e in counted(envs, app_budget(5))] == ["b", "a"]


# --- which budgets apply --------------------------------------------------------------------------


def test_the_stricter_of_envci_yaml_and_the_policy_applies_per_scope() -> None:
    target = Target(app="shop", repo="acme/shop", team="payments")
    policy = policy_budgets(parse_policy("apps: {shop: 3, blog: 1}\nrepos: {acme/shop: 10}\nteams: {payments: 8}"), POLICY)
    got = applicable(target, Settings(max_environments=5), policy)
    assert [(b.scope, b.key, b.limit, b.source) for b in got] == [
        ("app", "shop", 3, POLICY), ("repo", "acme/shop", 10, POLICY), ("team", "payments", 8, POLICY),
    ]
    got = applicable(target, Settings(max_environments=2, scope="team", team="payments"), policy)
    assert ("team", "payments", 2, CONFIG_SOURCE) in [(b.scope, b.key, b.limit, b.source) for b in got]


def test_on_a_tie_envci_yaml_is_named_since_its_reader_can_change_it() -> None:
    got = applicable(Target("shop", None, None), Settings(max_environments=3), [app_budget(3, POLICY)])
    assert [b.source for b in got] == [CONFIG_SOURCE]


def test_a_scope_whose_key_is_unknown_has_no_budget() -> None:
    got = applicable(Target("shop", repo=None, team=None), Settings(max_environments=2, scope="repo"), [])
    assert got == []


# --- the decision ---------------------------------------------------------------------------------


def test_room_left_means_no_change() -> None:
    d = decide([env("shop-pr-1"), env("shop-pr-2")], [app_budget(3)], exclude="envci-shop-pr-3", now=NOW, reap_expired=True)
    assert d.over == [] and d.reap == []


def test_the_environment_being_provisioned_again_always_fits() -> None:
    envs = [env("shop-pr-1"), env("shop-pr-2")]
    assert decide(envs, [app_budget(2)], exclude="envci-shop-pr-2", now=NOW, reap_expired=False).over == []
    assert decide(envs, [app_budget(2)], exclude="envci-shop-pr-3", now=NOW, reap_expired=False).over != []


def test_over_budget_refuses_and_lists_what_counts_oldest_first() -> None:
    envs = [env("shop-pr-1", age_h=1), env("shop-pr-2", age_h=30, expires_in_h=-2), env("shop-pr-3", age_h=4)]
    d = decide(envs, [app_budget(3)], exclude="envci-shop-pr-9", now=NOW, reap_expired=False)
    assert d.reap == []
    assert [(o.budget.limit, [e.name for e in o.counted], o.expired) for o in d.over] == [(3, ["shop-pr-2", "shop-pr-3", "shop-pr-1"], 1)]


def test_reap_oldest_expired_takes_the_oldest_expired_never_a_live_one() -> None:
    envs = [
        env("shop-pr-1", age_h=50),  # the oldest, but live
        env("shop-pr-2", age_h=20, expires_in_h=-1),
        env("shop-pr-3", age_h=30, expires_in_h=-5),
        env("shop-pr-4", age_h=2),
    ]
    d = decide(envs, [app_budget(4)], exclude="envci-shop-pr-9", now=NOW, reap_expired=True)
    assert d.over == [] and [e.name for e, _ in d.reap] == ["shop-pr-3"]
    d = decide(envs, [app_budget(3)], exclude="envci-shop-pr-9", now=NOW, reap_expired=True)
    assert [e.name for e, _ in d.reap] == ["shop-pr-3", "shop-pr-2"]


def test_too_few_expired_to_make_room_tears_nothing_down() -> None:
    envs = [env("shop-pr-1", age_h=50), env("shop-pr-2", age_h=20, expires_in_h=-1), env("shop-pr-3", age_h=2)]
    d = decide(envs, [app_budget(1)], exclude="envci-shop-pr-9", now=NOW, reap_expired=True)
    assert d.reap == [] and [o.expired for o in d.over] == [1]


def test_every_budget_must_have_room_and_one_teardown_counts_for_each_budget_it_is_in() -> None:
    envs = [env("shop-pr-1", age_h=9, expires_in_h=-1), env("blog-pr-1", app="blog", age_h=5), env("shop-pr-2", age_h=1)]
    budgets = [app_budget(2), Budget("repo", "acme/shop", 3, POLICY)]
    d = decide(envs, budgets, exclude="envci-shop-pr-9", now=NOW, reap_expired=True)
    assert [e.name for e, _ in d.reap] == ["shop-pr-1"] and d.over == []
    d = decide(envs, budgets, exclude="envci-shop-pr-9", now=NOW, reap_expired=False)
    assert [o.budget.scope for o in d.over] == ["app", "repo"]
    # One budget that cannot be met refuses the whole: the other's reap does not happen either.
    budgets = [app_budget(2), Budget("repo", "acme/shop", 1, POLICY)]
    d = decide(envs, budgets, exclude="envci-shop-pr-9", now=NOW, reap_expired=True)
    assert d.reap == [] and [o.budget.scope for o in d.over] == ["repo"]


def test_a_frozen_scope_refuses_every_new_environment() -> None:
    d = decide([], [app_budget(0, POLICY)], exclude="envci-shop-pr-1", now=NOW, reap_expired=True)
    assert [o.budget.limit for o in d.over] == [0]


# --- words ----------------------------------------------------------------------------------------


def test_a_refusal_names_the_oldest_with_age_and_expiry_and_says_what_to_do() -> None:
    envs = [env(f"shop-pr-{i}", age_h=10 * i + 0.5, expires_in_h=-1 if i == 6 else 2) for i in range(1, 8)]
    d = decide(envs, [app_budget(7)], exclude="envci-shop-pr-9", now=NOW, reap_expired=False)
    message, hint = refusal("shop-pr-9", d.over, now=NOW, reap_expired=False, policy_ref="envci-system/envci-budgets")
    lines = message.splitlines()
    assert lines[0].startswith("environment shop-pr-9 would be the 8th of app shop, whose budget allows 7 (envci.yaml)")
    assert lines[1] == f"  shop-pr-7 (namespace envci-shop-pr-7): 2d22h old, expires at {rfc3339(NOW + timedelta(hours=2))}"
    assert lines[2] == f"  shop-pr-6 (namespace envci-shop-pr-6): 2d12h old, expired at {rfc3339(NOW - timedelta(hours=1))}"
    assert "shop-pr-2" not in message and "shop-pr-1" not in message
    assert lines[-1] == "  ... and 2 more (`envci list` shows them all)"
    assert "`envci teardown --env shop-pr-7`" in hint and "budget.max_environments" in hint
    assert "reap-oldest-expired" in hint  # an expired one counts: say how provision could take it


def test_a_policy_refusal_points_at_the_configmap() -> None:
    d = decide([env("shop-pr-1")], [app_budget(1, POLICY)], exclude="envci-shop-pr-9", now=NOW, reap_expired=True)
    message, hint = refusal("shop-pr-9", d.over, now=NOW, reap_expired=True, policy_ref="envci-system/envci-budgets")
    assert "whose budget allows 1 (policy envci-system/envci-budgets); 0 of them expired, too few to make room" in message
    assert "ConfigMap envci-system/envci-budgets" in hint and "max_environments" not in hint


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (59, "59s"), (3600 * 26 + 61, "1d2h"), (3600 * 2 + 15 * 60 + 9, "2h15m"), (-5, "0s")])
def test_short_age(seconds: int, text: str) -> None:
    assert short_age(timedelta(seconds=seconds)) == text


def test_usage_counts_live_environments_against_each_budget() -> None:
    envs = [env("shop-pr-1"), env("shop-pr-2", terminating=True), env("shop-pr-3")]
    (u,) = usage(envs, [app_budget(5)])
    assert (u["used"], u["over"]) == (2, False)
    assert usage_line(u) == "app shop: 2 of 5 environments (envci.yaml)"
    (u,) = usage(envs, [Budget("repo", "acme/shop", 1, POLICY)])
    assert usage_line(u) == "repository acme/shop: 2 of 1 environments (policy envci-system/envci-budgets) over budget"


# --- the policy -----------------------------------------------------------------------------------


def test_a_policy_reads_limits_per_app_repository_and_team() -> None:
    p = parse_policy("apps:\n  shop: 10\nrepos:\n  acme/shop: 20\nteams:\n  payments: 0\n")
    assert (p.apps, p.repos, p.teams) == ({"shop": 10}, {"acme/shop": 20}, {"payments": 0})
    assert parse_policy(None) == parse_policy("") == parse_policy("# nothing yet\n")


@pytest.mark.parametrize("text, words", [
    ("apps: [shop]", "apps"),
    ("apps: {shop: -1}", "apps.shop"),
    ("apps: {shop: '5'}", "apps.shop"),
    ("apps: {shop: true}", "apps.shop"),
    ("app: {shop: 5}", "app"),
    ("- 5", "mapping"),
    ("apps: {shop: [", "not YAML"),
])
def test_a_broken_policy_is_refused_saying_where(text: str, words: str) -> None:
    with pytest.raises(PolicyError, match=words.replace(".", r"\.")):
        parse_policy(text)


# --- envci.yaml -----------------------------------------------------------------------------------


def spec(budget: dict[str, Any]) -> Spec:
    return Spec.model_validate({"name": "shop", "budget": budget})


def test_the_budget_section_of_envci_yaml() -> None:
    b = spec({"max_environments": 5, "scope": "team", "team": "payments", "when_exceeded": "reap-oldest-expired"}).budget
    assert b is not None and (b.max_environments, b.scope, b.team, b.when_exceeded) == (5, "team", "payments", "reap-oldest-expired")
    assert Spec.model_validate({"name": "shop"}).budget is None


@pytest.mark.parametrize("budget, words", [
    ({"max_environments": 0}, "greater than or equal to 1"),
    ({"max_environments": 5, "scope": "team"}, "needs `team`"),
    ({"team": "pay ments"}, "not a valid team name"),
    ({"scope": "org"}, "'app', 'repo' or 'team'"),
    ({"when_exceeded": "reap"}, "'fail' or 'reap-oldest-expired'"),
    ({"max": 5}, "Extra inputs"),
])
def test_a_bad_budget_is_bad_input(budget: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        spec(budget)


def test_marks_put_the_team_label_and_record_the_budget() -> None:
    labels, annotations = marks(Settings(max_environments=4, scope="team", team="payments"), Target("shop", "acme/shop", "payments"))
    assert labels == {"envci.io/team": "payments"}
    assert json.loads(annotations[BUDGET_ANNOTATION]) == {"scope": "team", "key": "payments", "max_environments": 4}
    assert marks(None, Target("shop", None, None)) == ({}, {})
    assert marks(Settings(max_environments=4, scope="repo"), Target("shop", None, None)) == ({}, {})


def test_recorded_budgets_take_the_most_recently_provisioned_environments() -> None:
    def ns(limit: int, provisioned: str) -> dict[str, Any]:
        return {"metadata": {"name": f"n{limit}", "annotations": {
            BUDGET_ANNOTATION: json.dumps({"scope": "app", "key": "shop", "max_environments": limit}), "envci.io/created-at": provisioned}}}

    got = recorded_budgets([ns(5, "2026-03-01T10:00:00Z"), ns(3, "2026-03-01T11:00:00Z"), ns(4, "2026-02-01T10:00:00Z"),
                            {"metadata": {"name": "bad", "annotations": {BUDGET_ANNOTATION: "{not json"}}}])
    assert got == [Budget("app", "shop", 3, CONFIG_SOURCE)]
