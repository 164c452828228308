"""Budgets on the local cluster: the janitor chart installs the cluster's policy, `envci provision`
reads it, refuses an environment beyond it with exit 2 naming the oldest ones, and with
reap-oldest-expired tears down an expired environment to make room; `envci list` shows usage."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from envci.errors import ExitCode
from envci.kube.client import connect

pytestmark = pytest.mark.cluster
CHART = Path(__file__).parents[2] / "charts" / "envci-janitor"


def envci(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "ENVCI_OUTPUT_DIR": str(cwd / ".envci"), **env}
    return subprocess.run([sys.executable, "-m", "envci.cli", *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=300)


def write_spec(app_dir: Path, app: str, **budget: object) -> None:
    (app_dir / "envci.yaml").write_text(yaml.safe_dump({"name": app, "ttl": "1h", "components": [], "budget": budget}, sort_keys=False))


def test_the_charts_budget_refuses_names_the_oldest_and_reap_oldest_expired_makes_room(
    kubeconfig: str, namespace: str, tmp_path: Path
) -> None:
    kube = connect(kubeconfig)
    app = f"bud{secrets.token_hex(3)}"
    release = f"budgets-{namespace[-5:]}"
    values = tmp_path / "budgets.yaml"
    values.write_text(yaml.safe_dump({"budgets": {"apps": {app: 2}}}))
    subprocess.run(["helm", "install", release, str(CHART), "-n", namespace, "-f", str(values)], check=True, capture_output=True, text=True)
    run_env = {"ENVCI_POLICY_NAMESPACE": namespace}
    policy = f"policy {namespace}/envci-budgets"
    write_spec(tmp_path, app, max_environments=3)  # the chart's 2 is stricter
    first, second, third = (f"{app}-{x}" for x in ("a", "b", "c"))
    try:
        for env in (first, second):
            r = envci("provision", "--env", env, cwd=tmp_path, env=run_env)
            assert r.returncode == 0, r.stderr
            time.sleep(1.1)  # creation times have whole seconds: the first is the older

        refused = envci("provision", "--env", third, "-o", "json", cwd=tmp_path, env=run_env)
        assert refused.returncode == ExitCode.BAD_INPUT, refused.stderr
        payload = json.loads(refused.stdout)
        assert payload["type"] == "BudgetExceededError"
        (over,) = payload["budgets"]
        assert (over["scope"], over["key"], over["max_environments"], over["source"], over["used"]) == ("app", app, 2, policy, 2)
        assert [e["name"] for e in over["environments"]] == [first, second]
        assert all(e["age"] and e["expires_at"] and not e["expired"] for e in over["environments"])
        assert f"would be the 3rd of app {app}, whose budget allows 2 ({policy})" in refused.stderr
        assert f"`envci teardown --env {first}`" in refused.stderr
        assert kube.namespace(f"envci-{third}") is None  # refused before anything was created

        again = envci("provision", "--env", first, cwd=tmp_path, env=run_env)
        assert again.returncode == 0, again.stderr  # one that exists may always be provisioned again

        listed = envci("list", "--app", app, cwd=tmp_path, env=run_env)
        assert listed.returncode == 0, listed.stderr
        assert f"app {app}: 2 of 2 environments ({policy})" in listed.stdout.splitlines()
        assert f"app {app}: 2 of 3 environments (envci.yaml)" in listed.stdout.splitlines()

        expired = {"metadata": {"annotations": {"envci.io/expires-at": "2025-01-01T00:00:00Z"}}}  # as if its TTL had run out
        kube.patch_merge("v1", "Namespace", f"envci-{second}", expired)
        write_spec(tmp_path, app, max_environments=3, when_exceeded="reap-oldest-expired")
        made_room = envci("provision", "--env", third, "-o", "json", cwd=tmp_path, env=run_env)
        assert made_room.returncode == 0, made_room.stderr
        assert f"budget: tearing down environment {second}, expired at 2025-01-01T00:00:00Z" in made_room.stderr
        assert [r["name"] for r in json.loads(made_room.stdout)["reaped"]] == [second]
        gone = kube.namespace(f"envci-{second}")
        assert gone is None or gone["metadata"].get("deletionTimestamp")
        assert kube.namespace(f"envci-{first}") is not None  # older, but not expired
        assert kube.namespace(f"envci-{third}") is not None
    finally:
        for env in (first, second, third):
            envci("teardown", "--env", env, cwd=tmp_path, env=run_env)
        subprocess.run(["helm", "uninstall", release, "-n", namespace], capture_output=True)


def test_the_charts_budgets_are_readable_by_any_runner_and_checked_at_install(kubeconfig: str, namespace: str) -> None:
    release = f"budgets-{namespace[-5:]}"
    subprocess.run(["helm", "install", release, str(CHART), "-n", namespace, "--set", "budgets.teams.payments=0"],
                   check=True, capture_output=True, text=True)
    try:
        cm = json.loads(subprocess.run(["kubectl", "get", "configmap", "envci-budgets", "-n", namespace, "-o", "json"],
                                       check=True, capture_output=True, text=True).stdout)
        assert yaml.safe_load(cm["data"]["budgets.yaml"]) == {"apps": {}, "repos": {}, "teams": {"payments": 0}}
        runner = "--as=system:serviceaccount:default:some-ci-runner"

        def can(what: str) -> bool:
            out = subprocess.run(["kubectl", "auth", "can-i", "get", what, "-n", namespace, runner], capture_output=True, text=True)
            return out.stdout.strip() == "yes"

        assert can("configmap/envci-budgets") and not can("configmap/something-else") and not can("secrets")
    finally:
        subprocess.run(["helm", "uninstall", release, "-n", namespace], capture_output=True)
    bad = subprocess.run(["helm", "template", "x", str(CHART), "--set", "budgets.apps.shop=-1"], capture_output=True, text=True)
    assert bad.returncode != 0 and "/budgets/apps/shop" in bad.stderr
