"""A small app for seed tests (tests/data/seed/app): a database and an API, provisioned for real.

`COMPONENTS` suit the simulated cluster (kwok pods, no container runs); `REAL_DB` and `REAL_API`
run real containers on the real node: PostgreSQL 15, and a busybox web server.
"""

from __future__ import annotations

import io
import secrets
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import yaml

from envci.config.loader import LoadedConfig, load_config
from envci.identity import CiContext
from envci.kube.client import Kube
from envci.kube.portforward import forward_service
from envci.output import Reporter
from envci.stages.provision import provision
from envci.stages.teardown import teardown
from envci.stages.wait_ready import wait_ready

APP = Path(__file__).parent.parent / "data" / "seed" / "app"
COMPONENTS: list[dict[str, Any]] = [
    {"name": "db", "manifests": ["k8s/db.yaml"], "wait": {"timeout": "60s"}},
    {"name": "api", "manifests": ["k8s/api.yaml"], "expose": {"port": 80}, "wait": {"timeout": "60s"}},
]
REAL_DB: list[dict[str, Any]] = [{"name": "db", "manifests": ["k8s/postgres.yaml"], "wait": {"timeout": "120s"}}]
"""PostgreSQL 15 whose superuser `postgres` has the password of the secret `db_password`."""
REAL_API: list[dict[str, Any]] = [{"name": "api", "manifests": ["k8s/busybox-api.yaml"], "expose": {"port": 80}, "wait": {"timeout": "60s"}}]


def env_name() -> str:
    return f"sd-{secrets.token_hex(3)}"


def write_app(
    dest: Path, seed: list[dict[str, Any]], *, secrets_: Mapping[str, str] | None = None, components: list[dict[str, Any]] = COMPONENTS
) -> Path:
    """Copy the app into `dest` with an envci.yaml holding `seed`; `secrets_` maps secret name -> env var."""
    shutil.copytree(APP, dest, dirs_exist_ok=True)
    spec: dict[str, Any] = {
        "name": "seedapp",
        "ttl": "1h",
        "namespace": {"quota": None, "limits": None},
        "secrets": {k: {"from_env": v} for k, v in (secrets_ or {}).items()},
        "components": components,
        "seed": seed,
    }
    (dest / "envci.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return dest / "envci.yaml"


def load(path: Path, name: str, env: Mapping[str, str] | None = None) -> LoadedConfig:
    from envci.config.loader import env_secret_resolver

    return load_config(path, CiContext(system="local"), env_override=name, resolve_secret=env_secret_resolver(env or {}))


def reporter() -> tuple[Reporter, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return Reporter("text", out=out, err=err), out, err


@contextmanager
def environment(cfg: LoadedConfig, kube: Kube) -> Iterator[Reporter]:
    """Provision the app and wait until it is ready; tear it down afterwards, whatever happened."""
    rep, _, _ = reporter()
    try:
        provision(cfg, kube, rep)
        wait_ready(cfg, kube, rep)
        yield rep
    finally:
        teardown(kube, rep, namespace=cfg.identity.namespace, name=cfg.identity.name, timeout=60)


def db_pod(kube: Kube, namespace: str) -> str:
    pods = kube.list("v1", "Pod", namespace, label_selector="app=db")
    assert pods, "no db pod"
    return str(pods[0]["metadata"]["name"])


@dataclass(frozen=True)
class ClusterPostgres:
    """The PostgreSQL of `REAL_DB` in an environment, reached the way the SQL seeder reaches it:
    through envci's own port-forward to the `db` Service (the kubelet's port-forward on the real node)."""

    kube: Kube
    namespace: str
    password: str
    user: str = "postgres"

    @contextmanager
    def connection(self, dbname: str = "postgres") -> Iterator[psycopg.Connection[Any]]:
        with forward_service(self.kube, self.namespace, "db") as pf:
            with psycopg.connect(host=pf.host, port=pf.local_port, user=self.user, password=self.password, dbname=dbname,
                                 autocommit=True, connect_timeout=10) as conn:
                yield conn

    def create_database(self, name: str) -> str:
        with self.connection() as conn:
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
        return name

    def query(self, dbname: str, sql: str) -> list[tuple[Any, ...]]:
        with self.connection(dbname) as conn:
            return list(conn.execute(sql.encode()))
