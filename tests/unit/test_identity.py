from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from envci.ci.detect import detect_context
from envci.identity import CiContext, dns_label, identify, slugify

DNS = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def ctx(**kw: str) -> CiContext:
    return CiContext(system="local", **kw)


@pytest.mark.parametrize(
    "branch",
    [
        "feature/Login-Page",
        "FEATURE/login-page",
        "feature-login-page",
        "fix/ünïcödé-straße",
        "日本語ブランチ",
        "x" * 200,
        "y" * 199 + "z",
        "release/1.2.3",
        "--weird--",
    ],
)
def test_branch_names_give_valid_labels(branch: str) -> None:
    ident = identify("shop", ctx(branch=branch))
    assert DNS.match(ident.name) and len(ident.name) <= 63
    assert DNS.match(ident.namespace) and len(ident.namespace) <= 63


def test_distinct_branches_give_distinct_names() -> None:
    branches = ["feature/Login-Page", "FEATURE/login-page", "feature-login-page", "feature/login-page",
                "x" * 200, "x" * 199 + "y", "日本語ブランチ", "中文分支"]
    names = {identify("shop", ctx(branch=b)).name for b in branches}
    assert len(names) == len(branches)


def test_same_build_same_name_and_prs_differ() -> None:
    a1 = identify("shop", ctx(branch="main", pr="12", build="100"))
    a2 = identify("shop", ctx(branch="main", pr="12", build="101"))
    b = identify("shop", ctx(branch="main", pr="13", build="100"))
    assert a1.name == a2.name == "shop-pr-12"
    assert b.name == "shop-pr-13"
    assert a1.namespace == "envci-shop-pr-12"


def test_plain_branch_keeps_readable_name() -> None:
    assert identify("shop", ctx(branch="main")).name == "shop-main"


def test_override_is_sanitized() -> None:
    ident = identify("shop", ctx(branch="main"), override="My Env")
    assert DNS.match(ident.name)


def test_slugify_folds_accents() -> None:
    assert slugify("Café/Crème") == "cafe-creme"
    assert dns_label("") .startswith("x-")


def test_labels_are_valid_values() -> None:
    ident = identify("shop", ctx(branch="feature/ü" + "a" * 100, pr="7", build="9"))
    for key, value in ident.labels().items():
        assert len(value) <= 63 and re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?", value), (key, value)


def test_detect_github_pr() -> None:
    c = detect_context({
        "GITHUB_ACTIONS": "true", "GITHUB_REF": "refs/pull/42/merge", "GITHUB_HEAD_REF": "feat/x",
        "GITHUB_SHA": "abc", "GITHUB_REPOSITORY": "o/r", "GITHUB_RUN_ID": "5", "GITHUB_RUN_ATTEMPT": "2",
    })
    assert (c.system, c.pr, c.branch, c.build) == ("github", "42", "feat/x", "5-2")
    assert c.build_url == "https://github.com/o/r/actions/runs/5"


def test_detect_gitlab_mr_and_jenkins() -> None:
    g = detect_context({"GITLAB_CI": "true", "CI_MERGE_REQUEST_IID": "3", "CI_COMMIT_REF_NAME": "b", "CI_PIPELINE_ID": "77"})
    assert (g.system, g.pr, g.branch, g.build) == ("gitlab", "3", "b", "77")
    j = detect_context({"JENKINS_URL": "http://j", "BRANCH_NAME": "PR-4", "CHANGE_ID": "4", "BUILD_NUMBER": "8", "GIT_BRANCH": "origin/x"})
    assert (j.system, j.pr, j.build) == ("jenkins", "4", "8")


@pytest.mark.parametrize(
    ("event_name", "payload", "ref", "pr"),
    [
        ("pull_request_target", {"number": 42, "pull_request": {"number": 42}}, "refs/heads/main", "42"),  # a fork's PR
        ("pull_request", {"number": 42, "pull_request": {"number": 42}}, "refs/pull/42/merge", "42"),
        ("issue_comment", {"issue": {"number": 42, "pull_request": {"url": "u"}}}, "refs/heads/main", "42"),
        ("issue_comment", {"issue": {"number": 43}}, "refs/heads/main", ""),  # a comment on an issue, not a PR
        ("push", {"ref": "refs/heads/main"}, "refs/heads/main", ""),
    ],
)
def test_github_pr_number_comes_from_the_event_payload(tmp_path: Path, event_name: str, payload: dict, ref: str, pr: str) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps(payload))
    env = {"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": event_name, "GITHUB_EVENT_PATH": str(event), "GITHUB_REF": ref,
           "GITHUB_HEAD_REF": "feat/x" if pr else "", "GITHUB_REF_NAME": "main", "GITHUB_REPOSITORY": "o/r"}
    c = detect_context(env)
    assert c.pr == pr
    assert identify("shop", c).name == (f"shop-pr-{pr}" if pr else "shop-main")


def test_an_unreadable_event_payload_falls_back_to_the_ref(tmp_path: Path) -> None:
    (tmp_path / "event.json").write_text("{not json")
    for path in (str(tmp_path / "event.json"), str(tmp_path / "missing.json")):
        c = detect_context({"GITHUB_ACTIONS": "true", "GITHUB_EVENT_PATH": path, "GITHUB_REF": "refs/pull/7/merge"})
        assert c.pr == "7"
