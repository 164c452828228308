"""SQL seeding into a real PostgreSQL 15 in a pod on the local cluster's real node.

The seeder reaches the database through envci's own port-forward (psycopg -> envci's local relay
-> websocket to the kube-apiserver -> the kubelet's port-forward into the pod), and the tests read
the rows back the same way, once also with `psql` inside the pod. One PostgreSQL pod serves the
module: each test seeds a database of its own in it.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from seedapp import REAL_DB, ClusterPostgres, env_name, environment, load, reporter, write_app  # tests/integration is on sys.path

from envci import state as st
from envci.config.loader import LoadedConfig
from envci.errors import ExitCode
from envci.kube.client import Kube, connect
from envci.seeders import SeedError
from envci.stages.seed import seed

pytestmark = pytest.mark.cluster


@dataclass(frozen=True)
class PgEnvironment:
    """An environment whose `db` component is a running PostgreSQL; tests seed it with their own steps."""

    name: str
    password: str
    kube: Kube
    db: ClusterPostgres

    @property
    def namespace(self) -> str:
        return self.db.namespace

    def config(self, dest: Path, steps: list[dict[str, Any]]) -> LoadedConfig:
        path = write_app(dest, steps, secrets_={"db_password": "PG_PASSWORD"}, components=REAL_DB)
        return load(path, self.name, {"PG_PASSWORD": self.password})

    def seed_history(self) -> list[dict[str, Any]]:
        state = st.load(self.kube, self.namespace)
        assert state is not None
        return [h for h in state.history if h["stage"] == "seed"]


@pytest.fixture(scope="module")
def pg(real_kubeconfig: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgEnvironment]:
    name, password = env_name(), "pg-" + secrets.token_hex(12)
    path = write_app(tmp_path_factory.mktemp("pg"), [], secrets_={"db_password": "PG_PASSWORD"}, components=REAL_DB)
    cfg = load(path, name, {"PG_PASSWORD": password})
    kube = connect(real_kubeconfig)
    with environment(cfg, kube):  # provisioned, and ready: PostgreSQL accepts TCP connections
        yield PgEnvironment(name, password, kube, ClusterPostgres(kube, cfg.identity.namespace, password))


def sql_step(database: str, *files: str) -> dict[str, object]:
    return {"sql": [f"sql/{f}" for f in files], "component": "db", "database": database, "password": "db_password"}


def psql_in_pod(kubeconfig: str, namespace: str, database: str, sql: str) -> str:
    p = subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, "exec", "-n", namespace, "db-0", "-c", "postgres", "--",
         "psql", "-U", "postgres", "-d", database, "-tA", "-c", sql],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def test_sql_seed_via_port_forward_applies_once(real_kubeconfig: str, pg: PgEnvironment, tmp_path: Path) -> None:
    database = pg.db.create_database(f"shop_{secrets.token_hex(3)}")
    cfg = pg.config(tmp_path, [sql_step(database, "001_schema.sql", "002_products.sql")])

    rep, _, err = reporter()
    first = seed(cfg, pg.kube, rep)
    assert first["steps"][0]["applied"] == ["sql/001_schema.sql", "sql/002_products.sql"]
    assert "port-forward 127.0.0.1:" in err.getvalue() and f"{pg.namespace}/db-0:5432 (service db)" in err.getvalue()
    rows = pg.db.query(database, "SELECT sku, name FROM products ORDER BY sku")
    assert rows == [("A-1", "Kettle; electric"), ("B-2", "Teapot"), ("C-3", "Mug")]
    assert pg.db.query(database, "SELECT product_count()") == [(3,)]
    # The rows are in the pod's own database, as psql inside the container sees it.
    assert psql_in_pod(real_kubeconfig, pg.namespace, database, "SELECT string_agg(sku, ',' ORDER BY sku) FROM products") == "A-1,B-2,C-3"

    rep2, _, err2 = reporter()
    second = seed(cfg, pg.kube, rep2)
    assert second["steps"][0]["applied"] == [] and second["steps"][0]["changed"] is False
    assert second["steps"][0]["skipped"] == ["sql/001_schema.sql", "sql/002_products.sql"]
    assert "already applied" in err2.getvalue()
    assert pg.db.query(database, "SELECT count(*) FROM products") == [(3,)]  # not doubled
    history = pg.db.query(database, "SELECT file FROM envci_seed_history ORDER BY file")
    assert history == [("sql/001_schema.sql",), ("sql/002_products.sql",)]

    seeds = pg.seed_history()[-2:]
    assert [h["result"] for h in seeds] == ["succeeded", "succeeded"]
    assert "2 SQL file(s) applied" in seeds[0]["message"] and "2 already applied" in seeds[1]["message"]


def test_failing_statement_is_reported_with_file_and_line_rolled_back_and_retried_once_fixed(pg: PgEnvironment, tmp_path: Path) -> None:
    database = pg.db.create_database(f"broken_{secrets.token_hex(3)}")
    cfg = pg.config(tmp_path, [sql_step(database, "001_schema.sql", "003_broken.sql")])
    rep, _, _ = reporter()
    with pytest.raises(SeedError) as info:
        seed(cfg, pg.kube, rep)
    e = info.value
    # The bad value sits on line 5 of the file; the statement starts on line 3. The words are PostgreSQL's.
    assert e.message.startswith('sql/003_broken.sql:5: invalid input syntax for type integer: "not a number"'), e.message
    assert "SQLSTATE 22P02" in e.message
    assert e.step == 0 and e.kind == "sql" and e.exit_code == ExitCode.NOT_READY
    assert "nothing from this file was kept" in (e.hint or "")
    # One transaction per file: 001 stays applied, nothing of 003 (not even its good first row).
    assert pg.db.query(database, "SELECT count(*) FROM products") == [(0,)]
    assert pg.db.query(database, "SELECT file FROM envci_seed_history") == [("sql/001_schema.sql",)]
    last = pg.seed_history()[-1]
    assert last["result"] == "failed" and "sql/003_broken.sql:5" in last["message"]

    # Fixed and run again (a retried CI job): only the file that failed runs.
    broken = tmp_path / "sql" / "003_broken.sql"
    broken.write_text(broken.read_text().replace("'not a number'", "199"))
    rep2, _, _ = reporter()
    res = seed(cfg, pg.kube, rep2)["steps"][0]
    assert res["applied"] == ["sql/003_broken.sql"] and res["skipped"] == ["sql/001_schema.sql"]
    assert pg.db.query(database, "SELECT sku, price_cents FROM products ORDER BY sku") == [("D-4", 299), ("E-5", 199)]

    # An error PostgreSQL gives no position for is pinned to the statement's code, not the comment above it.
    (tmp_path / "sql" / "004_again.sql").write_text("SELECT 1;\n\n-- The table, by mistake a second time.\nCREATE TABLE products (id int);\n")
    again = pg.config(tmp_path, [sql_step(database, "004_again.sql")])
    with pytest.raises(SeedError) as info:
        seed(again, pg.kube, reporter()[0])
    assert info.value.message.startswith('sql/004_again.sql:4: relation "products" already exists (SQLSTATE 42P07)'), info.value.message
    assert "statement: CREATE TABLE products (id int)" in info.value.message
