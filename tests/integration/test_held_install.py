"""A chart that depends on other components starts its helm at once and is held before it applies
(envci/helmhold.py): with the real helm and API server, its release appears only after its
dependency is ready, and a dependency that fails calls it off with nothing recorded or applied."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from envci.config.loader import load_config
from envci.errors import NotReadyError
from envci.identity import CiContext
from envci.kube.client import connect
from envci.output import Reporter
from envci.stages.provision import provision
from envci.stages.teardown import teardown
from envci.stages.wait_ready import wait_for_dependency

pytestmark = pytest.mark.cluster

APP = Path(__file__).parent.parent / "data" / "apps" / "shop"


def _app(tmp_path: Path, change: Any = None) -> Path:
    dest = tmp_path / "shop"
    shutil.copytree(APP, dest)
    if change:
        p = dest / "envci.yaml"
        data = yaml.safe_load(p.read_text())
        change(data)
        p.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def _helm_records(kube: Any, ns: str, release: str) -> list[str]:
    return [s["metadata"]["name"] for s in kube.list("v1", "Secret", ns, label_selector=f"owner=helm,name={release}")]


@pytest.fixture
def temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where holds keep their socket and post-renderer in this test."""
    where = tmp_path / "temp"
    where.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(where))
    return where


def test_the_held_chart_is_applied_only_once_its_dependency_is_ready(kubeconfig: str, tmp_path: Path, temp: Path) -> None:
    app = _app(tmp_path)
    cfg = load_config(app / "envci.yaml", CiContext(system="local"), env_override=f"held-{secrets.token_hex(3)}")
    kube = connect(kubeconfig)
    ns = cfg.identity.namespace
    seen_at_ready: dict[str, Any] = {}

    def wait(names: list[str]) -> None:
        wait_for_dependency(cfg, kube, Reporter(), names)
        if names == ["db"]:  # the moment web may go: its helm is held, nothing of it applied or recorded yet
            seen_at_ready["holds"] = len(list(temp.glob("envci-hold-*")))
            seen_at_ready["web records"] = _helm_records(kube, ns, "web")
            seen_at_ready["web deployments"] = [d["metadata"]["name"] for d in kube.list("apps/v1", "Deployment", ns)]

    try:
        out = provision(cfg, kube, Reporter(), wait_for_dependency=wait)
        assert seen_at_ready == {"holds": 1, "web records": [], "web deployments": []}
        assert list(temp.iterdir()) == []
        assert out["components"]["web"]["revision"] == 1
        assert _helm_records(kube, ns, "web") == ["sh.helm.release.v1.web.v1"]
        assert "web" in {d["metadata"]["name"] for d in kube.list("apps/v1", "Deployment", ns)}
    finally:
        teardown(kube, Reporter(), namespace=ns)


def test_a_dependency_that_fails_calls_the_held_chart_off_with_nothing_left(kubeconfig: str, tmp_path: Path, temp: Path) -> None:
    def db_never_schedules(d: dict[str, Any]) -> None:
        d["components"][0]["wait"] = {"timeout": "4s"}

    app = _app(tmp_path, db_never_schedules)
    db = app / "k8s" / "db.yaml"
    # A claim that does not exist keeps the pod pending whatever the node.
    db.write_text(db.read_text().replace(
        'containers: [{name: postgres, image: "postgres:16"}]',
        'containers: [{name: postgres, image: "postgres:16"}]\n      volumes: [{name: data, persistentVolumeClaim: {claimName: absent}}]',
    ))
    cfg = load_config(app / "envci.yaml", CiContext(system="local"), env_override=f"off-{secrets.token_hex(3)}")
    kube = connect(kubeconfig)
    ns = cfg.identity.namespace
    holds: list[int] = []

    def wait(names: list[str]) -> None:
        try:
            wait_for_dependency(cfg, kube, Reporter(), names)
        finally:
            holds.append(len(list(temp.glob("envci-hold-*"))))

    try:
        with pytest.raises(NotReadyError) as ei:
            provision(cfg, kube, Reporter(), wait_for_dependency=wait)
        assert holds == [1]  # web's helm was held while db failed
        assert "db" in ei.value.message and "called" not in ei.value.message
        assert _helm_records(kube, ns, "web") == []
        assert kube.list("apps/v1", "Deployment", ns) == []
        assert list(temp.iterdir()) == []  # its socket and post-renderer are gone too
    finally:
        teardown(kube, Reporter(), namespace=ns)


def test_a_post_renderer_helm_cannot_run_leaves_the_install_unheld(
    kubeconfig: str, tmp_path: Path, temp: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from envci.helmhold import Hold

    # As on a temporary directory mounted noexec: helm refuses the post-renderer before it renders.
    monkeypatch.setattr(Hold, "args", lambda self: ["--post-renderer", str(tmp_path / "cannot-run")])
    app = _app(tmp_path)
    cfg = load_config(app / "envci.yaml", CiContext(system="local"), env_override=f"noexec-{secrets.token_hex(3)}")
    kube = connect(kubeconfig)
    ns = cfg.identity.namespace
    try:
        out = provision(cfg, kube, Reporter(), wait_for_dependency=lambda names: wait_for_dependency(cfg, kube, Reporter(), names))
        assert out["components"]["web"]["revision"] == 1
        assert _helm_records(kube, ns, "web") == ["sh.helm.release.v1.web.v1"]
    finally:
        teardown(kube, Reporter(), namespace=ns)
