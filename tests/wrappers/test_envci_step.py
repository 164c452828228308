"""actions/_lib/envci_step.py: what the GitHub actions print and write, without a cluster.

The pure parts are tested directly; the last tests run the script as the actions do, with the real
envci CLI on a broken envci.yaml (it fails before touching a cluster).
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from wrapper_support import REPO

SCRIPT = REPO / "actions" / "_lib" / "envci_step.py"
_spec = importlib.util.spec_from_file_location("envci_step", SCRIPT)
assert _spec and _spec.loader
step = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(step)


def test_no_annotation_on_success() -> None:
    assert step.annotations("provision", {"name": "x"}, 0) == []


def test_config_errors_point_at_file_and_line_relative_to_the_workspace() -> None:
    payload = {"errors": [
        {"file": "/w/repo/app/envci.yaml", "line": 7, "field": "components.0.helm.chart", "message": "no such chart", "hint": "check the path"},
        {"file": "envci.yaml", "line": None, "field": None, "message": "bad: a,b"},
    ]}
    lines = step.annotations("provision", payload, 2, workspace="/w/repo")
    assert lines[0] == "::error title=envci provision,file=app/envci.yaml,line=7::components.0.helm.chart: no such chart%0Ahint: check the path"
    assert lines[1] == "::error title=envci provision,file=envci.yaml::bad: a,b"


def test_not_ready_names_the_workload_and_its_last_events() -> None:
    payload = {"error": "not ready", "failures": [{"component": "web", "workload": "Deployment/web", "reason": "CrashLoopBackOff", "message": "pod web-1 restarts", "events": ["e1", "e2", "e3", "e4"]}]}
    (line,) = step.annotations("wait-ready", payload, 3)
    assert line.startswith("::error title=envci wait-ready%3A web Deployment/web::web Deployment/web: CrashLoopBackOff: pod web-1 restarts%0Ae2%0Ae3%0Ae4")


def test_test_failures_name_suite_and_case_and_are_capped() -> None:
    failures = [{"suite": "api", "test": f"t{i}", "message": "boom"} for i in range(15)]
    lines = step.annotations("test", {"failures": failures}, 1)
    assert len(lines) == step.MAX_ANNOTATIONS
    assert lines[0] == "::error title=envci test%3A api > t0::api > t0: boom"
    assert "and 6 more" in lines[-1]


def test_an_error_without_details_still_says_what_failed() -> None:
    assert step.annotations("seed", {"error": "s3 down", "hint": "retry"}, 4) == ["::error title=envci seed::s3 down%0Ahint: retry"]
    assert step.annotations("seed", {}, 4) == ["::error title=envci seed::envci seed failed: infrastructure error"]


def test_escaping_keeps_a_message_on_one_command_line() -> None:
    assert step.workflow_command("error", "50% done\r\nnext", file="a:b,c") == "::error file=a%3Ab%2Cc::50%25 done%0D%0Anext"


def test_credentials_of_the_kubeconfig_and_secret_env_vars_are_masked() -> None:
    kubeconfig = "users:\n- name: ci\n  user:\n    token: abcdef123456\n    client-key-data: \"S0VZREFUQQ==\"\n"
    config = "secrets:\n  db:\n    from_env: DB_PASSWORD\n  short:\n    from_env: SHORT\n"
    values = step.secrets_to_mask(kubeconfig, config, {"DB_PASSWORD": "pa55word\nline2", "SHORT": "ab"})
    assert values == ["abcdef123456", "S0VZREFUQQ==", "pa55word", "line2"]


@pytest.mark.parametrize(("version", "spec"), [
    ("", "/src"), ("source", "/src"), ("0.1.0", "envci==0.1.0"), ("v0.2.0rc1", "envci==0.2.0rc1"),
    ("git+https://git.example.com/envci.git@v1", "git+https://git.example.com/envci.git@v1"),
])
def test_install_spec(version: str, spec: str) -> None:
    assert step.install_spec(version, "/src") == spec


def test_envci_arguments_come_from_inputs_without_a_shell() -> None:
    env = {"ENVCI_STEP_CONFIG": "app/envci.yaml", "ENVCI_STEP_ENV": "pr-1", "ENVCI_STEP_ARGS": "--timeout 5m --component 'a b' $(reboot)"}
    assert step.envci_args("wait-ready", env, "/tmp/kc") == [
        "wait-ready", "--output", "json", "--config", "app/envci.yaml", "--env", "pr-1", "--kubeconfig", "/tmp/kc",
        "--timeout", "5m", "--component", "a b", "$(reboot)",
    ]


def test_outputs_and_summary() -> None:
    payload = {"name": "demo-pr-1", "namespace": "envci-demo-pr-1", "url": "http://w/", "urls": {"web": "http://w/"}}
    assert step.step_outputs(payload, 0) == {
        "exit-code": "0", "name": "demo-pr-1", "namespace": "envci-demo-pr-1", "url": "http://w/", "urls": '{"web": "http://w/"}',
    }
    text = step.summary("provision", payload, 0)
    assert "✅ envci provision succeeded" in text and "| web | http://w/ |" in text
    assert "exit 3: the environment did not become ready" in step.summary("wait-ready", {"error": "x"}, 3)


def run_step(tmp_path: Path, stage: str, **env: str) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    envci = shutil.which("envci")
    if not envci:
        pytest.skip("the envci console script is not installed (pip install -e .)")
    files = {"GITHUB_OUTPUT": tmp_path / "output", "GITHUB_STEP_SUMMARY": tmp_path / "summary", "RUNNER_TEMP": tmp_path / "runner-temp"}
    files["RUNNER_TEMP"].mkdir()
    full = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "ENVCI_", "RUNNER_"))}
    full.update({k: str(v) for k, v in files.items()}, GITHUB_WORKSPACE=str(tmp_path), ENVCI_STEP_VERSION="installed",
                PATH=f"{Path(envci).parent}{os.pathsep}{os.environ['PATH']}", **env)
    done = subprocess.run([sys.executable, str(SCRIPT), stage], cwd=tmp_path, env=full, capture_output=True, text=True, check=False, timeout=120)
    out = {}
    for line in files["GITHUB_OUTPUT"].read_text().splitlines() if files["GITHUB_OUTPUT"].exists() else []:
        k, _, v = line.partition("=")
        out[k] = v
    return done, out


def test_a_config_error_fails_the_step_with_envcis_exit_code_and_a_file_annotation(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "envci.yaml").write_text("name: demo\ncomponents:\n  - name: web\n    helmm: {chart: ./c}\n")
    kubeconfig = "apiVersion: v1\nkind: Config\nusers:\n- name: ci\n  user:\n    token: tok-0123456789\n"
    done, out = run_step(tmp_path, "provision", ENVCI_STEP_CONFIG="app/envci.yaml", ENVCI_STEP_KUBECONFIG_CONTENT=kubeconfig)
    assert done.returncode == 2, done.stdout + done.stderr
    assert out["exit-code"] == "2"
    assert "::add-mask::tok-0123456789" in done.stdout
    assert "::error title=envci provision,file=app/envci.yaml,line=4::" in done.stdout, done.stdout
    assert "❌ envci provision failed (exit 2" in (tmp_path / "summary").read_text()
    assert not list((tmp_path / "runner-temp").glob("envci-kubeconfig-*")), "the kubeconfig file must not outlive the step"


def test_an_unknown_stage_is_refused(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "deploy"], capture_output=True, text=True, check=False, timeout=30)
    assert done.returncode == 2 and "usage" in done.stderr


def test_a_python_of_at_least_3_11_is_found_and_older_ones_are_not(tmp_path: Path) -> None:
    assert step.find_python({"PATH": os.environ["PATH"]}) == sys.executable  # the tests run on >= 3.11
    assert step.python_at_least(sys.executable) and not step.python_at_least(sys.executable, (99, 0))
    old = tmp_path / "python3"
    old.write_text("#!/bin/sh\nexit 1\n")  # what a 3.10 answers to the version check
    old.chmod(0o755)
    assert not step.python_at_least(str(old)) and not step.python_at_least(str(tmp_path / "missing"))


def test_prepare_names_the_virtualenv_and_its_cache_key_by_source_and_python(tmp_path: Path) -> None:
    env = {"ENVCI_STEP_ACTION_PATH": str(REPO / "actions" / "provision"), "RUNNER_TOOL_CACHE": str(tmp_path)}
    out = step.prepare(env)
    digest = step.source_digest(REPO)
    python = platform.python_version()
    assert out["python"] == sys.executable
    assert out["cache-path"] == str(tmp_path / "envci" / f"{digest}-py{python}")
    assert out["cache-key"] == f"envci-{platform.system()}-{platform.machine()}-{digest}-py{python}"
    pinned = step.prepare({**env, "ENVCI_STEP_VERSION": "0.1.0"})
    assert pinned["cache-key"] != out["cache-key"] and pinned["cache-key"].endswith(f"-py{python}")
    assert step.prepare({**env, "ENVCI_STEP_VERSION": "installed"}) == {"python": sys.executable, "cache-path": "", "cache-key": ""}


def test_prepare_writes_step_outputs(tmp_path: Path) -> None:
    output = tmp_path / "output"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "ENVCI_", "RUNNER_"))}
    env.update(GITHUB_OUTPUT=str(output), RUNNER_TOOL_CACHE=str(tmp_path), ENVCI_STEP_VERSION="envci==0.1.0")
    done = subprocess.run([sys.executable, str(SCRIPT), "prepare"], env=env, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split("=", 1) for line in output.read_text().splitlines())
    assert set(lines) == {"python", "cache-path", "cache-key"} and lines["cache-path"].startswith(str(tmp_path / "envci"))


def test_a_restored_virtualenv_whose_python_is_gone_is_made_anew(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"ENVCI_STEP_ACTION_PATH": str(REPO / "actions" / "provision"), "RUNNER_TOOL_CACHE": str(tmp_path), "ENVCI_STEP_VERSION": "envci==0.1.0"}
    _, root = step.install_root(env)
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "envci").write_text("")
    (root / ".installed").write_text("envci==0.1.0\n")
    (root / "bin" / "python").symlink_to(tmp_path / "a-python-that-was-uninstalled")
    made: list[Path] = []
    monkeypatch.setattr(step.venv.EnvBuilder, "create", lambda self, where: made.append(Path(where)))
    monkeypatch.setattr(step.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0))
    assert step.install(env) == str(root / "bin" / "envci")
    assert made == [root]


def test_the_container_action_runs_in_its_working_directory_with_a_runner_temp_it_cannot_see(tmp_path: Path) -> None:
    """actions/docker: RUNNER_TEMP names the runner's folder, absent in the container; the working
    directory comes as a variable."""
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "envci.yaml").write_text("name: demo\ncomponents:\n  - name: web\n    helmm: {chart: ./c}\n")
    done, out = run_step(tmp_path, "provision", ENVCI_STEP_WORKING_DIRECTORY="app", RUNNER_TEMP=str(tmp_path / "not-here"),
                         ENVCI_STEP_KUBECONFIG_CONTENT="apiVersion: v1\nkind: Config\n")
    assert done.returncode == 2, done.stdout + done.stderr
    assert out["exit-code"] == "2"
    assert "::error title=envci provision,file=app/envci.yaml,line=4::" in done.stdout, done.stdout


def test_a_file_envci_names_from_a_working_directory_is_relative_to_the_workspace() -> None:
    assert step.relative_file("envci.yaml", "/w/repo", cwd="/w/repo/examples/demo") == "examples/demo/envci.yaml"
    assert step.relative_file("/w/repo/app/envci.yaml", "/w/repo", cwd="/elsewhere") == "app/envci.yaml"
    assert step.relative_file("./envci.yaml", "/w/repo", cwd="/elsewhere") == "envci.yaml"
    assert step.relative_file("/etc/envci.yaml", "/w/repo") == "/etc/envci.yaml"
