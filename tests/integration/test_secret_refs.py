"""Secrets referenced from envci.yaml are read from Kubernetes Secrets, used, and never printed."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from envci.errors import ExitCode
from envci.kube.client import connect

pytestmark = pytest.mark.cluster
VALUE = "k8s-s3cr3t-5d1e"


def write_app(app: Path, secret_ns: str, key: str) -> None:
    (app / "k8s").mkdir(parents=True)
    (app / "k8s" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app-config}\ndata: {token: \"{{ secrets.api_token }}\"}\n"
    )
    spec = {
        "name": "secrets",
        "secrets": {"api_token": {"secret": "api", "key": key, "secret_namespace": secret_ns}},
        "components": [{"name": "cfg", "manifests": ["k8s/cm.yaml"]}],
    }
    (app / "envci.yaml").write_text(yaml.safe_dump(spec))


def envci(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ENVCI_OUTPUT_DIR": str(cwd / ".envci")}
    return subprocess.run([sys.executable, "-m", "envci.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def api_secret(kubeconfig: str, namespace: str) -> str:
    """A Secret `api` with key `token` in the test's namespace; returns that namespace."""
    connect(kubeconfig).apply(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "api", "namespace": namespace},
         "data": {"token": base64.b64encode(VALUE.encode()).decode()}},
        namespace,
    )
    return namespace


def test_kubernetes_secret_reference_is_used_and_never_printed(kubeconfig: str, api_secret: str, tmp_path: Path) -> None:
    kube = connect(kubeconfig)
    namespace = api_secret
    app = tmp_path / "app"
    write_app(app, namespace, "token")
    env = f"sec-{namespace[-5:]}"
    try:
        p = envci("provision", "--env", env, "-o", "json", cwd=app)
        assert p.returncode == 0, p.stderr
        cm = kube.get("v1", "ConfigMap", "app-config", f"envci-{env}")
        assert cm["data"]["token"] == VALUE
        assert VALUE not in p.stdout + p.stderr
        state = kube.get("v1", "ConfigMap", "envci-state", f"envci-{env}")
        assert VALUE not in str(state)
    finally:
        envci("teardown", "--env", env, cwd=app)


def test_missing_key_names_the_field_and_the_keys(api_secret: str, tmp_path: Path) -> None:
    namespace = api_secret
    app = tmp_path / "app"
    write_app(app, namespace, "password")
    p = envci("provision", "--env", f"sec-{namespace[-5:]}", cwd=app)
    assert p.returncode == ExitCode.BAD_INPUT
    assert "secrets.api_token.key" in p.stderr and "its keys: token" in p.stderr and VALUE not in p.stderr
