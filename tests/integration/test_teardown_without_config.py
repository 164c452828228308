"""Teardown with no envci.yaml (GitLab's stop job runs with GIT_STRATEGY none): the environment is
found from the CI variables alone, by the labels provision wrote, on the simulated local cluster."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from envci.errors import ExitCode
from envci.kube.client import connect

pytestmark = pytest.mark.cluster

CI_PREFIXES = ("GITHUB_", "GITLAB_", "CI_", "JENKINS_", "ENVCI_", "BUILD_", "CHANGE_", "RUNNER_")


def write_app(dest: Path, name: str) -> Path:
    """A tiny app: one component of two ConfigMaps."""
    dest.mkdir(parents=True)
    (dest / "envci.yaml").write_text(yaml.safe_dump({
        "name": name,
        "ttl": "1h",
        "namespace": {"quota": None, "limits": None},
        "components": [{"name": "settings", "manifests": ["settings.yaml"]}],
    }))
    (dest / "settings.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: test}\n---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: flags}\ndata: {beta: 'true'}\n"
    )
    return dest


def gitlab_vars(project_dir: Path, *, repo: str, mr: str, pipeline: str = "100") -> dict[str, str]:
    """What a GitLab runner sets in a merge-request pipeline's job."""
    return {
        "GITLAB_CI": "true", "CI": "true", "CI_PROJECT_PATH": repo, "CI_PROJECT_DIR": str(project_dir),
        "CI_MERGE_REQUEST_IID": mr, "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": f"feature/{mr}",
        "CI_COMMIT_REF_NAME": f"feature/{mr}", "CI_PIPELINE_ID": pipeline, "CI_COMMIT_SHA": "0" * 40,
    }


def envci(*args: str, cwd: Path, ci: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(CI_PREFIXES)}
    env.pop("CI", None)
    env.update(ci)
    return subprocess.run([sys.executable, "-m", "envci.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180)


@pytest.fixture
def made(kubeconfig: str) -> Iterator[list[str]]:
    """Namespaces a test provisions; whatever is left at the end is deleted."""
    namespaces: list[str] = []
    yield namespaces
    kube = connect(kubeconfig)
    for ns in namespaces:
        if kube.namespace(ns) is not None:
            kube.delete("v1", "Namespace", ns)


def test_teardown_without_envci_yaml_removes_what_provision_made_for_the_same_gitlab_variables(
    kubeconfig: str, tmp_path: Path, made: list[str]
) -> None:
    kube = connect(kubeconfig)
    tag = secrets.token_hex(3)
    mr = str(secrets.randbelow(90_000) + 10_000)
    project = tmp_path / "project"
    app = write_app(project / "apps" / "cfg", f"cfg{tag}")
    ci = gitlab_vars(project, repo=f"acme/shop-{tag}", mr=mr)
    name = f"cfg{tag}-pr-{mr}"
    made.append(f"envci-{name}")
    # An environment of another repository with the same MR number: it must not be touched.
    other = write_app(tmp_path / "other" / "cfg", f"cfg{tag}")
    other_ci = gitlab_vars(tmp_path / "other", repo=f"acme/other-{tag}", mr=mr)

    p = envci("provision", "-o", "json", cwd=app, ci=ci)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["namespace"] == f"envci-{name}"
    assert f"ENVCI_NAME={name}\n" in (project / ".envci" / "outputs.env").read_text()  # at the checkout's root
    q = envci("provision", "--env", f"other-{tag}", cwd=other, ci=other_ci)
    assert q.returncode == 0, q.stderr
    made.append(f"envci-other-{tag}")
    assert kube.namespace(f"envci-{name}") is not None

    empty = project / "stop-job"  # a stop job's directory: no checkout, no envci.yaml
    empty.mkdir()
    stale = envci("teardown", cwd=empty, ci={**ci, "CI_PIPELINE_ID": "99"})  # an older pipeline's stop job
    assert stale.returncode == 0, stale.stderr
    assert "belongs to newer build 100" in stale.stderr and kube.namespace(f"envci-{name}") is not None

    t = envci("teardown", "-o", "json", cwd=empty, ci=ci)
    assert t.returncode == 0, t.stderr
    res = json.loads(t.stdout)
    assert (res["name"], res["namespace"], res["deleted"]) == (name, f"envci-{name}", True)
    assert f"looking for the environment of this build's repository acme/shop-{tag}, pr-{mr}" in t.stderr
    assert kube.namespace(f"envci-{name}") is None
    assert kube.namespace(f"envci-other-{tag}") is not None

    again = envci("teardown", cwd=empty, ci=ci)
    assert again.returncode == 0 and f"no environment of this build's repository acme/shop-{tag}, pr-{mr} exists" in again.stdout


def test_several_apps_of_one_merge_request_are_refused_unless_envci_name_picks_one(
    kubeconfig: str, tmp_path: Path, made: list[str]
) -> None:
    kube = connect(kubeconfig)
    tag = secrets.token_hex(3)
    mr = str(secrets.randbelow(90_000) + 10_000)
    project = tmp_path / "project"
    ci = gitlab_vars(project, repo=f"acme/mono-{tag}", mr=mr)
    names = [f"{app}{tag}-pr-{mr}" for app in ("api", "web")]
    for app in ("api", "web"):
        made.append(f"envci-{app}{tag}-pr-{mr}")
        p = envci("provision", cwd=write_app(project / app, f"{app}{tag}"), ci=ci)
        assert p.returncode == 0, p.stderr
    empty = project / "stop-job"
    empty.mkdir()

    refused = envci("teardown", cwd=empty, ci=ci)
    assert refused.returncode == ExitCode.BAD_INPUT, refused.stderr
    assert f"2 environments belong to this build's repository acme/mono-{tag}, pr-{mr}: {names[0]}, {names[1]}" in refused.stderr
    assert all(kube.namespace(f"envci-{n}") is not None for n in names)

    picked = envci("teardown", cwd=empty, ci={**ci, "ENVCI_NAME": names[1]})  # the dotenv of web's provision job
    assert picked.returncode == 0, picked.stderr
    assert kube.namespace(f"envci-{names[1]}") is None and kube.namespace(f"envci-{names[0]}") is not None
    last = envci("teardown", cwd=empty, ci=ci)  # one left: no ambiguity
    assert last.returncode == 0, last.stderr
    assert kube.namespace(f"envci-{names[0]}") is None
