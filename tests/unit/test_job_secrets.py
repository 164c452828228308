"""Secrets used by seed and test Jobs reach them through a Secret, never in the Job's spec."""

from __future__ import annotations

import base64
import io
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from fakekube import FakeKube  # tests/ is on sys.path

from envci.config.loader import env_secret_resolver, load_config
from envci.config.model import JobSuite
from envci.identity import CiContext
from envci.kube import jobs
from envci.kube.jobs import env_secret_object, job_object, run_job, secret_key, spec_hash, split_env
from envci.output import Reporter
from envci.seeders import SeedContext
from envci.seeders import job as seed_job
from envci.testing import job as test_job

PASSWORD = "pg-Zq8v3kT1xw"
TOKEN = "tok-5f1c2a9e77"
CONFIG = """\
    name: shop
    secrets:
      db_password: {from_env: DB_PASSWORD}
      api_token: {from_env: API_TOKEN}
    components:
      - name: web
        manifests: [k8s/*.yaml]
    seed:
      - job: migrate
        image: shop:1
        command: [./manage.py, migrate]
        env:
          DATABASE_URL: "postgresql://app:{{ secrets.db_password }}@db/shop"
          MODE: fast
    test:
      - name: e2e
        job:
          image: shop-e2e:1
          command: [pytest]
          junit: /out/*.xml
          env: {API_TOKEN: "{{ secrets.api_token }}", LEVEL: "2"}
"""


@pytest.fixture
def cfg(tmp_path: Path) -> Any:
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    (tmp_path / "envci.yaml").write_text(textwrap.dedent(CONFIG))
    resolver = env_secret_resolver({"DB_PASSWORD": PASSWORD, "API_TOKEN": TOKEN})
    return load_config(tmp_path / "envci.yaml", CiContext(system="local"), env_override="pr-1", resolve_secret=resolver)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def env_of(job: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}


# --- the pure rules ------------------------------------------------------------------------------


def test_split_env_keeps_plain_values_apart_from_secret_ones() -> None:
    assert split_env({"A": "1", "URL": "x"}, {"URL"}) == ({"A": "1"}, {"URL": "x"})


def test_secret_keys_are_the_env_names_when_valid() -> None:
    assert secret_key("DATABASE_URL") == "DATABASE_URL"
    odd = secret_key("MY VAR")
    assert odd.startswith("env-") and odd == secret_key("MY VAR")


def test_the_env_secret_is_labelled_like_every_envci_object() -> None:
    secret = env_secret_object("migrate-env", {"URL": "x:y"}, {"envci.io/seed": "migrate"})
    assert secret["kind"] == "Secret" and secret["type"] == "Opaque"
    assert secret["metadata"]["labels"] == {"envci.io/managed": "true", "app.kubernetes.io/managed-by": "envci", "envci.io/seed": "migrate"}
    assert secret["data"] == {"URL": b64("x:y")}


def test_a_job_references_its_secret_values_and_its_hash_does_not_depend_on_them() -> None:
    a = job_object("load", image="app:1", env={"A": "1", "URL": PASSWORD}, secret_env={"URL": "load-env"})
    assert env_of(a) == {"A": "1", "URL": {"secretKeyRef": {"name": "load-env", "key": "URL"}}}
    assert PASSWORD not in json.dumps(a)
    b = job_object("load", image="app:1", env={"A": "1", "URL": "another"}, secret_env={"URL": "load-env"})
    assert spec_hash(a) == spec_hash(b)  # no secret, not even hashed, in the Job's annotations


# --- where the loaded config says a value read a secret ----------------------------------------


def test_the_config_knows_which_env_values_read_secrets(cfg: Any) -> None:
    assert cfg.secret_keys("seed", 0, "env") == {"DATABASE_URL"}
    assert cfg.secret_keys("test", 0, "job", "env") == {"API_TOKEN"}


def test_a_seed_job_gets_its_secret_env_from_a_secret(cfg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_run_job(kube: Any, namespace: str, obj: dict[str, Any], **kw: Any) -> jobs.JobResult:
        seen.update(job=obj, secret=kw.get("secret"))
        return jobs.JobResult(obj["metadata"]["name"], namespace, "succeeded", "Complete", "")

    monkeypatch.setattr(seed_job, "run_job", fake_run_job)
    ctx = SeedContext(cfg=cfg, kube=None, rep=Reporter(err=io.StringIO()), state=None, index=0)  # type: ignore[arg-type]
    seed_job.run(cfg.spec.seed[0], ctx)
    assert PASSWORD not in json.dumps(seen["job"])
    assert env_of(seen["job"]) == {
        "DATABASE_URL": {"secretKeyRef": {"name": "migrate-env", "key": "DATABASE_URL"}},
        "MODE": "fast",
    }
    secret = seen["secret"]
    assert secret["metadata"]["name"] == "migrate-env"
    assert secret["metadata"]["labels"]["envci.io/managed"] == "true" and secret["metadata"]["labels"]["envci.io/seed"] == "migrate"
    assert secret["data"] == {"DATABASE_URL": b64(f"postgresql://app:{PASSWORD}@db/shop")}


def test_a_test_job_gets_its_secret_env_from_a_secret(cfg: Any) -> None:
    suite = cfg.spec.test[0]
    assert isinstance(suite, JobSuite)
    names = cfg.secret_keys("test", 0, "job", "env")
    obj = test_job.job_manifest(suite, {"ENVCI_NAME": "shop-pr-1"}, env_name="shop-pr-1", secret_names=names)
    assert TOKEN not in json.dumps(obj)
    env = env_of(obj)
    assert env["API_TOKEN"] == {"secretKeyRef": {"name": "envci-test-e2e-env", "key": "API_TOKEN"}}
    assert env["LEVEL"] == "2" and env["ENVCI_NAME"] == "shop-pr-1" and env["ENVCI_JUNIT"] == "/out/*.xml"
    secret = test_job.env_secret(suite, names, env_name="shop-pr-1")
    assert secret is not None and secret["data"] == {"API_TOKEN": b64(TOKEN)}
    assert secret["metadata"]["labels"]["envci.io/test-suite"] == "e2e"
    assert test_job.env_secret(suite, frozenset(), env_name="shop-pr-1") is None


def test_without_secrets_no_secret_object_is_made(cfg: Any) -> None:
    suite = cfg.spec.test[0].model_copy(update={"job": cfg.spec.test[0].job.model_copy(update={"env": {"LEVEL": "2"}})})
    assert test_job.env_secret(suite, {"API_TOKEN"}, env_name="x") is None


# --- run_job applies the Secret before the Job -------------------------------------------------


def test_run_job_applies_the_secret_before_the_job() -> None:
    kube = FakeKube()
    kube.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}})
    kube.at(1, lambda k: k.set_status("Job", "load", "ns", {"conditions": [{"type": "Complete", "status": "True"}]}))
    obj = job_object("load", image="app:1", env={"URL": "x"}, secret_env={"URL": "load-env"})
    secret = env_secret_object("load-env", {"URL": "x"}, {})
    result = run_job(kube, "ns", obj, timeout=10, secret=secret, log_lines=0, clock=kube.monotonic)  # type: ignore[arg-type]
    assert result.succeeded and kube.calls == ["apply Secret/load-env", "apply Job/load"]
