"""Detect the CI context from the standard environment variables each CI system sets."""

from __future__ import annotations

import getpass
import json
import re
import subprocess
from collections.abc import Mapping
from typing import Any

from envci.identity import CiContext


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def github_event(env: Mapping[str, str]) -> dict[str, Any]:
    """The webhook payload of the run (GITHUB_EVENT_PATH); empty when absent or unreadable."""
    path = env.get("GITHUB_EVENT_PATH")
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def pull_request_number(event: Mapping[str, Any], ref: str) -> str:
    """The PR a run is for. The payload first: under `pull_request_target` (fork PRs) GITHUB_REF is
    the base branch, and an `issue_comment` run on a PR has no PR ref at all."""
    pr, issue = event.get("pull_request"), event.get("issue")
    if not isinstance(pr, dict) and isinstance(issue, dict) and issue.get("pull_request"):
        pr = issue  # a comment on a pull request
    number = str(pr.get("number", "")) if isinstance(pr, dict) else ""
    if number.isdigit():
        return number
    m = re.match(r"refs/pull/(\d+)/", ref)
    return m.group(1) if m else ""


def github(env: Mapping[str, str], event: Mapping[str, Any] | None = None) -> CiContext:
    event = github_event(env) if event is None else event
    server = env.get("GITHUB_SERVER_URL", "https://github.com")
    repo = env.get("GITHUB_REPOSITORY", "")
    run = env.get("GITHUB_RUN_ID", "")
    return CiContext(
        system="github",
        repo=repo,
        branch=env.get("GITHUB_HEAD_REF") or env.get("GITHUB_REF_NAME", ""),
        sha=env.get("GITHUB_SHA", ""),
        pr=pull_request_number(event, env.get("GITHUB_REF", "")) or env.get("ENVCI_PR", ""),
        build=f"{run}-{env.get('GITHUB_RUN_ATTEMPT', '1')}" if run else "",
        build_url=f"{server}/{repo}/actions/runs/{run}" if run and repo else "",
        actor=env.get("GITHUB_ACTOR", ""),
    )


def gitlab(env: Mapping[str, str]) -> CiContext:
    return CiContext(
        system="gitlab",
        repo=env.get("CI_PROJECT_PATH", ""),
        branch=env.get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME") or env.get("CI_COMMIT_REF_NAME", ""),
        sha=env.get("CI_COMMIT_SHA", ""),
        pr=env.get("CI_MERGE_REQUEST_IID", ""),
        build=env.get("CI_PIPELINE_ID", ""),
        build_url=env.get("CI_PIPELINE_URL") or env.get("CI_JOB_URL", ""),
        actor=env.get("GITLAB_USER_LOGIN", ""),
    )


def jenkins(env: Mapping[str, str]) -> CiContext:
    branch = env.get("CHANGE_BRANCH") or env.get("BRANCH_NAME") or env.get("GIT_BRANCH", "")
    return CiContext(
        system="jenkins",
        repo=env.get("JOB_NAME", "").split("/")[0],
        branch=re.sub(r"^origin/", "", branch),
        sha=env.get("GIT_COMMIT", ""),
        pr=env.get("CHANGE_ID", ""),
        build=env.get("BUILD_NUMBER", ""),
        build_url=env.get("BUILD_URL", ""),
        actor=env.get("BUILD_USER_ID", ""),
    )


def local(env: Mapping[str, str]) -> CiContext:
    top = _git("rev-parse", "--show-toplevel")
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "someone"
    return CiContext(
        system="local",
        repo=top.rsplit("/", 1)[-1] if top else "",
        branch=env.get("ENVCI_BRANCH") or _git("rev-parse", "--abbrev-ref", "HEAD"),
        sha=env.get("ENVCI_SHA") or _git("rev-parse", "HEAD"),
        pr=env.get("ENVCI_PR", ""),
        build=env.get("ENVCI_BUILD", ""),
        actor=user,
    )


def ci_system(env: Mapping[str, str]) -> str:
    """github | gitlab | jenkins | local, from the variable each system sets in every job."""
    if env.get("GITHUB_ACTIONS") == "true":
        return "github"
    if env.get("GITLAB_CI"):
        return "gitlab"
    if env.get("JENKINS_URL") or env.get("JENKINS_HOME"):
        return "jenkins"
    return "local"


WORKSPACE_VARIABLE = {"github": "GITHUB_WORKSPACE", "gitlab": "CI_PROJECT_DIR", "jenkins": "WORKSPACE"}
"""Where each system checks the repository out: envci's output and report folders live there."""


def workspace(env: Mapping[str, str]) -> str:
    """The root of the build's checkout; empty outside CI (then folders are relative to the current one)."""
    var = WORKSPACE_VARIABLE.get(ci_system(env))
    return env.get(var, "") if var else ""


def detect_context(env: Mapping[str, str]) -> CiContext:
    return {"github": github, "gitlab": gitlab, "jenkins": jenkins}.get(ci_system(env), local)(env)
