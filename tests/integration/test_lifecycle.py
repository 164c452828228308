"""Lifecycle guarantees against the real local cluster: reap, kill -9, concurrency, API faults, finalizers."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from envci.config.loader import load_config
from envci.errors import ExitCode
from envci.identity import CiContext
from envci.kube.client import connect
from envci.namespace import rfc3339
from envci.output import Reporter
from envci.stages.provision import provision
from envci.stages.reap import reap

from tcpproxy import FlakyProxy  # tests/integration is on sys.path (pytest rootdir-relative imports)

pytestmark = pytest.mark.cluster
APP = Path(__file__).parent.parent / "data" / "apps" / "shop"


def tag() -> str:
    return secrets.token_hex(3)


def write_app(dest: Path, spec: dict[str, Any]) -> Path:
    import shutil

    shutil.copytree(APP, dest, dirs_exist_ok=True)
    (dest / "envci.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return dest


def shop_spec(**changes: Any) -> dict[str, Any]:
    spec = yaml.safe_load((APP / "envci.yaml").read_text())
    spec.update(changes)
    return spec


def envci_proc(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full = {**os.environ, "ENVCI_OUTPUT_DIR": str(cwd / ".envci"), "ENVCI_LOCK_SECONDS": "6", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "envci.cli", *args], cwd=cwd, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def envci(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    p = envci_proc(*args, cwd=cwd, env=env)
    out, err = p.communicate(timeout=timeout)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def leftovers(kube: Any, ns: str) -> list[str]:
    out = []
    if kube.namespace(ns) is not None:
        out.append(f"namespace {ns}")
    helm = subprocess.run(["helm", "list", "-A", "-a", "-o", "json"], capture_output=True, text=True, check=True)
    out += [f"release {r['name']}" for r in json.loads(helm.stdout) if r["namespace"] == ns]
    return out


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_reap_removes_exactly_the_expired_environments(kubeconfig: str, tmp_path: Path) -> None:
    kube = connect(kubeconfig)
    app = f"reap{tag()}"
    (tmp_path / "envci.yaml").write_text(yaml.safe_dump({"name": app, "ttl": "1h", "components": []}))
    now = datetime.now(timezone.utc)
    names = []
    for i in range(50):
        cfg = load_config(tmp_path / "envci.yaml", CiContext(system="local", pr=str(i)))
        provision(cfg, kube, Reporter())
        names.append(cfg.identity.namespace)
    expired = set(names[::3])
    for ns in expired:  # expiry in the past, as if their TTL had run out
        kube.patch_merge("v1", "Namespace", ns, {"metadata": {"annotations": {"envci.io/expires-at": rfc3339(now - timedelta(minutes=1))}}})
    bystander = f"not-envci-{tag()}"
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": bystander, "annotations": {"envci.io/expires-at": "2000-01-01T00:00:00Z"}}}, None)
    try:
        dry = reap(kube, Reporter(), dry_run=True, app=app)
        assert {r["namespace"] for r in dry["reaped"]} == expired
        assert all(kube.namespace(n) for n in names)

        res = reap(kube, Reporter(), app=app)
        assert res["counts"]["reaped"] == len(expired) and not res["failed"]
        remaining = {n for n in names if kube.namespace(n) is not None}
        assert remaining == set(names) - expired
        assert kube.namespace(bystander) is not None
    finally:
        for n in names:
            kube.delete("v1", "Namespace", n)
        kube.delete("v1", "Namespace", bystander)


def slow_spec() -> dict[str, Any]:
    """db never becomes ready, and web depends on it: provision sits waiting between waves."""
    spec = shop_spec()
    spec["values"]["worker_labels"] = {}
    spec["components"][0]["manifests"] = ["k8s/db-slow.yaml"]
    spec["components"][0]["wait"] = {"timeout": "5m"}
    return spec


def write_slow_db(dest: Path) -> None:
    db = list(yaml.safe_load_all((APP / "k8s" / "db.yaml").read_text()))
    db[0]["spec"]["template"]["metadata"]["labels"]["envci.io/simulate"] = "never-ready"
    (dest / "k8s" / "db-slow.yaml").write_text(yaml.safe_dump_all(db))


def test_provision_killed_half_way_is_removed_by_teardown_and_reap(kubeconfig: str, tmp_path: Path) -> None:
    kube = connect(kubeconfig)
    app = write_app(tmp_path / "app", slow_spec())
    write_slow_db(app)
    for how in ("teardown", "reap"):
        env = f"kill-{how}-{tag()}"
        p = envci_proc("provision", "--env", env, cwd=app)
        ns = f"envci-{env}"
        wait_for(lambda ns=ns: kube.get("apps/v1", "StatefulSet", "db", ns) is not None, 60, "db to be applied")
        time.sleep(1)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)
        assert kube.namespace(ns) is not None
        if how == "teardown":
            t = envci("teardown", "--env", env, cwd=app)
            assert t.returncode == 0, t.stderr
        else:
            kube.patch_merge("v1", "Namespace", ns, {"metadata": {"annotations": {"envci.io/expires-at": "2000-01-01T00:00:00Z"}}})
            r = envci("reap", "-o", "json", cwd=app)
            assert r.returncode == 0, r.stderr
            assert ns in {x["namespace"] for x in json.loads(r.stdout)["reaped"]}
        assert leftovers(kube, ns) == []


def test_sigterm_during_provision_exits_130_and_records_state(kubeconfig: str, tmp_path: Path) -> None:
    kube = connect(kubeconfig)
    app = write_app(tmp_path / "app", slow_spec())
    write_slow_db(app)
    env = f"term-{tag()}"
    ns = f"envci-{env}"
    p = envci_proc("provision", "--env", env, cwd=app)
    try:
        wait_for(lambda: kube.get("apps/v1", "StatefulSet", "db", ns) is not None, 60, "db to be applied")
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=30)
        assert p.returncode == ExitCode.CANCELLED, err
        cm = kube.get("v1", "ConfigMap", "envci-state", ns)
        history = json.loads(cm["data"]["state.json"])["history"]
        assert history[-1]["stage"] == "provision" and history[-1]["result"] == "failed"
        assert "signal" in history[-1]["message"]
    finally:
        assert envci("teardown", "--env", env, cwd=app).returncode == 0
    assert leftovers(kube, ns) == []


def test_concurrent_provisions_give_one_consistent_environment(kubeconfig: str, tmp_path: Path) -> None:
    kube = connect(kubeconfig)
    app = write_app(tmp_path / "app", shop_spec())
    env = f"race-{tag()}"
    ns = f"envci-{env}"
    try:
        procs = [envci_proc("provision", "--env", env, "-o", "json", cwd=app) for _ in range(2)]
        results = [p.communicate(timeout=180) for p in procs]
        codes = [p.returncode for p in procs]
        assert codes == [0, 0], results
        assert any("waiting for" in err for _, err in results)  # the second one waited for the lock
        helm = subprocess.run(["helm", "list", "-n", ns, "-o", "json"], capture_output=True, text=True, check=True)
        assert [r["name"] for r in json.loads(helm.stdout)] == ["web"]
        assert len(kube.list("apps/v1", "Deployment", ns)) == 2
    finally:
        envci("teardown", "--env", env, cwd=app)


@pytest.fixture
def behind_proxy(kubeconfig: str, tmp_path: Path) -> Any:
    """The slow-starting shop app, and a kubeconfig that reaches the API server through a FlakyProxy."""
    cfg = yaml.safe_load(Path(kubeconfig).read_text())
    server = urlparse(cfg["clusters"][0]["cluster"]["server"])
    proxy = FlakyProxy(server.hostname or "127.0.0.1", server.port or 443)
    cfg["clusters"][0]["cluster"]["server"] = f"{server.scheme}://127.0.0.1:{proxy.port}"
    flaky = tmp_path / "flaky.kubeconfig"
    flaky.write_text(yaml.safe_dump(cfg))
    spec = shop_spec()
    spec["values"]["worker_labels"] = {"envci.io/simulate": "slow-start"}
    app = write_app(tmp_path / "app", spec)
    env = f"flaky-{tag()}"
    try:
        yield proxy, app, env, {"KUBECONFIG": str(flaky)}
    finally:
        proxy.close()
        envci("teardown", "--env", env, cwd=app)


def test_a_stage_survives_the_api_server_dropping_connections(behind_proxy: Any) -> None:
    proxy, app, env, run_env = behind_proxy
    assert envci("provision", "--env", env, "--no-wait-dependencies", cwd=app, env=run_env).returncode == 0
    p = envci_proc("wait-ready", "--env", env, cwd=app, env=run_env)
    time.sleep(1)
    proxy.drop_for(10)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert proxy.dropped > 0  # connections really were refused while it waited


def test_stuck_finalizer_is_diagnosed_and_force_removes_it(kubeconfig: str, tmp_path: Path) -> None:
    kube = connect(kubeconfig)
    spec = {"name": "stuck", "ttl": "1h", "components": [{"name": "cfg", "manifests": ["k8s/held.yaml"]}]}
    app = tmp_path / "app"
    (app / "k8s").mkdir(parents=True)
    (app / "k8s" / "held.yaml").write_text(
        yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "held", "finalizers": ["example.com/hold"]}})
    )
    (app / "envci.yaml").write_text(yaml.safe_dump(spec))
    env = f"stuck-{tag()}"
    ns = f"envci-{env}"
    assert envci("provision", "--env", env, cwd=app).returncode == 0
    try:
        t = envci("teardown", "--env", env, "--timeout", "15s", cwd=app)
        assert t.returncode == ExitCode.INFRASTRUCTURE
        assert "ConfigMap/held" in t.stderr and "example.com/hold" in t.stderr and "--force" in t.stderr
        f = envci("teardown", "--env", env, "--force", cwd=app)
        assert f.returncode == 0, f.stderr
        assert "removing finalizers" in f.stderr
        assert kube.namespace(ns) is None
    finally:
        cm = kube.get("v1", "ConfigMap", "held", ns)
        if cm:
            kube.patch_merge("v1", "ConfigMap", "held", {"metadata": {"finalizers": None}}, ns)


def test_a_newer_build_supersedes_an_older_one(kubeconfig: str, tmp_path: Path) -> None:
    kube = connect(kubeconfig)
    app = write_app(tmp_path / "app", {"name": f"sup{tag()}", "ttl": "1h", "components": []})
    pr = {"ENVCI_PR": "77"}
    new = envci("provision", "-o", "json", cwd=app, env={**pr, "ENVCI_BUILD": "10"})
    assert new.returncode == 0, new.stderr
    ns = json.loads(new.stdout)["namespace"]
    try:
        old = envci("provision", cwd=app, env={**pr, "ENVCI_BUILD": "9"})
        assert old.returncode == ExitCode.SUPERSEDED and "newer build 10" in old.stderr
        skipped = envci("teardown", cwd=app, env={**pr, "ENVCI_BUILD": "9"})
        assert skipped.returncode == 0 and "leaving it to that build" in skipped.stderr
        assert kube.namespace(ns) is not None
        newest = envci("provision", cwd=app, env={**pr, "ENVCI_BUILD": "11"})
        assert newest.returncode == 0, newest.stderr
        assert kube.namespace(ns)["metadata"]["labels"]["envci.io/build"] == "11"
    finally:
        assert envci("teardown", cwd=app, env={**pr, "ENVCI_BUILD": "11"}).returncode == 0
    assert kube.namespace(ns) is None


def test_up_tears_down_after_failing_tests_and_after_cancellation(kubeconfig: str, tmp_path: Path) -> None:
    kube = connect(kubeconfig)
    spec = shop_spec(test=[{"name": "checks", "command": "exit 3"}])
    app = write_app(tmp_path / "app", spec)
    env = f"up-{tag()}"
    failed = envci("up", "--env", env, "--no-publish", "--output-dir", str(tmp_path / "r"), cwd=app)
    assert failed.returncode == ExitCode.TESTS_FAILED, failed.stderr
    assert leftovers(kube, f"envci-{env}") == []

    app2 = write_app(tmp_path / "app2", slow_spec())
    write_slow_db(app2)
    env2 = f"upc-{tag()}"
    p = envci_proc("up", "--env", env2, "--no-publish", cwd=app2)
    wait_for(lambda: kube.get("apps/v1", "StatefulSet", "db", f"envci-{env2}") is not None, 60, "db to be applied")
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == ExitCode.CANCELLED, err
    assert "tearing down after" in err
    assert leftovers(kube, f"envci-{env2}") == []


def test_up_keep_leaves_the_environment(kubeconfig: str, tmp_path: Path) -> None:
    kube = connect(kubeconfig)
    app = write_app(tmp_path / "app", shop_spec(test=[{"name": "ok", "command": "true"}]))
    env = f"keep-{tag()}"
    try:
        r = envci("up", "--env", env, "--keep", "--no-publish", "--output-dir", str(tmp_path / "r"), cwd=app)
        assert r.returncode == 0, r.stderr
        assert kube.namespace(f"envci-{env}") is not None
    finally:
        envci("teardown", "--env", env, cwd=app)


def helm_status(release: str, ns: str) -> str:
    out = subprocess.run(["helm", "status", release, "-n", ns, "-o", "json"], capture_output=True, text=True)
    return json.loads(out.stdout)["info"]["status"] if out.returncode == 0 else ""


def test_a_release_left_pending_by_an_interrupted_run_is_recovered(kubeconfig: str, tmp_path: Path) -> None:
    app = write_app(tmp_path / "app", shop_spec(components=[{"name": "web", "helm": {"chart": "./charts/web"}}]))
    env = f"pend-{tag()}"
    ns = f"envci-{env}"
    try:
        assert envci("provision", "--env", env, cwd=app).returncode == 0
        # An upgrade that never gets ready, killed half-way: Helm leaves the release pending-upgrade.
        helm = subprocess.Popen(
            ["helm", "upgrade", "web", str(app / "charts" / "web"), "-n", ns, "--wait", "--timeout", "5m",
             "--set", "labels.envci\\.io/simulate=never-ready"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: helm_status("web", ns) == "pending-upgrade", 30, "a pending upgrade")
        helm.kill()
        helm.wait(timeout=10)
        again = envci("provision", "--env", env, cwd=app)
        assert again.returncode == 0, again.stderr
        assert helm_status("web", ns) == "deployed"
    finally:
        envci("teardown", "--env", env, cwd=app)


def test_a_stage_survives_connections_that_go_silent(behind_proxy: Any) -> None:
    """A dropped route resets nothing: requests in flight just never get an answer."""
    proxy, app, env, run_env = behind_proxy
    run_env = {**run_env, "ENVCI_API_TIMEOUT": "4"}
    assert envci("provision", "--env", env, "--no-wait-dependencies", cwd=app, env=run_env).returncode == 0
    p = envci_proc("wait-ready", "--env", env, cwd=app, env=run_env)
    time.sleep(1.5)
    proxy.blackhole()
    _, err = p.communicate(timeout=90)
    assert p.returncode == 0, err
    assert proxy.blackholed > 0
