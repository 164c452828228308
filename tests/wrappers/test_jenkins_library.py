"""The example Jenkinsfile and the shared library (jenkins/vars) run by a Groovy harness.

tests/wrappers/jenkins/harness.groovy binds the Jenkins steps: `sh` really runs envci against the
local cluster, the kubeconfig comes only through `withCredentials`, the others record their calls.
"""

from __future__ import annotations

import json
import random
import re
import secrets
import subprocess
import time
from pathlib import Path

import pytest
from wrapper_support import REPO, Project, java_home, runner_env, timed

pytestmark = pytest.mark.cluster

HARNESS = REPO / "tests" / "wrappers" / "jenkins" / "harness.groovy"


def run_jenkinsfile(
    groovy: str, kubeconfig: str, project: Project, repo_copy: Path, venv: Path, tmp_path: Path, jenkinsfile: str = "Jenkinsfile", **env: str
) -> tuple[int, dict]:
    record = tmp_path / "record.json"
    pr = str(random.randint(10_000, 99_999))
    full_env = runner_env(
        kubeconfig,
        JAVA_HOME=java_home() or "",
        ENVCI_HARNESS_CREDENTIALS=json.dumps({"envci-kubeconfig": kubeconfig}),
        ENVCI_INSTALL=str(repo_copy),
        ENVCI_VENV=str(venv),
        JENKINS_URL="https://jenkins.example.com/",
        BUILD_NUMBER="7",
        BUILD_URL="https://jenkins.example.com/job/demo/PR-7/7/",
        JOB_NAME=f"demo/PR-{pr}",
        BRANCH_NAME=f"PR-{pr}",
        CHANGE_ID=pr,
        CHANGE_BRANCH=f"feature/{project.suffix}",
        **env,
    )
    t0 = time.monotonic()
    done = subprocess.run(
        [groovy, str(HARNESS), str(project.path / "jenkins"), str(project.path / "examples" / "jenkins" / jenkinsfile), str(project.path), str(record)],
        cwd=project.path, env=full_env, capture_output=True, text=True, check=False, timeout=300,
    )
    timed("jenkins harness", t0)
    (tmp_path / "jenkins.log").write_text(done.stdout + done.stderr)
    assert record.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads(record.read_text())
    data["pr"] = pr
    data["log"] = done.stdout
    return done.returncode, data


def envci_sequence(calls: list[dict]) -> list[str]:
    return [c["command"] for c in calls if c["step"] == "sh" and c.get("command")]


def check_common(data: dict, kubeconfig: str) -> None:
    calls = data["calls"]
    for c in calls:
        if c["step"] == "sh":
            assert c["kubeconfig"] == kubeconfig, "the kubeconfig must come from withCredentials"
    assert sum(c["step"] == "withCredentials" for c in calls) == len(envci_sequence(calls))
    assert all(kubeconfig not in c.get("message", "") for c in calls if c["step"] == "echo"), "a credential was echoed"
    junit = [c for c in calls if c["step"] == "junit"]
    assert junit and junit[0]["testResults"] == "envci-report/junit.xml" and junit[0]["exists"]


@pytest.mark.parametrize("fail", [False, True], ids=["tests-pass", "tests-fail"])
def test_jenkinsfile_provisions_runs_body_and_always_tears_down(
    fail: bool, groovy: str, kubeconfig: str, project: Project, repo_copy: Path, envci_venv: Path, tmp_path: Path, gone: list[str]
) -> None:
    extra = {"DEMO_DB_PASSWORD": secrets.token_hex(12), **({"ENVCI_SET": "demo_fail=1"} if fail else {})}
    code, data = run_jenkinsfile(groovy, kubeconfig, project, repo_copy, envci_venv, tmp_path, **extra)
    name = f"demo-pr-{data['pr']}"
    gone.append(f"envci-{name}")
    calls = data["calls"]

    assert envci_sequence(calls) == ["provision", "wait-ready", "seed", "test", "teardown"], data["log"][-3000:]
    steps = [c["step"] for c in calls]
    assert steps.index("envciProvision") < steps.index("envciTest") < steps.index("envciTeardown")
    # The body saw provision's outputs.
    assert any(c["step"] == "echo" and c["message"] == f"environment {name} in namespace envci-{name} at http://web.envci-{name}.svc.cluster.local:8080/" for c in calls)
    check_common(data, kubeconfig)
    if fail:  # failing tests: UNSTABLE, as Jenkins' junit step has it; the build goes on to teardown
        assert code == 2 and data["result"] == "UNSTABLE" and data["error"] is None, data["log"][-3000:]
        assert [c["message"] for c in calls if c["step"] == "unstable"] == ["envci test: tests failed (see the test results and envci-report/summary.md)"]
        assert [c["status"] for c in calls if c["step"] == "sh"] == [0, 0, 0, 1, 0]
    else:
        assert code == 0 and data["result"] == "SUCCESS", data["log"][-3000:]
        assert not [c for c in calls if c["step"] == "unstable"]


def test_declarative_stages_with_teardown_in_post_always(
    groovy: str, kubeconfig: str, project: Project, repo_copy: Path, envci_venv: Path, tmp_path: Path, gone: list[str]
) -> None:
    """examples/jenkins/Jenkinsfile.stages: a stage per command, `post { always { envciTeardown } }`;
    the demo's tests fail (its defect), so the build ends UNSTABLE after teardown ran."""
    extra = {"DEMO_DB_PASSWORD": secrets.token_hex(12), "ENVCI_SET": "demo_fail=1"}
    code, data = run_jenkinsfile(groovy, kubeconfig, project, repo_copy, envci_venv, tmp_path, jenkinsfile="Jenkinsfile.stages", **extra)
    gone.append(f"envci-demo-pr-{data['pr']}")
    calls = data["calls"]

    assert envci_sequence(calls) == ["provision", "wait-ready", "seed", "test", "teardown"], data["log"][-3000:]
    stages = [c["name"] for c in calls if c["step"] == "stage"]
    assert stages == ["Provision", "Wait until ready", "Seed", "Test"]
    steps = [c["step"] for c in calls]
    assert steps.index("unstable") < steps.index("post") < steps.index("envciTeardown")
    check_common(data, kubeconfig)
    assert code == 2 and data["result"] == "UNSTABLE" and data["error"] is None, data["log"][-3000:]
    assert f"environment demo-pr-{data['pr']} removed" in data["log"]


def test_every_step_has_help_naming_its_options() -> None:
    """vars/<step>.txt is the step's help in Jenkins (Pipeline Syntax > Global Variables Reference)."""
    vars_dir = REPO / "jenkins" / "vars"
    common = set(re.findall(r"opts\.(\w+)", (vars_dir / "envciCommand.groovy").read_text()))
    steps = sorted(p.stem for p in vars_dir.glob("*.groovy"))
    assert steps == sorted(p.stem for p in vars_dir.glob("*.txt"))
    for step in steps:
        code = (vars_dir / f"{step}.groovy").read_text()
        text = (vars_dir / f"{step}.txt").read_text()
        assert text.startswith(f"{step}("), step
        options = set(re.findall(r"opts\.(\w+)", code)) | common  # every step passes its options on to envciCommand
        if step != "envciCommand":
            options.discard("returnStatus")  # set by the steps themselves
        missing = [o for o in sorted(options) if not re.search(rf"\b{o}\b", text)]
        assert not missing, f"{step}.txt does not mention {missing}"
