"""Every GitLab template as gitlab-ci-local (4.65.0) reads it: the per-stage components with their
inputs, the pipeline component, and the classic include extended by hidden jobs. gitlab-ci-local
validates the result against GitLab's CI schema; `--preview` shows the jobs after inputs,
includes and `extends:` are expanded. No job runs here (test_gitlab_ci_local.py runs the pipeline).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from wrapper_support import GITLAB_CI_LOCAL, REPO, git_repo, require

from envci import __version__

IMAGE = f"ghcr.io/envci/envci:{__version__}"

STAGE_COMPONENTS = """stages: [deploy, test]
include:
  - local: gitlab/templates/provision.yml
    inputs: {auto_stop_in: 2 hours, args: --no-wait-dependencies, envci: envci==0.1.0}
  - local: gitlab/templates/wait-ready.yml
    inputs: {args: --timeout 5m}
  - local: gitlab/templates/seed.yml
    inputs: {needs: [envci-provision, envci-wait-ready]}
  - local: gitlab/templates/test.yml
    inputs: {needs: [envci-provision, envci-seed]}
  - local: gitlab/templates/teardown.yml
"""
COMPONENT_DEFAULTS = """stages: [deploy, test]
include:
  - local: gitlab/templates/provision.yml
  - local: gitlab/templates/wait-ready.yml
  - local: gitlab/templates/seed.yml
  - local: gitlab/templates/test.yml
  - local: gitlab/templates/teardown.yml
"""
PIPELINE = """stages: [deploy, test]
include:
  - local: gitlab/templates/pipeline.yml
    inputs: {working_directory: examples/demo, auto_stop_in: 2 hours}
"""
CLASSIC = """stages: [deploy, test]
include:
  - local: gitlab/envci.gitlab-ci.yml
variables:
  ENVCI_INSTALL: envci==0.1.0
provision: {extends: .envci-provision, stage: deploy}
wait-ready: {extends: .envci-wait-ready, stage: deploy, needs: [provision]}
seed: {extends: .envci-seed, stage: deploy, needs: [provision, wait-ready]}
test: {extends: .envci-test, stage: test, needs: [provision, seed]}
envci-teardown: {extends: .envci-teardown, stage: .post}
"""
NAMES = {
    "components": ("envci-provision", "envci-wait-ready", "envci-seed", "envci-test", "envci-teardown"),
    "component-defaults": ("envci-provision", "envci-wait-ready", "envci-seed", "envci-test", "envci-teardown"),
    "pipeline": ("envci-provision", "envci-wait-ready", "envci-seed", "envci-test", "envci-teardown"),
    "classic": ("provision", "wait-ready", "seed", "test", "envci-teardown"),
}


@pytest.mark.parametrize("kind", ["components", "component-defaults", "pipeline", "classic"])
def test_templates_expand_to_valid_jobs(kind: str, tmp_path: Path) -> None:
    gcl = require(GITLAB_CI_LOCAL, "gitlab-ci-local 4.65.0 (npm)")
    shutil.copytree(REPO / "gitlab", tmp_path / "gitlab")
    (tmp_path / ".gitlab-ci.yml").write_text({"components": STAGE_COMPONENTS, "component-defaults": COMPONENT_DEFAULTS, "pipeline": PIPELINE, "classic": CLASSIC}[kind])
    git_repo(tmp_path, "main")
    done = subprocess.run([gcl, "--preview", "--home", str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    jobs = yaml.safe_load(done.stdout[done.stdout.index("---") + 3:] if done.stdout.lstrip().startswith("---") else done.stdout)
    provision, wait, seed, test, teardown = (jobs[n] for n in NAMES[kind])

    assert provision["environment"]["on_stop"] == "envci-teardown"
    assert provision["environment"]["url"] == "$ENVCI_URL"
    assert provision["artifacts"]["reports"]["dotenv"] == ".envci/outputs.env"
    assert provision["artifacts"]["when"] == "always"  # a failed provision still names its environment
    # The stages run one after another, each with the provision job's outputs.
    names = NAMES[kind]
    assert [n["job"] if isinstance(n, dict) else n for n in wait["needs"]] == [names[0]]
    assert {n["job"] if isinstance(n, dict) else n for n in seed["needs"]} == {names[0], names[1]}
    assert {n["job"] if isinstance(n, dict) else n for n in test["needs"]} == {names[0], names[2]}
    assert "needs" not in teardown  # after every other job, whatever they did
    assert provision["resource_group"] == teardown["resource_group"] == "envci-$CI_COMMIT_REF_SLUG"
    assert all(j["interruptible"] for j in (provision, wait, seed, test))
    assert test["artifacts"]["reports"]["junit"] == "envci-report/junit.xml" and test["artifacts"]["when"] == "always"
    assert teardown["when"] == "always" and teardown["environment"]["action"] == "stop"
    assert teardown["variables"]["GIT_STRATEGY"] == "none" and not teardown.get("interruptible")
    if kind in ("components", "pipeline"):
        assert provision["environment"]["auto_stop_in"] == "2 hours"
    # One envci command per job, inputs passed as variables, never spliced into the script.
    for stage, job in zip(("provision", "wait-ready", "seed", "test", "teardown"), (provision, wait, seed, test, teardown)):
        script = "\n".join(str(line) for line in job.get("before_script", []) + job["script"])
        assert f'"$ENVCI_BIN" {stage}' in script
        assert "$[[" not in script
    # A cancelled job (GitLab runs after_script then, not the stop job) tears the environment down.
    for job in (provision, wait, seed, test):
        after = str(job.get("after_script"))
        assert '[ "$CI_JOB_STATUS" = canceled ] || exit 0' in after and '"$ENVCI_BIN" teardown --deadline' in after, job
    # Teardown finds the environment from the CI variables: an explicit --env would skip the check
    # that a newer pipeline owns it now.
    assert "--env" not in "\n".join(teardown["script"])
    # Every job runs in envci's image of this release, with a shell (its entrypoint is envci), and
    # asks for the envci it holds unless told otherwise.
    for job in (provision, wait, seed, test, teardown):
        assert job["image"] == {"name": IMAGE, "entrypoint": [""]}
        if kind in ("component-defaults", "pipeline"):
            assert job["variables"]["ENVCI_INSTALL"] == f"envci=={__version__}"
