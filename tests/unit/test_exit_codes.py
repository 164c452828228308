"""Which exit code a problem gets: bad input (2) before anything changes, never "retry may succeed" (4)."""

from __future__ import annotations

import io
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pytest
from fakekube import FakeKube  # tests/ is on sys.path

from envci.cli import main
from envci.config.loader import load_config
from envci.errors import ConfigErrors, EnvciError, ExitCode, OwnershipError, PublishError
from envci.identity import CiContext
from envci.manifests import check_components
from envci.output import Reporter
from envci.stages.provision import api_scope, ensure_namespace, provision
from envci.stages.teardown import find_namespace

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
CONFIG = """\
    name: shop
    components:
      - name: web
        manifests: [k8s/*.yaml]
"""
DEPLOYMENT = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 1}\n"
CLUSTER_ROLE = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: web-reader}\n"
WIDGET = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"


def app(tmp_path: Path, **files: str) -> Path:
    (tmp_path / "k8s").mkdir()
    for name, text in files.items():
        (tmp_path / "k8s" / f"{name}.yaml").write_text(text)
    p = tmp_path / "envci.yaml"
    p.write_text(textwrap.dedent(CONFIG))
    return p


def test_publish_and_ownership_errors_belong_to_the_one_hierarchy() -> None:
    assert issubclass(PublishError, EnvciError) and issubclass(OwnershipError, EnvciError)
    assert OwnershipError("x").exit_code == ExitCode.BAD_INPUT


def test_a_namespace_envci_did_not_create_is_bad_input_not_a_flaky_cluster(tmp_path: Path) -> None:
    cfg = load_config(app(tmp_path, web=DEPLOYMENT), CiContext(system="local"), env_override="x")
    kube = FakeKube()
    kube.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "envci-x", "labels": {"team": "payments"}}})
    with pytest.raises(OwnershipError) as ei:
        ensure_namespace(kube, cfg, now=NOW)  # type: ignore[arg-type]
    assert ei.value.exit_code == 2 and "--env" in (ei.value.hint or "") and kube.calls == []
    with pytest.raises(OwnershipError) as ei2:
        find_namespace(kube, namespace="envci-x")  # type: ignore[arg-type]
    assert "refusing to delete it" in ei2.value.message and ei2.value.exit_code == 2


def test_a_cluster_scoped_manifest_is_refused_before_provision_changes_anything(tmp_path: Path) -> None:
    cfg = load_config(app(tmp_path, web=DEPLOYMENT, rbac=CLUSTER_ROLE), CiContext(system="local"), env_override="x")
    kube = FakeKube()
    with pytest.raises(ConfigErrors) as ei:
        provision(cfg, kube, Reporter(err=io.StringIO()))  # type: ignore[arg-type]
    assert kube.calls == []
    (err,) = ei.value.errors
    assert err.exit_code == 2 and err.file == str(tmp_path / "k8s" / "rbac.yaml")
    assert "ClusterRole web-reader is cluster-scoped" in err.message and err.hint


def test_a_kind_the_cluster_does_not_serve_yet_is_left_to_apply_time(tmp_path: Path) -> None:
    cfg = load_config(app(tmp_path, web=DEPLOYMENT, widget=WIDGET), CiContext(system="local"), env_override="x")
    assert api_scope(FakeKube())("example.com/v1", "Widget") is None  # type: ignore[arg-type]
    check_components(cfg, api_scope(FakeKube()))  # type: ignore[arg-type]  # no error: the CRD may come later


def test_broken_manifest_files_are_all_reported_at_once_with_their_file_and_line(tmp_path: Path) -> None:
    cfg = load_config(app(tmp_path, a="metadata: {name: {{ nope }}}\n", b="kind: [unclosed\n", c="x: 1\n"),
                      CiContext(system="local"), env_override="x")
    with pytest.raises(ConfigErrors) as ei:
        check_components(cfg)
    files = [Path(e.file or "").name for e in ei.value.errors]
    assert files == ["a.yaml", "b.yaml", "c.yaml"]
    assert "template error" in ei.value.errors[0].message and ei.value.errors[1].line


def test_validate_renders_the_manifest_files_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = app(tmp_path, web="metadata: {name: {{ values.missing }}}\n")
    assert main(["validate", "--config", str(p), "--env", "x"]) == ExitCode.BAD_INPUT
    assert "web.yaml" in capsys.readouterr().err
