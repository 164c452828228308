"""Configuration errors that need no cluster are refused when envci.yaml loads (so by `validate`),
each with file, line, field and a hint, instead of failing a stage after it changed the cluster."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from envci.cli import main
from envci.config.loader import load_config
from envci.errors import ConfigError, ConfigErrors, ExitCode
from envci.identity import CiContext

CTX = CiContext(system="local", branch="main")
HEAD = """\
    name: shop
    secrets:
      token: {from_env: SHOP_TOKEN}
    components:
      - name: db
        helm: {chart: ./chart}
      - name: web
        manifests: [k8s/*.yaml]
"""


def write(tmp_path: Path, body: str) -> Path:
    (tmp_path / "chart").mkdir(exist_ok=True)
    (tmp_path / "chart" / "Chart.yaml").write_text("apiVersion: v2\nname: db\nversion: 0.1.0\n")
    (tmp_path / "k8s").mkdir(exist_ok=True)
    (tmp_path / "k8s" / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    (tmp_path / "fixtures").mkdir(exist_ok=True)
    (tmp_path / "a.sql").write_text("select 1;\n")
    p = tmp_path / "envci.yaml"
    p.write_text(textwrap.dedent(HEAD) + textwrap.dedent(body))
    return p


def problems(tmp_path: Path, body: str) -> list[ConfigError]:
    p = write(tmp_path, body)
    with pytest.raises(ConfigError) as ei:
        load_config(p, CTX)
    errs = ei.value.errors if isinstance(ei.value, ConfigErrors) else [ei.value]
    for e in errs:
        assert e.file == str(p) and e.line and e.field and e.hint, str(e)
    return errs


def one(tmp_path: Path, body: str) -> ConfigError:
    errs = problems(tmp_path, body)
    assert len(errs) == 1, [str(e) for e in errs]
    return errs[0]


@pytest.mark.parametrize(("step", "field", "line"), [
    ("- sql: [a.sql]\n  component: dbb\n", "seed[0].component", 11),
    ("- http: /healthz\n  component: api\n", "seed[0].component", 11),
    ("- exec: [ls]\n  component: cache\n", "seed[0].component", 11),
    ("- job: migrate\n  image_from: wbe\n", "seed[0].image_from", 11),
])
def test_a_seed_step_naming_no_component(tmp_path: Path, step: str, field: str, line: int) -> None:
    e = one(tmp_path, "seed:\n" + textwrap.indent(step, "  "))
    assert (e.field, e.line) == (field, line)
    assert "unknown component" in e.detail and "db, web" in (e.hint or "")


def test_a_job_seed_with_both_image_and_image_from(tmp_path: Path) -> None:
    e = one(tmp_path, "seed:\n  - job: migrate\n    image: migrate:1\n    image_from: web\n")
    assert (e.field, e.line) == ("seed[0].image_from", 12)
    assert "not both" in e.detail and "image_from: COMPONENT" in (e.hint or "")


def test_a_job_seed_with_neither_image_nor_image_from(tmp_path: Path) -> None:
    e = one(tmp_path, "seed:\n  - job: migrate\n")
    assert (e.field, e.line) == ("seed[0]", 10) and "needs `image` or `image_from`" in e.detail


def test_a_job_seed_whose_name_is_no_job_name(tmp_path: Path) -> None:
    e = one(tmp_path, "seed:\n  - job: Load_Fixtures\n    image: x\n")
    assert (e.field, e.line) == ("seed[0].job", 10) and "DNS-1123" in (e.hint or "")


@pytest.mark.parametrize(("suite", "words", "hint"), [
    ("helm_test: nope", "unknown component 'nope'", "helm components: db"),
    ("helm_test: web", "installed from manifests", "needs a Helm release"),
])
def test_a_helm_test_suite_naming_no_helm_component(tmp_path: Path, suite: str, words: str, hint: str) -> None:
    e = one(tmp_path, f"test:\n  - name: chart\n    {suite}\n")
    assert (e.field, e.line) == ("test[0].helm_test", 11)
    assert words in e.detail and hint in (e.hint or "")


@pytest.mark.parametrize(("job", "field", "words"), [
    ("{command: [run]}", "test[0].job.image", "required field is missing"),
    ("{image: e2e, imagee: e2e}", "test[0].job.imagee", "unknown key"),
    ("{image: e2e, command: 5}", "test[0].job.command", "valid list or a valid string"),
    ("{image: e2e, args: run}", "test[0].job.args", "valid list"),
    ("{image: e2e, env: [A]}", "test[0].job.env", "valid dictionary"),
    ("{image: e2e, junit: out/junit.xml}", "test[0].job.junit", "not an absolute path"),
    ("{image: e2e, args: [--all], junit: /out/j.xml}", "test[0].job.junit", "`junit` needs `command`"),
    ("{image: e2e, backoff_limit: -1}", "test[0].job.backoff_limit", "greater than or equal to 0"),
    ("{image: ''}", "test[0].job.image", "`image` is empty"),
])
def test_malformed_job_suite_fields(tmp_path: Path, job: str, field: str, words: str) -> None:
    e = one(tmp_path, f"test:\n  - name: e2e\n    job: {job}\n")
    assert e.field == field and e.line == 11 and words in e.detail, str(e)


def test_a_job_suite_reads_env_numbers_and_booleans_as_text(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "test:\n  - name: e2e\n    job: {image: e2e, env: {WORKERS: 4, DEBUG: true}}\n"), CTX)
    assert cfg.spec.test[0].job.env == {"WORKERS": "4", "DEBUG": "true"}  # type: ignore[union-attr]


@pytest.mark.parametrize(("step", "field", "words"), [
    ("- sql: [a.sql]\n  component: db\n  password: db_pw\n", "seed[0].password", "names the secret 'db_pw'"),
    ("- s3: fixtures\n  access_key: token\n  secret_key: s3_secret\n", "seed[0].secret_key", "names the secret 's3_secret'"),
    ("- s3: fixtures\n  access_key: token\n", "seed[0].secret_key", "both `access_key` and `secret_key`"),
    ("- s3: fixtures\n  bucket: My_Bucket\n", "seed[0].bucket", "bucket name 'My_Bucket'"),
    ("- s3: fixtures\n  copy_from: https://example.com/x\n", "seed[0].copy_from", "not an s3://bucket/prefix URL"),
    ("- sql: [a.sql]\n", "seed[0]", "needs `component`, `service` or `url`"),
    ("- http: /api/seed\n", "seed[0].http", "not an http(s):// URL"),
    ("- exec: []\n  component: db\n", "seed[0].exec", "the command is empty"),
])
def test_other_seed_steps_that_would_fail_only_at_run_time(tmp_path: Path, step: str, field: str, words: str) -> None:
    e = one(tmp_path, "seed:\n" + textwrap.indent(step, "  "))
    assert e.field == field and words in e.detail, str(e)


def test_templated_values_are_checked_once_rendered(tmp_path: Path) -> None:
    body = "values: {endpoint: 'http://minio:9000'}\nseed:\n  - http: '{{ values.endpoint }}/seed'\n"
    assert load_config(write(tmp_path, body), CTX).spec.seed[0].http == "http://minio:9000/seed"  # type: ignore[union-attr]
    body = "values: {endpoint: 'minio:9000'}\nseed:\n  - http: '{{ values.endpoint }}/seed'\n"
    e = one(tmp_path, body)
    assert e.field == "seed[0].http" and "'minio:9000/seed' is not an http(s):// URL" in e.detail


@pytest.mark.parametrize(("where", "field"), [
    ("seed:\n  - job: load\n    image: x\n    command: [load, --token, '{{ secrets.token }}']\n", "seed[0].command[2]"),
    ("test:\n  - name: e2e\n    job: {image: x, command: 'run --token {{ secrets.token }}'}\n", "test[0].job.command"),
    ("test:\n  - name: e2e\n    job: {image: x, args: ['{{ secrets.token }}']}\n", "test[0].job.args[0]"),
])
def test_a_secret_on_a_jobs_command_line_is_refused(tmp_path: Path, where: str, field: str) -> None:
    e = one(tmp_path, where)
    assert e.field == field and "puts the secret token on a Job's command line" in e.detail
    assert "env:" in (e.hint or "") and "$TOKEN" in (e.hint or "")


def test_a_secret_in_a_jobs_env_is_allowed_and_recorded(tmp_path: Path) -> None:
    p = write(tmp_path, "seed:\n  - job: load\n    image: x\n    command: [load]\n    env: {TOKEN: 'Bearer {{ secrets.token }}', MODE: fast}\n")
    cfg = load_config(p, CTX)  # the placeholder resolver: validate's view
    assert cfg.secret_uses == {("seed", 0, "env", "TOKEN"): frozenset({"token"})}


def test_all_problems_come_at_once_in_file_order(tmp_path: Path) -> None:
    errs = problems(tmp_path, """\
        seed:
          - job: a
            image_from: nope
          - sql: [a.sql]
            component: gone
        test:
          - name: chart
            helm_test: nope
    """)
    assert [e.field for e in errs] == ["seed[0].image_from", "seed[1].component", "test[0].helm_test"]
    assert [e.line for e in errs] == sorted(e.line or 0 for e in errs)


def test_validate_refuses_them_with_exit_2_and_says_nothing_changed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = write(tmp_path, "seed:\n  - job: migrate\n    image: m\n    image_from: web\n")
    assert main(["validate", "--config", str(p), "--env", "x"]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert "1 problem(s) in the configuration; nothing was changed" in err
    assert f"{p}:12: seed[0].image_from: give `image` or `image_from`, not both" in err
    p = write(tmp_path, "seed:\n  - job: migrate\n    image_from: wbe\ntest:\n  - name: chart\n    helm_test: nope\n")
    assert main(["validate", "--config", str(p), "--env", "x"]) == ExitCode.BAD_INPUT
    err = capsys.readouterr().err
    assert "2 problem(s) in the configuration; nothing was changed" in err
    assert f"{p}:11: seed[0].image_from: unknown component 'wbe'" in err
    assert f"{p}:14: test[0].helm_test: unknown component 'nope'" in err
    assert err.count("hint:") == 2
