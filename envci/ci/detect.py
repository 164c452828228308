"""Detect the CI context from the standard environment variables each CI system sets."""

from __future__ import annotations

import getpass
import re
import subprocess
from collections.abc import Mapping

from envci.identity import CiContext


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def github(env: Mapping[str, str]) -> CiContext:
    m = re.match(r"refs/pull/(\d+)/", env.get("GITHUB_REF", ""))
    server = env.get("GITHUB_SERVER_URL", "https://github.com")
    repo = env.get("GITHUB_REPOSITORY", "")
    run = env.get("GITHUB_RUN_ID", "")
    return CiContext(
        system="github",
        repo=repo,
        branch=env.get("GITHUB_HEAD_REF") or env.get("GITHUB_REF_NAME", ""),
        sha=env.get("GITHUB_SHA", ""),
        pr=m.group(1) if m else env.get("ENVCI_PR", ""),
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


def detect_context(env: Mapping[str, str]) -> CiContext:
    if env.get("GITHUB_ACTIONS") == "true":
        return github(env)
    if env.get("GITLAB_CI"):
        return gitlab(env)
    if env.get("JENKINS_URL") or env.get("JENKINS_HOME"):
        return jenkins(env)
    return local(env)
