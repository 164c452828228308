"""The example GitLab pipeline (examples/gitlab/.gitlab-ci.yml) run by gitlab-ci-local against the local cluster.

The example includes the pipeline component; here it is included from the checkout
(`include: local: gitlab/templates/pipeline.yml`), the one change made to it. Jobs run in the host
shell (--force-shell-executor: no images here). The demo's tests fail on purpose (its API deployed with a defect, ENVCI_SET=demo_fail=1):
dotenv outputs must reach later jobs, the JUnit report must exist, and teardown must still run.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import time
from pathlib import Path

import pytest
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
    home = tmp_path / "gcl-home"
    home.mkdir()
    t0 = time.monotonic()
    done = subprocess.run(
        [
            gcl, "--force-shell-executor", "--home", str(home),
            "--variable", f"ENVCI_INSTALL={repo_copy}", "--variable", f"ENVCI_VENV={envci_venv}",
            "--variable", f"KUBECONFIG={kubeconfig}", "--variable", "ENVCI_SET=demo_fail=1",
            "--variable", f"DEMO_DB_PASSWORD={secrets.token_hex(12)}",
        ],
        cwd=project.path, env=runner_env(kubeconfig), stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, timeout=420,
    )
    timed("gitlab-ci-local", t0)
    log = done.stdout + done.stderr
    (tmp_path / "gitlab-ci-local.log").write_text(log)

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
