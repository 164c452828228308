"""Fixtures for the CI wrapper tests: the runners (cached by scripts/ci-deps/wrappers.sh), a copy
of the repository to install envci from, and a check that every environment a pipeline made is gone.

Each runner test is one real pipeline run against the local cluster; they share one virtualenv of
envci built from the repository copy, so envci is installed once per test session.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

REPO = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("ENVCI_TOOLS_DIR", Path.home() / ".cache" / "envci" / "tools"))
ACTIONLINT = TOOLS / "actionlint-v1.7.12" / "actionlint"
ACT = TOOLS / "act-0.2.89" / "bin" / "act"
GITLAB_CI_LOCAL = TOOLS / "gitlab-ci-local-4.65.0" / "node_modules" / ".bin" / "gitlab-ci-local"
_installed_once: list[bool] = []


def _install_tools() -> None:
    """Run the installer once per session when a runner is missing (CI runs it before the tests)."""
    if not _installed_once:
        _installed_once.append(True)
        subprocess.run(["bash", str(REPO / "scripts" / "ci-deps" / "wrappers.sh")], check=False, timeout=900)


def require(path: Path, what: str) -> str:
    if not path.exists():
        _install_tools()
    if not path.exists():
        pytest.skip(f"{what} could not be installed (scripts/ci-deps/wrappers.sh)")
    return str(path)


def java_home() -> str | None:
    """Debian's groovy script wants JAVA_HOME (or /usr/lib/jvm/default-java); derive it from `java`."""
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    java = shutil.which("java")
    return str(Path(java).resolve().parents[1]) if java else None


@pytest.fixture(scope="session")
def groovy() -> str:
    found = shutil.which("groovy")
    if not found:
        _install_tools()
        found = shutil.which("groovy")
    if not found or not java_home():
        pytest.skip("groovy (Debian package) and a JVM could not be installed (scripts/ci-deps/wrappers.sh)")
    return found


@pytest.fixture(scope="session")
def repo_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's files as they are now (tracked and new, not ignored): what a CI job checks out."""
    dest = tmp_path_factory.mktemp("envci-src") / "envci"
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.fixture(scope="session")
def envci_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the GitLab and Jenkins wrappers install envci: the first job installs, later ones reuse."""
    return tmp_path_factory.mktemp("envci-venv") / "venv"


@dataclass
class Project:
    """A fresh checkout of the repository for one pipeline run."""

    path: Path
    suffix: str


@pytest.fixture
def project(repo_copy: Path, tmp_path: Path) -> Project:
    dest = tmp_path / "project"
    shutil.copytree(repo_copy, dest)
    return Project(dest, "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(5)))


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


@pytest.fixture
def gone(api_client: client.ApiClient) -> Iterator[list[str]]:
    """Append a namespace the pipeline should have removed; the test fails if it is still there
    (and it is removed, so one failure leaves nothing behind)."""
    namespaces: list[str] = []
    yield namespaces
    core = client.CoreV1Api(api_client)
    left = []
    for ns in namespaces:
        try:
            obj = core.read_namespace(ns)
        except ApiException as e:
            if e.status == 404:
                continue
            raise
        if obj.status.phase != "Terminating":
            left.append(ns)
            core.delete_namespace(ns, propagation_policy="Background")
    assert not left, f"the pipeline left namespace(s) {left} behind: teardown did not run"


def timed(what: str, t0: float) -> None:
    print(f"{what}: {time.monotonic() - t0:.1f}s")
