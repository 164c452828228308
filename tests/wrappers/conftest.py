"""Fixtures for the CI wrapper tests: the runners (cached by scripts/ci-deps/wrappers.sh), a copy
of the repository to install envci from, and a check that every environment a pipeline made is gone.

Each runner test is one real pipeline run of the demo against the local cluster's real node; they share one virtualenv of
envci built from the repository copy, so envci is installed once per test session.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from wrapper_support import REPO, Project, install_tools, java_home


@pytest.fixture(scope="session")
def kubeconfig(real_kubeconfig: str) -> str:
    """The pipelines run the demo, whose containers really run: the cluster with the real node (which
    `real_kubeconfig` gives with the project's images loaded)."""
    return real_kubeconfig


@pytest.fixture(scope="session")
def api_client(real_api_client: client.ApiClient) -> client.ApiClient:
    """The same cluster as `kubeconfig` here. Overridden by name, not derived from the override above:
    a session fixture is made once, and the first test to ask (elsewhere) would fix the cluster."""
    return real_api_client


@pytest.fixture(scope="session")
def groovy() -> str:
    found = shutil.which("groovy")
    if not found:
        install_tools()
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


@pytest.fixture
def project(repo_copy: Path, tmp_path: Path) -> Project:
    dest = tmp_path / "project"
    shutil.copytree(repo_copy, dest)
    return Project(dest, "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(5)))


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
