"""Helpers for the CI wrapper tests: where the runners are cached, and how a runner sees a checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("ENVCI_TOOLS_DIR", Path.home() / ".cache" / "envci" / "tools"))
ACTIONLINT = TOOLS / "actionlint-v1.7.12" / "actionlint"
ACT = TOOLS / "act-0.2.89" / "bin" / "act"
GITLAB_CI_LOCAL = TOOLS / "gitlab-ci-local-4.65.0" / "node_modules" / ".bin" / "gitlab-ci-local"
HADOLINT = TOOLS / "hadolint-2.15.1" / "bin" / "hadolint"
_installed_once: list[bool] = []


def install_tools() -> None:
    """Run the installer once per session when a runner is missing (CI runs it before the tests)."""
    if not _installed_once:
        _installed_once.append(True)
        subprocess.run(["bash", str(REPO / "scripts" / "ci-deps" / "wrappers.sh")], check=False, timeout=900)


def require(path: Path, what: str) -> str:
    if not path.exists():
        install_tools()
    if not path.exists():
        pytest.skip(f"{what} could not be installed (scripts/ci-deps/wrappers.sh)")
    return str(path)


def java_home() -> str | None:
    """Debian's groovy script wants JAVA_HOME (or /usr/lib/jvm/default-java); derive it from `java`."""
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    java = shutil.which("java")
    return str(Path(java).resolve().parents[1]) if java else None


@dataclass
class Project:
    """A fresh checkout of the repository for one pipeline run."""

    path: Path
    suffix: str


def git_repo(path: Path, branch: str) -> None:
    """A git repository with an `origin` remote, as runners expect of a checkout."""
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=path, check=True, capture_output=True, timeout=30)

    git("init", "-q", "-b", branch)
    git("remote", "add", "origin", "https://git.example.com/acme/demo.git")
    git("add", "-A")
    git("-c", "user.email=ci@example.com", "-c", "user.name=ci", "commit", "-q", "-m", "checkout")


def runner_env(kubeconfig: str, **extra: str) -> dict[str, str]:
    """The runner's environment: no CI variables of the machine running the tests, the cluster's tools on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "GITLAB_", "CI_", "JENKINS_", "ENVCI_", "BUILD_", "CHANGE_", "RUNNER_"))}
    env.pop("CI", None)
    env.pop("KUBECONFIG", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def timed(what: str, t0: float) -> None:
    print(f"{what}: {time.monotonic() - t0:.1f}s")
