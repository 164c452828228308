"""Helm's release records read without running helm, and the decisions made on them."""

from __future__ import annotations

import base64
import gzip
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from envci import helmrecords as hr
from envci.errors import ConfigError, ExitCode, NotReadyError
from envci.helm import _install_failure

NS = "envci-shop-pr-7"


def release(version: int = 1, status: str = "deployed", *, chart: tuple[str, str] = ("api", "1.2.0"), config: dict[str, Any] | None = None,
            manifest: str = "", hooks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": "api", "namespace": NS, "version": version, "info": {"status": status},
                           "chart": {"metadata": {"name": chart[0], "version": chart[1]}}, "manifest": manifest}
    if config:  # Helm leaves `config` out when no values were given
        out["config"] = config
    if hooks:
        out["hooks"] = hooks
    return out


def stored(rel: dict[str, Any], kind: str = "Secret") -> dict[str, Any]:
    """A record as Helm's storage driver writes it: gzipped JSON, base64; a Secret's data base64 again."""
    text = base64.b64encode(gzip.compress(json.dumps(rel).encode()))
    data = base64.b64encode(text).decode() if kind == "Secret" else text.decode()
    return {"kind": kind, "metadata": {"name": f"sh.helm.release.v1.api.v{rel['version']}"}, "data": {"release": data}}


@pytest.mark.parametrize("kind", ["Secret", "ConfigMap"])
def test_a_stored_record_decodes_to_the_release(kind: str) -> None:
    rel = release(3, config={"replicas": 2})
    assert hr.decode_record(stored(rel, kind)) == rel


@pytest.mark.parametrize("data", [{}, {"release": 5}, {"release": "not base64!"}, {"release": base64.b64encode(b"\x00\x01").decode()}])
def test_a_record_helm_could_not_read_either_is_skipped(data: dict[str, Any]) -> None:
    assert hr.decode_record({"kind": "Secret", "data": data}) is None


def test_the_newest_revision_wins_whatever_the_order() -> None:
    assert hr.latest([release(2), release(5, "failed"), release(4)]) == release(5, "failed")
    assert hr.latest([]) is None


CHART = hr.ChartId("api", "1.2.0")


@pytest.mark.parametrize(
    ("current", "chart", "values", "expected"),
    [
        (None, CHART, {}, "install"),
        (release(config={"a": 1}), CHART, {"a": 1}, "keep"),
        (release(), CHART, {}, "keep"),
        (release(config={"a": 1}), CHART, {"a": 2}, "upgrade"),
        (release(), hr.ChartId("api", "1.3.0"), {}, "upgrade"),
        (release(), hr.ChartId("web", "1.2.0"), {}, "upgrade"),
        (release(), hr.ChartId("api", None), {}, "upgrade"),
        (release(status="failed"), CHART, {}, "upgrade"),
        (release(status="pending-install"), CHART, {}, "uninstall-first"),
        (release(status="uninstalling"), CHART, {}, "uninstall-first"),
        (release(status="pending-upgrade"), CHART, {}, "rollback-first"),
        (release(status="pending-rollback"), CHART, {}, "rollback-first"),
    ],
)
def test_what_a_release_needs(current: dict[str, Any] | None, chart: hr.ChartId, values: dict[str, Any], expected: str) -> None:
    assert hr.plan(current, chart, values) == expected


def test_values_files_merge_as_helm_merges_them() -> None:
    layers = [{"image": {"tag": "1", "repo": "r"}, "ports": [80], "x": 1}, {"image": {"tag": "2"}, "ports": [81]}, {"x": None}]
    assert hr.merge_values(layers) == {"image": {"tag": "2", "repo": "r"}, "ports": [81], "x": None}


def scope(api_version: str, kind: str) -> bool | None:
    return {"ClusterRole": False, "Deployment": True, "Service": True}.get(kind)


DEPLOY = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\n"


@pytest.mark.parametrize(
    ("manifest", "hooks", "reason"),
    [
        (f"---\n{DEPLOY}---\napiVersion: v1\nkind: Service\nmetadata: {{name: api, namespace: {NS}}}\n", None, None),
        (f"{DEPLOY}---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{name: api-read}}\n", None,
         "ClusterRole api-read is cluster-scoped"),
        ("apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: elsewhere}\n", None, "Service api is in namespace elsewhere"),
        ("apiVersion: x/v1\nkind: Widget\nmetadata: {name: w}\n", None, "Widget is unknown to the cluster"),
        (DEPLOY, [{"kind": "Job", "name": "api-cleanup", "events": ["pre-delete"]}], "its Job api-cleanup runs on delete"),
        (DEPLOY, [{"kind": "Job", "name": "api-migrate", "events": ["pre-install", "pre-upgrade"]}], None),
    ],
)
def test_a_namespace_deletion_is_enough_unless_something_lives_outside_it(manifest: str, hooks: Any, reason: str | None) -> None:
    assert hr.needs_uninstall(release(manifest=manifest, hooks=hooks), NS, scope) == reason


def test_a_local_chart_is_named_by_its_chart_yaml_in_a_directory_or_a_package(tmp_path: Path) -> None:
    chart = tmp_path / "svc"
    chart.mkdir()
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: service\nversion: 0.3.1\n")
    assert (hr.local_chart_id(chart).name, hr.local_chart_id(chart).version) == ("service", "0.3.1")
    package = tmp_path / "service-0.3.1.tgz"
    with tarfile.open(package, "w:gz") as tar:
        body = (chart / "Chart.yaml").read_bytes()
        info = tarfile.TarInfo("service/Chart.yaml")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    assert hr.local_chart_id(package) == hr.local_chart_id(chart)  # the same chart, packaged: the same content too
    with pytest.raises(ConfigError, match="Chart.yaml"):
        hr.local_chart_id(tmp_path / "missing")


@pytest.mark.parametrize(
    ("ref", "name"),
    [("postgresql", "postgresql"), ("bitnami/postgresql", "postgresql"), ("oci://registry.example/charts/redis", "redis")],
)
def test_a_remote_chart_is_named_by_its_last_segment(ref: str, name: str) -> None:
    assert hr.remote_chart_id(ref, "1.0.0") == hr.ChartId(name, "1.0.0")


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ('Error: chart "nope" version "9.9.9" not found in https://charts.example repository', ConfigError),
        ('Error: path "/src/charts/missing" not found', ConfigError),
        ("Error: parse error at (service/templates/deploy.yaml:3): unexpected {{end}}", ConfigError),
        ('Error: execution error at (service/templates/x.yaml:1:4): image.tag is required', ConfigError),
        ("Error: failed pre-install: 1 error occurred:\n\t* job api-migrate failed: BackoffLimitExceeded", NotReadyError),
    ],
)
def test_a_failed_install_is_classified_by_helms_words(text: str, kind: type) -> None:
    e = _install_failure("api", NS, "./charts/service", text)
    assert type(e) is kind
    assert e.exit_code == (ExitCode.BAD_INPUT if kind is ConfigError else ExitCode.NOT_READY)


def chart_dir(tmp_path: Path, *, template: str = "kind: ConfigMap\n", values: str = "replicas: 2\nratio: 1.0\n", extra: dict[str, str] | None = None) -> Path:
    chart = tmp_path / "api"
    (chart / "templates").mkdir(parents=True, exist_ok=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: api\nversion: 1.2.0\n")
    (chart / "values.yaml").write_text(values)
    (chart / "templates" / "cm.yaml").write_text(template)
    (chart / "README.md").write_text("not part of what Helm renders\n")
    for name, text in (extra or {}).items():
        (chart / name).parent.mkdir(parents=True, exist_ok=True)
        (chart / name).write_text(text)
    return chart


def ran(template: str = "kind: ConfigMap\n") -> dict[str, Any]:
    """A record of the chart above as Helm keeps it: templates base64, default values as JSON numbers."""
    rel = release()
    rel["chart"].update({"templates": [{"name": "templates/cm.yaml", "data": base64.b64encode(template.encode()).decode()}],
                         "values": json.loads(json.dumps({"replicas": 2, "ratio": 1}))})
    return rel


def test_a_local_chart_edited_without_a_version_bump_is_upgraded(tmp_path: Path) -> None:
    assert hr.plan(ran(), hr.local_chart_id(chart_dir(tmp_path)), {}) == "keep"
    assert hr.plan(ran(), hr.local_chart_id(chart_dir(tmp_path, template="kind: Secret\n")), {}) == "upgrade"
    assert hr.plan(ran(), hr.local_chart_id(chart_dir(tmp_path, values="replicas: 3\nratio: 1.0\n")), {}) == "upgrade"
    assert hr.plan(ran(), hr.local_chart_id(chart_dir(tmp_path, extra={"templates/more.yaml": "kind: Service\n"})), {}) == "upgrade"


def test_a_local_chart_with_subcharts_is_always_upgraded(tmp_path: Path) -> None:
    """Its record does not keep the subcharts' templates, so it cannot show them unchanged."""
    chart = hr.local_chart_id(chart_dir(tmp_path, extra={"charts/db/Chart.yaml": "apiVersion: v2\nname: db\nversion: 1.0.0\n"}))
    assert chart.content == hr.UNVERIFIABLE and hr.plan(ran(), chart, {}) == "upgrade"
