"""One envci.yaml, the same behaviour on GitHub Actions, GitLab CI and Jenkins: for the same pull
request (merge request, change request) or branch, each system's own variables give the same
environment name, the same labels teardown finds it by, the same output and report folders (at the
root of the checkout), and the same outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envci.ci.detect import detect_context
from envci.ci.outputs import output_dir, publish, report_dir
from envci.config.loader import load_config
from envci.identity import context_selector

PR, SOURCE = "42", "feature/Login-Page"


def github(ws: Path, *, pr: str = "", branch: str = "", target: bool = False) -> dict[str, str]:
    """A pull_request run (GITHUB_REF refs/pull/N/merge), a pull_request_target run (GITHUB_REF the
    base branch; the number only in the event payload), or a push run of `branch`."""
    event = ws.parent / f"github-event-{pr or 'push'}.json"
    event.write_text(json.dumps({"number": int(pr), "pull_request": {"number": int(pr), "head": {"ref": SOURCE}}} if pr else {"ref": f"refs/heads/{branch}"}))
    env = {
        "GITHUB_ACTIONS": "true", "CI": "true", "GITHUB_REPOSITORY": "acme/shop", "GITHUB_WORKSPACE": str(ws), "GITHUB_EVENT_PATH": str(event),
        "GITHUB_RUN_ID": "9001", "GITHUB_RUN_ATTEMPT": "1", "GITHUB_SHA": "a" * 40,
    }
    if pr:
        env.update(GITHUB_EVENT_NAME="pull_request_target" if target else "pull_request", GITHUB_HEAD_REF=SOURCE, GITHUB_BASE_REF="main",
                   GITHUB_REF="refs/heads/main" if target else f"refs/pull/{pr}/merge", GITHUB_REF_NAME="main" if target else f"{pr}/merge")
    else:
        env.update(GITHUB_EVENT_NAME="push", GITHUB_REF=f"refs/heads/{branch}", GITHUB_REF_NAME=branch, GITHUB_HEAD_REF="")
    return env


def gitlab(ws: Path, *, pr: str = "", branch: str = "") -> dict[str, str]:
    env = {
        "GITLAB_CI": "true", "CI": "true", "CI_PROJECT_PATH": "acme/shop", "CI_PROJECT_DIR": str(ws), "CI_PIPELINE_ID": "5150",
        "CI_COMMIT_SHA": "a" * 40,
    }
    if pr:
        env.update(CI_PIPELINE_SOURCE="merge_request_event", CI_MERGE_REQUEST_IID=pr, CI_MERGE_REQUEST_SOURCE_BRANCH_NAME=SOURCE,
                   CI_COMMIT_REF_NAME=SOURCE)
    else:
        env.update(CI_PIPELINE_SOURCE="push", CI_COMMIT_REF_NAME=branch, CI_COMMIT_BRANCH=branch)
    return env


def jenkins(ws: Path, *, pr: str = "", branch: str = "", multibranch: bool = True) -> dict[str, str]:
    env = {"JENKINS_URL": "https://jenkins.example.com/", "WORKSPACE": str(ws), "BUILD_NUMBER": "77", "GIT_COMMIT": "a" * 40}
    if pr:
        env.update(JOB_NAME=f"shop/PR-{pr}", BRANCH_NAME=f"PR-{pr}", CHANGE_ID=pr, CHANGE_BRANCH=SOURCE, CHANGE_TARGET="main")
    elif multibranch:
        env.update(JOB_NAME=f"shop/{branch}", BRANCH_NAME=branch)
    else:  # a plain Pipeline job: only the Git plugin's remote branch
        env.update(JOB_NAME="shop", GIT_BRANCH=f"origin/{branch}")
    return env


SYSTEMS = {
    "github": github,
    "github-pull_request_target": lambda ws, **kw: github(ws, target=True, **kw),
    "gitlab": gitlab,
    "jenkins": jenkins,
    "jenkins-plain-pipeline": lambda ws, **kw: jenkins(ws, multibranch=False, **kw),
}
CASES = [  # what the build is for -> the environment every system must give it
    ({"pr": PR}, "shop-pr-42"),
    ({"branch": "main"}, "shop-main"),
    ({"branch": SOURCE}, None),  # a name that needs a hash: whatever it is, the same everywhere
]


@pytest.fixture
def app(tmp_path: Path) -> Path:
    d = tmp_path / "repo" / "apps" / "shop"
    d.mkdir(parents=True)
    (d / "envci.yaml").write_text("name: shop\ncomponents:\n  - name: web\n    manifests: [web.yaml]\n    expose: {port: 8080}\n  - name: api\n    manifests: [api.yaml]\n    expose: {port: 80}\n")
    return d


@pytest.mark.parametrize(("build", "expected"), CASES, ids=["pr", "branch", "branch-with-slash"])
def test_one_envci_yaml_gives_the_same_environment_on_every_ci_system(app: Path, tmp_path: Path, build: dict[str, str], expected: str | None) -> None:
    # pull_request_target runs only for PRs; a plain Pipeline job (not multibranch) has no change requests
    skip = "jenkins-plain-pipeline" if "pr" in build else "github-pull_request_target"
    systems = {k: v for k, v in SYSTEMS.items() if k != skip}
    seen: dict[str, tuple[str, ...]] = {}
    for system, make in systems.items():
        ws = tmp_path / system / "checkout"
        ws.mkdir(parents=True)
        env = make(ws, **build)
        ctx = detect_context(env)
        assert ctx.system == system.split("-")[0]
        ident = load_config(app / "envci.yaml", ctx, check_files=False).identity
        labels = ident.labels()
        assert f"envci.io/key={labels['envci.io/key']}" in context_selector(ctx)  # teardown without envci.yaml finds it
        assert output_dir(env) == ws / ".envci" and report_dir(env) == ws / "envci-report"
        seen[system] = (ident.name, ident.namespace, labels["envci.io/key"], labels.get("envci.io/pr", ""))
    assert len(set(seen.values())) == 1, seen
    name = next(iter(seen.values()))[0]
    if expected:
        assert name == expected


def test_every_system_gets_the_same_outputs(tmp_path: Path) -> None:
    urls = {"web": "http://web.envci-shop-pr-42.svc.cluster.local:8080/", "api": "http://api.envci-shop-pr-42.svc.cluster.local/"}
    files: dict[str, tuple[str, str]] = {}
    for system, make in (("github", github), ("gitlab", gitlab), ("jenkins", jenkins)):
        ws = tmp_path / system
        ws.mkdir()
        env = make(ws, pr=PR)
        if system == "github":
            env.update(GITHUB_OUTPUT=str(tmp_path / "github-output"), GITHUB_ENV=str(tmp_path / "github-env"))
        d = publish("shop-pr-42", "envci-shop-pr-42", urls, env)
        assert d == ws / ".envci"
        files[system] = ((d / "outputs.env").read_text(), (d / "outputs.json").read_text())
    assert files["github"] == files["gitlab"] == files["jenkins"]
    dotenv = files["gitlab"][0]
    assert dotenv.splitlines() == [
        "ENVCI_NAME=shop-pr-42", "ENVCI_NAMESPACE=envci-shop-pr-42", 'ENVCI_URLS={"api": "http://api.envci-shop-pr-42.svc.cluster.local/", '
        '"web": "http://web.envci-shop-pr-42.svc.cluster.local:8080/"}',
        f"ENVCI_URL_WEB={urls['web']}", f"ENVCI_URL_API={urls['api']}", f"ENVCI_URL={urls['web']}",
    ]
    # GitHub: the same variables for later steps, and the actions' step outputs
    assert (tmp_path / "github-env").read_text() == dotenv
    outputs = dict(line.split("=", 1) for line in (tmp_path / "github-output").read_text().splitlines())
    assert outputs == {"name": "shop-pr-42", "namespace": "envci-shop-pr-42", "url": urls["web"], "urls": json.dumps(urls, sort_keys=True)}


def test_teardown_without_envci_yaml_takes_one_environment_or_refuses_to_guess() -> None:
    from envci.errors import ConfigError, ExitCode
    from envci.stages.teardown import pick_environment

    def ns(env: str) -> dict:
        return {"metadata": {"name": f"envci-{env}", "labels": {"envci.io/env": env}}}

    assert pick_environment([], context="repository acme/shop, pr-42") is None
    assert pick_environment([ns("shop-pr-42")], context="c", prefer="other")["metadata"]["name"] == "envci-shop-pr-42"
    two = [ns("web-pr-42"), ns("api-pr-42")]
    assert pick_environment(two, context="c", prefer="web-pr-42")["metadata"]["name"] == "envci-web-pr-42"
    for prefer in ("", "docs-pr-42"):
        with pytest.raises(ConfigError) as e:
            pick_environment(two, context="repository acme/shop, pr-42", prefer=prefer)
        assert e.value.exit_code == ExitCode.BAD_INPUT
        assert "2 environments belong to this build's repository acme/shop, pr-42: api-pr-42, web-pr-42" in e.value.message
        assert "--env" in (e.value.hint or "")
