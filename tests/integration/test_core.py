"""provision / wait-ready / teardown / status / list against the real local cluster."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from envci.config.loader import load_config
from envci.errors import ExitCode, NotReadyError
from envci.identity import CiContext
from envci.kube.client import connect
from envci.netpol import ingress_allowed
from envci.output import Reporter
from envci.stages.provision import provision
from envci.stages.teardown import teardown
from envci.stages.wait_ready import wait_ready

pytestmark = pytest.mark.cluster

APP = Path(__file__).parent.parent / "data" / "apps" / "shop"


def run_id() -> str:
    return secrets.token_hex(3)


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    dest = tmp_path / "shop"
    shutil.copytree(APP, dest)
    return dest


def edit_spec(app_dir: Path, change: Any) -> None:
    p = app_dir / "envci.yaml"
    data = yaml.safe_load(p.read_text())
    change(data)
    p.write_text(yaml.safe_dump(data, sort_keys=False))


def envci(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "ENVCI_OUTPUT_DIR": str(cwd / ".envci"), **(env or {})}
    for k in ("GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL"):
        full_env.pop(k, None)
    return subprocess.run(
        [sys.executable, "-m", "envci.cli", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300
    )


def all_releases() -> list[dict[str, Any]]:
    out = subprocess.run(["helm", "list", "-A", "-a", "-o", "json"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_multi_component_app_provisions_becomes_ready_and_leaves_nothing(kubeconfig: str, app_dir: Path) -> None:
    env = f"core-{run_id()}"
    p = envci("provision", "--env", env, "-o", "json", cwd=app_dir)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    ns = res["namespace"]
    assert res["urls"] == {"web": f"http://{env}.preview.local/"}
    # dependency order shows in the progress: db before web before worker
    log = p.stderr
    assert log.index("installing db") < log.index("installing web") < log.index("installing worker")
    outputs = (app_dir / ".envci" / "outputs.env").read_text()
    assert f"ENVCI_NAMESPACE={ns}" in outputs and "ENVCI_URL_WEB=" in outputs

    w = envci("wait-ready", "--env", env, "-o", "json", cwd=app_dir)
    assert w.returncode == 0, w.stderr
    kinds = {x["workload"] for x in json.loads(w.stdout)["workloads"]}
    assert {"StatefulSet/db", "Deployment/web", "Deployment/worker"} <= kinds

    s = envci("status", "--env", env, "-o", "json", cwd=app_dir)
    assert s.returncode == 0, s.stderr
    st = json.loads(s.stdout)
    assert st["ready"] and st["components"]["web"]["release"] == "web"
    listed = json.loads(envci("list", "-o", "json", cwd=app_dir).stdout)["environments"]
    assert any(e["namespace"] == ns for e in listed)

    t = envci("teardown", "--env", env, cwd=app_dir)
    assert t.returncode == 0, t.stderr
    kube = connect(kubeconfig)
    assert kube.namespace(ns) is None
    assert not [r for r in all_releases() if r["namespace"] == ns]
    again = envci("teardown", "--env", env, cwd=app_dir)
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_two_prs_are_isolated_and_a_rerun_converges(kubeconfig: str, app_dir: Path) -> None:
    kube = connect(kubeconfig)
    rep = Reporter()
    tag = run_id()
    cfgs = [
        load_config(app_dir / "envci.yaml", CiContext(system="local", pr=f"{tag}{n}", build="7", branch="feature/x"))
        for n in (1, 2)
    ]
    try:
        for cfg in cfgs:
            provision(cfg, kube, rep)
        a, b = (c.identity.namespace for c in cfgs)
        assert a != b
        for ns in (a, b):
            deployments = kube.list("apps/v1", "Deployment", ns)
            assert {d["metadata"]["namespace"] for d in deployments} == {ns}
            policies = {p["metadata"]["name"] for p in kube.list("networking.k8s.io/v1", "NetworkPolicy", ns)}
            assert "envci-default-deny" in policies
        # No CNI enforces policies here, so judge the policies really installed in the cluster.
        pols = kube.list("networking.k8s.io/v1", "NetworkPolicy", a)
        labels_of = {ns: kube.namespace(ns)["metadata"]["labels"] for ns in (a, b)}
        reach = lambda src: ingress_allowed(  # noqa: E731
            pols, dst_ns=a, dst_pod={"app": "web"}, src_ns=src, src_ns_labels=labels_of[src], src_pod={"app": "worker"}
        )
        assert reach(a) and not reach(b)

        again = provision(cfgs[0], kube, rep)
        assert again["changed"] is False
        assert again["components"]["web"]["revision"] == 1  # no new Helm revision for an unchanged spec
        releases = [r for r in all_releases() if r["namespace"] == cfgs[0].identity.namespace]
        assert [r["name"] for r in releases] == ["web"]

        edit_spec(app_dir, lambda d: d["values"].update(replicas=2))
        changed = load_config(app_dir / "envci.yaml", cfgs[0].identity.ctx)
        up = provision(changed, kube, rep)
        assert up["changed"] is True and up["components"]["web"]["revision"] == 2
    finally:
        for cfg in cfgs:
            teardown(kube, rep, namespace=cfg.identity.namespace)


@pytest.mark.parametrize(
    "fault, reason",
    [("crashloop", "CrashLoopBackOff"), ("imagepull", "ImagePullBackOff"), ("never-ready", "NotReady")],
)
def test_unready_component_fails_wait_ready_with_reason(kubeconfig: str, app_dir: Path, fault: str, reason: str) -> None:
    def inject(d: dict[str, Any]) -> None:
        d["values"]["worker_labels"] = {"envci.io/simulate": fault}
        for c in d["components"]:
            c["wait"] = {"timeout": "8s"}

    edit_spec(app_dir, inject)
    env = f"fault-{fault}-{run_id()}"
    try:
        p = envci("provision", "--env", env, cwd=app_dir)
        assert p.returncode == 0, p.stderr
        w = envci("wait-ready", "--env", env, "-o", "json", cwd=app_dir)
        assert w.returncode == ExitCode.NOT_READY, w.stderr
        assert "Deployment/worker" in w.stderr and reason in w.stderr
        failure = json.loads(w.stdout)["failures"][0]
        assert failure["component"] == "worker" and failure["reason"] == reason
        if fault != "crashloop":  # a crash loop fails fast; the others run into the 8s deadline
            assert "not ready within 8s" in failure["message"]
    finally:
        envci("teardown", "--env", env, cwd=app_dir)


def test_provision_with_wait_is_provision_then_wait_ready_in_one_command(kubeconfig: str, app_dir: Path) -> None:
    def worker_never_ready(d: dict[str, Any]) -> None:
        d["values"]["worker_labels"] = {"envci.io/simulate": "never-ready"}

    env = f"pwait-{run_id()}"
    try:
        bad = envci("provision", "--timeout", "5s", "--env", env, cwd=app_dir)
        assert bad.returncode == ExitCode.BAD_INPUT and "--wait" in bad.stderr  # a deadline of no wait is a mistake
        assert connect(kubeconfig).namespace(f"envci-{env}") is None
        p = envci("provision", "--wait", "--env", env, "-o", "json", cwd=app_dir)
        assert p.returncode == 0, p.stderr
        res = json.loads(p.stdout)
        assert res["namespace"] == f"envci-{env}" and res["ready"]["ready"] is True
        assert {"StatefulSet/db", "Deployment/web", "Deployment/worker"} <= {x["workload"] for x in res["ready"]["workloads"]}
        assert p.stderr.index("installing worker") < p.stderr.rindex("ready after")
        edit_spec(app_dir, worker_never_ready)
        w = envci("provision", "--wait", "--timeout", "6s", "--env", env, "-o", "json", cwd=app_dir)
        assert w.returncode == ExitCode.NOT_READY, w.stderr
        assert json.loads(w.stdout)["failures"][0]["component"] == "worker"
    finally:
        envci("teardown", "--env", env, cwd=app_dir)


def test_fail_fast_does_not_wait_for_the_deadline(kubeconfig: str, app_dir: Path) -> None:
    edit_spec(app_dir, lambda d: d["values"].update(worker_labels={"envci.io/simulate": "crashloop"}))
    cfg = load_config(app_dir / "envci.yaml", CiContext(system="local"), env_override=f"ff-{run_id()}")
    kube = connect(kubeconfig)
    try:
        provision(cfg, kube, Reporter())
        with pytest.raises(NotReadyError) as ei:
            wait_ready(cfg, kube, Reporter())  # components wait 60s; a crash loop must not take that long
        assert ei.value.failures[0]["workload"] == "Deployment/worker"
        assert ei.value.failures[0]["reason"] == "CrashLoopBackOff"
    finally:
        teardown(kube, Reporter(), namespace=cfg.identity.namespace)


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda d: d.update(colour="blue"), "colour: unknown key"),
        (lambda d: d["components"][1]["helm"].update(chart="./charts/missing"), "does not exist"),
        (lambda d: d["values"].update(replicas="{{ values.nope }}"), "undefined template variable"),
        (lambda d: d["values"].update(replicas="{{ cycler.__init__.__globals__ }}"), "sandbox"),
        (lambda d: d["components"][1]["helm"].update(chart="../../../../etc"), "outside the repository"),
        (lambda d: d.update(namespace={"labels": {"envci.io/managed": "false"}}), "reserved"),
    ],
)
def test_invalid_config_fails_before_touching_the_cluster(kubeconfig: str, app_dir: Path, change: Any, words: str) -> None:
    edit_spec(app_dir, change)
    env = f"bad-{run_id()}"
    p = envci("provision", "--env", env, cwd=app_dir)
    assert p.returncode == ExitCode.BAD_INPUT, p.stderr
    assert "envci.yaml:" in p.stderr and words in p.stderr
    assert connect(kubeconfig).namespace(f"envci-{env}") is None


def test_per_build_overrides_pin_a_component_and_are_shown_by_status(kubeconfig: str, app_dir: Path) -> None:
    """--values then --set: a component's Helm values (web's image, pinned to a digest) and a key of
    `values:` (replicas); the Deployment has them, and status shows what this build overrode."""
    env = f"pins-{run_id()}"
    digest = "nginx@sha256:" + "4f" * 32
    (app_dir / "pins.yaml").write_text("web:\n  image: nginx:1.26\nvalues:\n  replicas: 1\n")
    p = envci("provision", "--env", env, "--no-wait-dependencies", "--values", "pins.yaml", "--set", f"web.image={digest}", "--set", "replicas=2",
              cwd=app_dir)
    try:
        assert p.returncode == 0, p.stderr
        kube = connect(kubeconfig)
        web = kube.get("apps/v1", "Deployment", "web", f"envci-{env}")
        assert web is not None
        assert web["spec"]["replicas"] == 2 and web["spec"]["template"]["spec"]["containers"][0]["image"] == digest
        s = envci("status", "--env", env, "-o", "json", cwd=app_dir)
        assert json.loads(s.stdout)["overrides"] == {"values.replicas": 2, "web.image": digest}, s.stdout
        text = envci("status", "--env", env, cwd=app_dir).stdout
        assert f"override web.image={digest}" in text and "override values.replicas=2" in text
        bad = envci("provision", "--env", env, "--set", "db.image=x", cwd=app_dir)
        assert bad.returncode == 2 and "component db is made from manifests" in bad.stderr and "Traceback" not in bad.stderr
    finally:
        envci("teardown", "--env", env, cwd=app_dir)
