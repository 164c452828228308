"""`envci test` against the local clusters, on environments made by the provision stage.

On the simulated cluster: a pytest suite on the runner (3 pass, 1 fails), a Job suite whose JUnit
comes back through its pod's log (kwok serves the log from a file: the test installs a Logs object
for the Job's pod as soon as it appears; the pod is labelled slow-start so it stays Running for 5s
first), and a shell check of the environment's variables, two of them in parallel.

On the real node: `helm test` of a chart (tests/data/test_stage/chart) whose test hooks are real
pods that call the chart's Service, one passing and one failing with wget's own error.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config, watch

from envci import state as st
from envci.config.loader import load_config
from envci.identity import CiContext
from envci.kube.client import connect
from envci.output import Reporter
from envci.stages.provision import provision
from envci.stages.teardown import teardown
from envci.stages.wait_ready import wait_ready
from envci.testing import job

pytestmark = pytest.mark.cluster
APP = Path(__file__).parent.parent / "data" / "test_stage" / "app"

E2E_LOG = f"""e2e: 3 scenarios against $ENVCI_URL_API
{job.BEGIN}
<testsuites><testsuite name="e2e"><testcase classname="checkout" name="pays by card" time="1.5"/><testcase classname="checkout" name="pays by invoice" time="2.0"/><testcase classname="cart" name="keeps items" time="0.5"/></testsuite></testsuites>
{job.END}
"""


@pytest.fixture
def app(tmp_path: Path) -> Path:
    dest = tmp_path / "app"
    shutil.copytree(APP, dest)
    spec = yaml.safe_load((dest / "envci.yaml").read_text())
    spec["test"][0]["command"][0] = sys.executable  # the interpreter running these tests has pytest
    spec["test"][1]["job"]["labels"] = {"envci.io/simulate": "slow-start"}
    spec["test"].append({"name": "e2e-broken", "job": {"image": "registry.example.com/shop-e2e:1.0", "command": ["run-e2e"],
                                                      "labels": {"envci.io/simulate": "job-fail"}}, "timeout": "1m"})
    (dest / "envci.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return dest


@pytest.fixture
def environment(kubeconfig: str, app: Path) -> Iterator[dict[str, Any]]:
    """A provisioned environment (name, namespace, cfg, kube), torn down afterwards."""
    import secrets

    cfg = load_config(app / "envci.yaml", CiContext(system="local"), env_override=f"ts-{secrets.token_hex(3)}")
    kube = connect(kubeconfig)
    rep = Reporter(err=io.StringIO())
    os.environ.setdefault("ENVCI_OUTPUT_DIR", str(app / ".envci"))
    provision(cfg, kube, rep)
    try:
        yield {"name": cfg.identity.name, "namespace": cfg.identity.namespace, "cfg": cfg, "kube": kube}
    finally:
        teardown(kube, rep, namespace=cfg.identity.namespace, name=cfg.identity.name, timeout=60)


def serve_job_logs(kubeconfig: str, namespace: str, suite: str, text: str, pod_logs: Callable[..., None]) -> threading.Thread:
    """Install a kwok Logs object for the Job's pod the moment it is created."""
    api = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))

    def run() -> None:
        w = watch.Watch()
        for event in w.stream(api.list_namespaced_pod, namespace, label_selector=f"{job.SUITE_LABEL}={suite}", timeout_seconds=60):
            if event["type"] == "ADDED":
                pod_logs(namespace, event["object"].metadata.name, text, containers=[job.CONTAINER])
                w.stop()
                return

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def envci(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "ENVCI_OUTPUT_DIR": str(cwd / ".envci"), **(env or {})}
    for k in ("GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL", "JENKINS_HOME", "GITHUB_STEP_SUMMARY"):
        full.pop(k, None)
    return subprocess.run([sys.executable, "-m", "envci.cli", *args], check=False, cwd=cwd, env=full, capture_output=True, text=True, timeout=300)


def test_envci_test_runs_command_and_job_suites_and_reports_one_failure(
    kubeconfig: str, app: Path, environment: dict[str, Any], pod_logs: Callable[..., None]
) -> None:
    name, ns = environment["name"], environment["namespace"]
    watcher = serve_job_logs(kubeconfig, ns, "e2e", E2E_LOG, pod_logs)
    p = envci("test", "--env", name, "--suite", "smoke", "--suite", "e2e", "--suite", "env", "--output-dir", "out", "-o", "json", cwd=app)
    watcher.join(timeout=5)
    assert p.returncode == 1, p.stderr
    res = json.loads(p.stdout)
    assert res["counts"] == {"tests": 8, "passed": 7, "failed": 1, "errors": 0, "skipped": 0}, p.stderr
    assert res["failures"] == [{"suite": "smoke", "test": "checks.test_checkout_total", "message": res["failures"][0]["message"]}]
    assert "checkout total is off by one" in res["failures"][0]["message"]
    # the parallel pair ran together, after the sequential suite
    assert "running e2e, env in parallel" in p.stderr

    out = app / "out"
    root = ET.parse(out / "junit.xml").getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("8", "1", "0")
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert (suites["smoke"].get("tests"), suites["smoke"].get("failures")) == ("4", "1")
    assert [c.get("name") for c in suites["e2e"].findall("testcase")] == ["pays by card", "pays by invoice", "keeps items"]
    assert suites["env"].get("tests") == "1" and suites["env"].get("failures") == "0"

    md = (out / "summary.md").read_text()
    assert "envci tests failed" in md and "**8** tests, **7** passed, **1** failed" in md
    assert "checks.test_checkout_total: AssertionError: checkout total is off by one" in md
    assert f"http://api.{ns}.svc.cluster.local:8080/" in md

    report = json.loads((out / "report.json").read_text())
    assert report["outcome"] == "failed" and report["environment"]["namespace"] == ns
    assert [s["outcome"] for s in report["suites"]] == ["failed", "passed", "passed"]
    assert "e2e: 3 scenarios" in (out / "logs" / "e2e.log").read_text()
    assert "namespace " + ns in (out / "logs" / "env.log").read_text()

    history = st.load(environment["kube"], ns).history
    assert history[-1]["stage"] == "test" and history[-1]["result"] == "failed"
    assert history[-1]["message"] == "8 tests, 7 passed, 1 failed, 0 skipped"

    # `envci report` publishes the saved report again, with the same exit code and no cluster
    r = envci("report", "--output-dir", "out", cwd=app)
    assert r.returncode == 1 and "tests failed: 8 tests, 7 passed, 1 failed" in r.stdout


def test_a_failing_job_becomes_a_failed_test_with_the_controllers_reason(
    kubeconfig: str, app: Path, environment: dict[str, Any]
) -> None:
    p = envci("test", "--env", environment["name"], "--suite", "e2e-broken", "--output-dir", "out", "-o", "json", cwd=app)
    assert p.returncode == 1, p.stderr
    res = json.loads(p.stdout)
    assert res["counts"]["failed"] == 1
    (failure,) = res["failures"]
    assert failure["test"] == "e2e-broken.job" and "BackoffLimitExceeded" in failure["message"]
    md = (app / "out" / "summary.md").read_text()
    assert "exit code 1" in md  # the pod's container state, from envci.kube.jobs


def test_testing_an_environment_that_does_not_exist_is_not_ready(kubeconfig: str, app: Path) -> None:
    p = envci("test", "--env", "never-provisioned-x", "--output-dir", "out", cwd=app)
    assert p.returncode == 3, p.stderr
    assert "does not exist" in p.stderr and "envci provision" in p.stderr


# --- helm test on the real node -------------------------------------------------------------------

HELM_APP = """\
name: hts
ttl: 1h
components:
  - name: probe
    helm: {chart: ./chart}
    wait: {timeout: 90s}
test:
  - name: chart
    helm_test: probe
    timeout: 1m
"""


@pytest.fixture
def helm_environment(real_kubeconfig: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The probe chart installed and ready on the real node (its web pod really serves the page).

    $KUBECONFIG names no file here: provision and teardown must run helm against the cluster
    their client was connected to, not the one the environment variable names.
    """
    import secrets

    dest = tmp_path / "helm-app"
    shutil.copytree(APP.parent / "chart", dest / "chart")
    (dest / "envci.yaml").write_text(HELM_APP)
    cfg = load_config(dest / "envci.yaml", CiContext(system="local"), env_override=f"ht-{secrets.token_hex(3)}")
    kube = connect(real_kubeconfig)
    progress = io.StringIO()
    rep = Reporter(err=progress)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-such-kubeconfig"))
    try:
        provision(cfg, kube, rep)
        wait_ready(cfg, kube, rep, timeout=timedelta(seconds=90))
        yield {"name": cfg.identity.name, "namespace": cfg.identity.namespace, "dir": dest, "kube": kube}
    finally:
        teardown(kube, rep, namespace=cfg.identity.namespace, name=cfg.identity.name, timeout=60)
    assert "helm release probe goes with the namespace" in progress.getvalue()  # its records found on the real cluster


def test_helm_test_hooks_run_as_real_pods_and_the_failing_one_is_reported_with_its_log(
    real_kubeconfig: str, helm_environment: dict[str, Any]
) -> None:
    app_dir, ns = helm_environment["dir"], helm_environment["namespace"]
    p = envci("test", "--env", helm_environment["name"], "--kubeconfig", real_kubeconfig, "--output-dir", "out", "-o", "json", cwd=app_dir)
    assert p.returncode == 1, p.stderr
    res = json.loads(p.stdout)
    assert res["suites"] == [{"name": "chart", "kind": "helm-test", "outcome": "failed",
                              "counts": {"tests": 2, "passed": 1, "failed": 1, "errors": 0, "skipped": 0}, "message": "exit code 1"}], p.stdout
    assert res["failures"] == [{"suite": "chart", "test": "chart.probe-test-health", "message": "test hook probe-test-health of release probe: Failed"}]

    out = app_dir / "out"
    root = ET.parse(out / "junit.xml").getroot()
    (suite,) = root.findall("testsuite")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert set(cases) == {"probe-test-page", "probe-test-health"}
    assert cases["probe-test-page"].find("failure") is None
    failure = cases["probe-test-health"].find("failure")
    assert failure is not None and failure.get("message") == "test hook probe-test-health of release probe: Failed"
    # The hook pod's own log: its request went through the Service and the server answered 404.
    assert "GET http://probe/healthz" in (failure.text or "")
    assert "wget: server returned error: HTTP/1.1 404 Not Found" in (failure.text or "")

    md = (out / "summary.md").read_text()
    assert "probe-test-health" in md and "HTTP/1.1 404 Not Found" in md
    # The passing hook really read the page through the Service by its DNS name.
    assert "GET http://probe/ answered: hello from probe" in (out / "logs" / "chart.log").read_text()

    # The hook pods were the kubelet's: the passing one exited 0, the failing one 1.
    core = client.CoreV1Api(config.new_client_from_config(config_file=real_kubeconfig))
    exits = {name: core.read_namespaced_pod(name, ns).status.container_statuses[0].state.terminated.exit_code
             for name in ("probe-test-page", "probe-test-health")}
    assert exits == {"probe-test-page": 0, "probe-test-health": 1}
