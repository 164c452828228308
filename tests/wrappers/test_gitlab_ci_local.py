"""GitLab pipelines run by gitlab-ci-local against the local cluster: the example
(examples/gitlab/.gitlab-ci.yml), and one whose provision fails.

The example includes the pipeline component; here it is included from the checkout
(`include: local: gitlab/templates/pipeline.yml`), the one change made to it. Jobs run in the host
shell (--force-shell-executor: no images here). The demo's tests fail on purpose (its API deployed with a defect, ENVCI_SET=demo_fail=1):
dotenv outputs must reach later jobs, the JUnit report must exist, and teardown must still run.
"""

from __future__ import annotations

import random
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from wrapper_support import (
    GITLAB_CI_LOCAL,
    Project,
    git_repo,
    require,
    runner_env,
    timed,
)

pytestmark = pytest.mark.cluster

COMPONENT = "component: $CI_SERVER_FQDN/envci/envci/pipeline@0.1.0"
LOCAL = "local: gitlab/templates/pipeline.yml"


def job_result(log: str, job: str) -> str | None:
    """PASS or FAIL from gitlab-ci-local's closing table."""
    m = re.search(rf"^\s*(PASS|FAIL)\s+{re.escape(job)}\s*$", log, re.MULTILINE)
    return m.group(1) if m else None


def run_pipeline(
    gcl: str, project: Project, kubeconfig: str, repo_copy: Path, envci_venv: Path, tmp_path: Path, *variables: str, job: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The whole pipeline, or one job of it (as GitLab runs an environment's stop job on its own)."""
    home = tmp_path / "gcl-home"
    home.mkdir(exist_ok=True)
    extra = [arg for v in variables for arg in ("--variable", v)]
    t0 = time.monotonic()
    done = subprocess.run(
        [
            gcl, *([job] if job else []), "--force-shell-executor", "--home", str(home),
            "--variable", f"ENVCI_INSTALL={repo_copy}", "--variable", f"ENVCI_VENV={envci_venv}",
            "--variable", f"KUBECONFIG={kubeconfig}", *extra,
        ],
        cwd=project.path, env=runner_env(kubeconfig), stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, timeout=420,
    )
    timed(f"gitlab-ci-local {job or 'pipeline'}", t0)
    with open(tmp_path / "gitlab-ci-local.log", "a") as f:
        f.write(done.stdout + done.stderr)
    return done


def test_pipeline_passes_outputs_on_reports_junit_and_tears_down_after_a_failing_job(
    kubeconfig: str, project: Project, envci_venv: Path, repo_copy: Path, tmp_path: Path, gone: list[str]
) -> None:
    gcl = require(GITLAB_CI_LOCAL, "gitlab-ci-local 4.65.0 (npm)")
    example = (project.path / "examples" / "gitlab" / ".gitlab-ci.yml").read_text()
    assert COMPONENT in example
    (project.path / ".gitlab-ci.yml").write_text(example.replace(COMPONENT, LOCAL))
    branch = f"wrappers-{project.suffix}"
    git_repo(project.path, branch)
    name = f"demo-{branch}"
    gone.append(f"envci-{name}")
    done = run_pipeline(gcl, project, kubeconfig, repo_copy, envci_venv, tmp_path, "ENVCI_SET=demo_fail=1", f"DEMO_DB_PASSWORD={secrets.token_hex(12)}")
    log = done.stdout + done.stderr

    assert done.returncode != 0, "a failing test job must fail the pipeline"
    results = {job: job_result(log, job) for job in ("envci-provision", "envci-wait-ready", "envci-seed", "show-environment", "envci-test", "envci-teardown")}
    assert results == {
        "envci-provision": "PASS", "envci-wait-ready": "PASS", "envci-seed": "PASS",
        "show-environment": "PASS", "envci-test": "FAIL", "envci-teardown": "PASS",
    }, log[-4000:]
    # The dotenv report of provision reached a later job.
    assert f"environment {name} in namespace envci-{name} at http://web.envci-{name}.svc.cluster.local:8080/" in log
    junit = project.path / "envci-report" / "junit.xml"
    assert junit.is_file() and "GET /items returned" in junit.read_text()  # the defect, caught by the API tests
    # Teardown ran after the failing test job, and removed the environment by its name.
    out = done.stdout  # job lines in order (a failed job's closing lines also go to stderr)
    assert out.index("envci-test       starting") < out.index("FAILED smoke") < out.index("envci-teardown   starting")
    assert f"environment {name} removed" in log


BROKEN_PIPELINE = """stages: [deploy, test]
include:
  - local: gitlab/templates/pipeline.yml
    inputs: {working_directory: apps/cfg, auto_stop_in: 1 hour}
"""


def test_stop_job_removes_the_environment_of_a_failed_provision(
    kubeconfig: str, project: Project, envci_venv: Path, repo_copy: Path, tmp_path: Path, gone: list[str], api_client: Any
) -> None:
    """Provision creates the namespace, then the API server refuses a ConfigMap: the job fails and
    later stages never start. The environment's stop job, run on its own as GitLab runs it (when the
    MR is merged, the branch deleted or auto_stop_in passes), with no envci.yaml to read, removes it.

    (gitlab-ci-local waits for the jobs that never started before it runs `.post`, where GitLab would
    run the stop job at once; running it on its own covers both.)"""
    gcl = require(GITLAB_CI_LOCAL, "gitlab-ci-local 4.65.0 (npm)")
    app = project.path / "apps" / "cfg"
    app.mkdir(parents=True)
    (app / "envci.yaml").write_text("name: cfg\nttl: 1h\nnamespace: {quota: null, limits: null}\ncomponents:\n  - {name: settings, manifests: [settings.yaml]}\n")
    (app / "settings.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: test}\n---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: broken}\ndata: {'not a valid key!': x}\n"
    )
    (project.path / ".gitlab-ci.yml").write_text(BROKEN_PIPELINE)
    branch = f"broken-{project.suffix}"
    git_repo(project.path, branch)
    name = f"cfg-{branch}"
    gone.append(f"envci-{name}")
    core = client.CoreV1Api(api_client)

    done = run_pipeline(gcl, project, kubeconfig, repo_copy, envci_venv, tmp_path)
    log = done.stdout + done.stderr
    assert done.returncode != 0, log[-4000:]
    assert job_result(log, "envci-provision") == "FAIL", log[-4000:]
    assert job_result(log, "envci-wait-ready") is None and job_result(log, "envci-test") is None  # never started
    assert f"provisioning environment {name} in namespace envci-{name}" in log and "is invalid" in log
    assert core.read_namespace(f"envci-{name}").metadata.labels["envci.io/env"] == name  # made before the failure

    shutil.rmtree(app)  # the stop job has no checkout: nothing of the app is left to read
    stop = run_pipeline(gcl, project, kubeconfig, repo_copy, envci_venv, tmp_path, job="envci-teardown")
    log = stop.stdout + stop.stderr
    assert stop.returncode == 0, log[-4000:]
    assert f"no envci.yaml here: looking for the environment of this build's repository acme/demo, {branch}" in log, log[-4000:]
    assert f"environment {name} removed" in log, log[-4000:]


CANCEL_PIPELINE = """stages: [deploy, test]
include:
  - local: gitlab/templates/pipeline.yml
    inputs: {working_directory: apps/cfg, auto_stop_in: 1 hour}
"""


def job_script(job: dict[str, Any], *parts: str) -> str:
    """The lines of a job's script parts as the runner runs them: one shell, nested lists flattened."""
    def flat(items: Any) -> list[str]:
        return [x for item in items for x in (flat(item) if isinstance(item, list) else [str(item)])]

    return "\n".join(line for part in parts for line in flat(job.get(part) or []))


def test_the_after_script_of_a_cancelled_job_removes_the_environment(
    kubeconfig: str, project: Project, envci_venv: Path, repo_copy: Path, tmp_path: Path, gone: list[str], api_client: Any
) -> None:
    """GitLab (17.0 and later) runs after_script when it cancels a running job, with CI_JOB_STATUS=canceled,
    and skips the pipeline's stop job. gitlab-ci-local cannot cancel a job, so the jobs' own scripts, as
    the pipeline component expands them (`--preview`), run here in one bash each as a runner's shell
    runs them, with a merge request's CI variables: provision's script, then wait-ready's after_script
    once as after a failure (the environment stays for the stop job) and once as after a cancellation."""
    gcl = require(GITLAB_CI_LOCAL, "gitlab-ci-local 4.65.0 (npm)")
    app = project.path / "apps" / "cfg"
    app.mkdir(parents=True)
    (app / "envci.yaml").write_text("name: cfg\nttl: 1h\nnamespace: {quota: null, limits: null}\ncomponents:\n  - {name: settings, manifests: [settings.yaml]}\n")
    (app / "settings.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {mode: test}\n")
    (project.path / ".gitlab-ci.yml").write_text(CANCEL_PIPELINE)
    git_repo(project.path, "main")
    preview = subprocess.run([gcl, "--preview", "--home", str(tmp_path / "gcl-home")], cwd=project.path, capture_output=True, text=True,
                             check=False, timeout=120)
    assert preview.returncode == 0, preview.stdout + preview.stderr
    jobs = yaml.safe_load(preview.stdout[preview.stdout.index("---") + 3:] if preview.stdout.lstrip().startswith("---") else preview.stdout)
    mr = random.randint(10_000, 99_999)
    namespace = f"envci-cfg-pr-{mr}"
    gone.append(namespace)
    gitlab = {
        "GITLAB_CI": "true", "CI": "true", "CI_PROJECT_DIR": str(project.path), "CI_PROJECT_PATH": "acme/demo", "CI_PROJECT_ID": "7",
        "CI_MERGE_REQUEST_IID": str(mr), "CI_COMMIT_REF_NAME": f"feature-{project.suffix}", "CI_COMMIT_REF_SLUG": f"feature-{project.suffix}",
        "CI_PIPELINE_ID": "100", "CI_COMMIT_SHA": "0" * 40, "KUBECONFIG": kubeconfig,
        "ENVCI_INSTALL": str(repo_copy), "ENVCI_VENV": str(envci_venv),
    }

    def run(job: str, status: str, *parts: str) -> subprocess.CompletedProcess[str]:
        variables = {k: str(v) for k, v in (jobs[job].get("variables") or {}).items() if k not in gitlab}
        return subprocess.run(["bash", "-eo", "pipefail", "-c", job_script(jobs[job], *parts)], cwd=project.path,
                              env=runner_env(kubeconfig, **variables, **gitlab, CI_JOB_STATUS=status), capture_output=True, text=True,
                              check=False, timeout=300)

    core = client.CoreV1Api(api_client)
    made = run("envci-provision", "running", "script")
    assert made.returncode == 0, made.stdout + made.stderr
    assert core.read_namespace(namespace).metadata.labels["envci.io/pr"] == str(mr)

    failed = run("envci-wait-ready", "failed", "after_script")
    assert failed.returncode == 0, failed.stdout + failed.stderr
    assert core.read_namespace(namespace).metadata.deletion_timestamp is None, "a failed job leaves the environment to the stop job"

    cancelled = run("envci-wait-ready", "canceled", "after_script")
    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
    assert f"tearing down environment cfg-pr-{mr}" in cancelled.stderr, cancelled.stderr
    assert "environment cfg-pr-" in cancelled.stdout and "removed" in cancelled.stdout, cancelled.stdout
