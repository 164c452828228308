from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from envci.config.loader import env_secret_resolver, load_config
from envci.errors import ConfigError, ConfigErrors
from envci.identity import CiContext

CTX = CiContext(system="local", branch="feature/x", sha="deadbeef", pr="5", build="9", repo="r")


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "charts" / "web" / "templates").mkdir(parents=True)
    (tmp_path / "charts" / "web" / "Chart.yaml").write_text("apiVersion: v2\nname: web\nversion: 0.1.0\n")
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    p = tmp_path / "envci.yaml"
    p.write_text(textwrap.dedent(text))
    return p


GOOD = """\
    name: shop
    ttl: 2h
    values: {replicas: 2}
    secrets:
      token: {from_env: SHOP_TOKEN}
    components:
      - name: web
        helm:
          chart: ./charts/web
          values:
            replicas: "{{ values.replicas }}"
            host: "{{ env.name }}.example.com"
            sha: "{{ ci.sha }}"
        expose: {port: 8080}
      - name: api
        manifests: [k8s/*.yaml]
        depends_on: [web]
"""


def errors_of(exc: ConfigError) -> list[ConfigError]:
    return exc.errors if isinstance(exc, ConfigErrors) else [exc]


def test_good_config_renders(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD), CTX)
    web = cfg.spec.component("web")
    assert web.helm and web.helm.values["host"] == "shop-pr-5.example.com"
    assert web.helm.values["sha"] == "deadbeef"
    assert cfg.identity.namespace == "envci-shop-pr-5"
    assert cfg.spec.ttl_delta.total_seconds() == 7200


@pytest.mark.parametrize(
    "mutate, field, line, words",
    [
        (lambda t: t.replace("    ttl: 2h", "    ttl: 2h\n    colour: blue"), "colour", 3, "unknown key"),
        (lambda t: t.replace("expose: {port: 8080}", "expose: {port: lots}"), "components[0].expose.port", 14, "integer"),
        (lambda t: t.replace("./charts/web", "./charts/nope"), "components[0].helm.chart", 9, "does not exist"),
        (lambda t: t.replace("{{ ci.sha }}", "{{ ci.nope }}"), "components[0].helm.values.sha", 13, "undefined"),
        (lambda t: t.replace("{{ ci.sha }}", "{{ ''.__class__.__mro__ }}"), "components[0].helm.values.sha", 13, "sandbox"),
        (lambda t: t.replace("./charts/web", "../../etc"), "components[0].helm.chart", 9, "outside the repository"),
        (lambda t: t.replace("depends_on: [web]", "depends_on: [db]"), "components[1].depends_on[0]", 17, "unknown component"),
    ],
)
def test_bad_config_names_file_line_field(tmp_path: Path, mutate, field: str, line: int, words: str) -> None:  # type: ignore[no-untyped-def]
    p = write(tmp_path, mutate(GOOD))
    with pytest.raises(ConfigError) as ei:
        load_config(p, CTX)
    errs = errors_of(ei.value)
    match = [e for e in errs if e.field == field]
    assert match, [str(e) for e in errs]
    assert match[0].line == line and match[0].file == str(p)
    assert words in str(match[0])


def test_reserved_labels_refused(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD + "    namespace:\n      labels: {envci.io/managed: 'false'}\n")
    with pytest.raises(ConfigError) as ei:
        load_config(p, CTX)
    assert "reserved" in str(ei.value)


def test_dependency_cycle(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD.replace("        expose: {port: 8080}", "        expose: {port: 8080}\n            depends_on: [api]"))
    with pytest.raises(ConfigError) as ei:
        load_config(p, CTX)
    assert "cycle" in str(ei.value)


def test_secret_from_env_is_resolved_and_redacted(tmp_path: Path) -> None:
    from envci.redact import redact

    p = write(tmp_path, GOOD.replace("{{ ci.sha }}", "{{ secrets.token }}"))
    cfg = load_config(p, CTX, resolve_secret=env_secret_resolver({"SHOP_TOKEN": "s3cr3t-value"}))
    assert cfg.spec.component("web").helm.values["sha"] == "s3cr3t-value"  # type: ignore[union-attr]
    assert redact("token is s3cr3t-value") == "token is ***"


def test_missing_secret_env_is_clear(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD.replace("{{ ci.sha }}", "{{ secrets.token }}"))
    with pytest.raises(ConfigError) as ei:
        load_config(p, CTX, resolve_secret=env_secret_resolver({}))
    assert "SHOP_TOKEN" in str(ei.value)


def test_inline_secret_value_shape_refused(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD.replace("token: {from_env: SHOP_TOKEN}", "token: hunter2"))
    with pytest.raises(ConfigError):
        load_config(p, CTX)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        load_config(tmp_path / "nope.yaml", CTX)
    assert "not found" in str(ei.value)
