"""`restore:` steps and `copy_from:` in envci.yaml: what is refused when the file loads (exit 2, with
file, line, field and hint), before any stage reads a byte of a source."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from envci.config.loader import load_config
from envci.config.model import RestoreSeed, S3Seed
from envci.errors import ConfigErrors, ExitCode
from envci.identity import CiContext

CTX = CiContext(system="local", branch="main")
HEAD = """\
name: shop
values: {base: main}
secrets:
  db_password: {from_env: DB_PASSWORD}
  snapshot_url: {from_env: SNAPSHOT_URL}
components:
  - name: db
    manifests: [k8s/*.yaml]
seed:
"""


def write(tmp_path: Path, steps: str) -> Path:
    (tmp_path / "k8s").mkdir(exist_ok=True)
    (tmp_path / "k8s" / "db.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    (tmp_path / "fixtures").mkdir(exist_ok=True)
    (tmp_path / "snap").mkdir(exist_ok=True)
    (tmp_path / "snap" / "shop.dump").write_bytes(b"PGDMP")
    path = tmp_path / "envci.yaml"
    path.write_text(HEAD + textwrap.indent(textwrap.dedent(steps), "  "))
    return path


def errors(tmp_path: Path, steps: str) -> list[tuple[str | None, int | None, str, str]]:
    with pytest.raises(ConfigErrors) as info:
        load_config(write(tmp_path, steps), CTX)
    assert info.value.exit_code == ExitCode.BAD_INPUT
    return [(e.field, e.line, e.detail, e.hint or "") for e in info.value.errors]


def test_restore_steps_that_load(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, """\
        - restore: snap/shop.dump
          component: db
        - restore: {environment: "shop-{{ values.base }}", database: shop}
          component: db
          allow: ["env:shop-main"]
        - restore: {url_secret: snapshot_url}
          url: postgresql://app@localhost/shop
          allow: ["postgres://staging-db.internal/shop", "env:shop-*"]
        - s3: fixtures
          copy_from: s3://golden/fixtures/v1
          allow: [s3://golden/fixtures]
    """), CTX)
    file, env, url, copy = cfg.spec.seed
    assert isinstance(file, RestoreSeed) and file.source.file == "snap/shop.dump" and file.timeout == "30m"
    assert isinstance(env, RestoreSeed) and env.source.environment == "shop-main" and env.source.database == "shop"
    assert isinstance(url, RestoreSeed) and url.source.url_secret == "snapshot_url"
    assert isinstance(copy, S3Seed) and copy.allow == ["s3://golden/fixtures"]


@pytest.mark.parametrize(("steps", "field", "line", "words", "hint"), [
    # The source is checked against the list once templates are rendered: `values.base` is `main` here.
    ("""\
     - restore: {environment: "shop-{{ values.base }}"}
       component: db
       allow: ["env:shop-pr-*"]
     """, "seed[0].allow", 12, "copying from env:shop-main is not allowed: no entry of `allow` covers it (allowed: env:shop-pr-*)",
     'add "env:shop-main" to this step\'s `allow:` list'),
    ("""\
     - restore: {environment: shop-prod}
       component: db
     """, "seed[0].allow", 10, "copying from env:shop-prod is not allowed: no entry of `allow` covers it (allowed: none)", "keep production"),
    ("""\
     - restore: {environment: shop-main}
       component: db
       allow: ["env:{{ values.base }}"]
     """, "seed[0].allow", 12, "is a template; write the source out literally", "env:NAME"),
    ("""\
     - restore: {url_secret: snapshot_url}
       component: db
     """, "seed[0].allow", 10, "a `url_secret` source needs `allow:`", "postgresql://staging-db.internal:5432/shop"),
    ("""\
     - restore: {url_secret: snapshot_url}
       component: db
       allow: ["postgresql://admin:hunter2@db.internal/shop", "s3://golden"]
     """, "seed[0].allow", 12, "holds a user, a password or options", "postgresql://HOST[:PORT][/DATABASE]"),
    ("""\
     - restore: snap/shop.dump
       component: db
       allow: ["env:shop-main"]
     """, "seed[0].allow", 12, "this step copies from none (a dump file is in the repository, reviewed like code)", "remove `allow`"),
    ("""\
     - restore: snap/missing.dump
       component: db
     """, "seed[0].restore", 10, "file 'snap/missing.dump' does not exist", "relative"),
    ("""\
     - restore: {file: snap/shop.dump, environment: shop-main}
       component: db
     """, "seed[0].restore", 10, "give exactly one of `file`, `environment` or `url_secret`", "restore: {environment: shop-main}"),
    ("""\
     - restore: {url_secret: snapshot_url, database: shop}
       component: db
       allow: ["postgresql://db.internal"]
     """, "seed[0].restore.database", 10, "and this source is not an environment", "names its own host"),
    ("""\
     - restore: {environment: shop-main}
       url: postgresql://app@localhost/shop
       allow: ["env:shop-main"]
     """, "seed[0].restore", 10, "nothing says which database of environment shop-main to dump", "`component:` or `service:`"),
    ("""\
     - restore: {url_secret: snapshot_ulr}
       component: db
       allow: ["postgresql://db.internal"]
     """, "seed[0].restore.url_secret", 10, "names the secret 'snapshot_ulr'", "defined: db_password, snapshot_url"),
    ("""\
     - restore: {environment: shop-main, password: main_pw}
       component: db
       allow: ["env:shop-main"]
     """, "seed[0].restore.password", 10, "names the secret 'main_pw'", "add it under `secrets:`"),
    ("""\
     - restore: {environment: Shop_Main}
       component: db
     """, "seed[0].restore.environment", 10, "'Shop_Main' is not an environment name", "envci list"),
    ("""\
     - s3: fixtures
       copy_from: s3://prod-assets/images
       allow: [s3://golden]
     """, "seed[0].allow", 12, "copying from s3://prod-assets/images is not allowed: no entry of `allow` covers it (allowed: s3://golden)",
     'add "s3://prod-assets/images"'),
    ("""\
     - s3: fixtures
       copy_from: s3://golden/v1
     """, "seed[0].allow", 10, "copying from s3://golden/v1 is not allowed", "keep production sources off the list"),
    ("""\
     - s3: fixtures
       allow: [s3://golden]
     """, "seed[0].allow", 11, "this step copies from none (it uploads a folder)", "remove `allow`"),
    ("""\
     - s3: fixtures
       copy_from: s3://golden/v1
       allow: ["env:shop-main"]
     """, "seed[0].allow", 12, "entry 'env:shop-main' is not a source this step reads; use s3://BUCKET[/PREFIX]", "s3://BUCKET[/PREFIX]"),
    ("""\
     - restore: 5
       component: db
     """, "seed[0].restore", 10, "`restore` is the path of a dump file, or a mapping", "reference"),
])
def test_refused_when_envci_yaml_loads(tmp_path: Path, steps: str, field: str, line: int, words: str, hint: str) -> None:
    found = errors(tmp_path, steps)
    assert len(found) == 1, found
    ((got_field, got_line, detail, got_hint),) = found
    assert (got_field, got_line) == (field, line) and words in detail and hint in got_hint, found[0]


def test_a_templated_copy_from_is_checked_once_rendered(tmp_path: Path) -> None:
    steps = """\
        - s3: fixtures
          copy_from: "s3://{{ values.base }}-assets/v1"
          allow: [s3://golden]
    """
    ((field, _, detail, _),) = errors(tmp_path, steps)
    assert field == "seed[0].allow" and "copying from s3://main-assets/v1 is not allowed" in detail
