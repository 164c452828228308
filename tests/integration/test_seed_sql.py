"""SQL seeding through a real port-forward (envci's own, over the API server) into a real PostgreSQL.

kwok routes port-forwards of the simulated `db-0` pod to the test's local PostgreSQL, so the bytes
take the same path as against a real cluster: psycopg -> envci's local relay -> websocket to the
kube-apiserver -> kwok -> PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from seedapp import db_pod, env_name, environment, load, reporter, write_app
from servers import Postgres  # tests/integration is on sys.path

from envci import state as st
from envci.errors import ExitCode
from envci.kube.client import connect
from envci.seeders import SeedError
from envci.stages.seed import seed

pytestmark = pytest.mark.cluster


def sql_step(database: str, *files: str) -> dict[str, object]:
    return {"sql": [f"sql/{f}" for f in files], "component": "db", "database": database, "password": "db_password"}


def test_sql_seed_via_port_forward_applies_once(
    kubeconfig: str, postgres: Postgres, pod_port_forward: Callable[..., None], tmp_path: Path
) -> None:
    database = postgres.create_database(f"shop_{tmp_path.name[-8:].replace('-', '_')}")
    path = write_app(tmp_path, [sql_step(database, "001_schema.sql", "002_products.sql")], secrets_={"db_password": "PG_PASSWORD"})
    cfg = load(path, env_name(), {"PG_PASSWORD": postgres.password})
    kube = connect(kubeconfig)
    with environment(cfg, kube):
        ns = cfg.identity.namespace
        pod_port_forward(ns, db_pod(kube, ns), {5432: (postgres.host, postgres.port)})

        rep, out, err = reporter()
        first = seed(cfg, kube, rep)
        assert first["steps"][0]["applied"] == ["sql/001_schema.sql", "sql/002_products.sql"]
        assert "port-forward 127.0.0.1:" in err.getvalue() and f"{ns}/db-0:5432 (service db)" in err.getvalue()
        rows = postgres.query(database, "SELECT sku, name FROM products ORDER BY sku")
        assert rows == [("A-1", "Kettle; electric"), ("B-2", "Teapot"), ("C-3", "Mug")]
        assert postgres.query(database, "SELECT product_count()") == [(3,)]

        rep2, _, err2 = reporter()
        second = seed(cfg, kube, rep2)
        assert second["steps"][0]["applied"] == [] and second["steps"][0]["changed"] is False
        assert second["steps"][0]["skipped"] == ["sql/001_schema.sql", "sql/002_products.sql"]
        assert "already applied" in err2.getvalue()
        assert postgres.query(database, "SELECT count(*) FROM products") == [(3,)]  # not doubled
        history = postgres.query(database, "SELECT file FROM envci_seed_history ORDER BY file")
        assert history == [("sql/001_schema.sql",), ("sql/002_products.sql",)]

        state = st.load(kube, ns)
        assert state is not None
        seeds = [h for h in state.history if h["stage"] == "seed"]
        assert [h["result"] for h in seeds] == ["succeeded", "succeeded"]
        assert "2 SQL file(s) applied" in seeds[0]["message"] and "2 already applied" in seeds[1]["message"]


def test_failing_statement_is_reported_with_file_and_line_and_rolled_back(
    kubeconfig: str, postgres: Postgres, pod_port_forward: Callable[..., None], tmp_path: Path
) -> None:
    database = postgres.create_database(f"broken_{tmp_path.name[-8:].replace('-', '_')}")
    path = write_app(tmp_path, [sql_step(database, "001_schema.sql", "003_broken.sql")], secrets_={"db_password": "PG_PASSWORD"})
    cfg = load(path, env_name(), {"PG_PASSWORD": postgres.password})
    kube = connect(kubeconfig)
    with environment(cfg, kube):
        ns = cfg.identity.namespace
        pod_port_forward(ns, db_pod(kube, ns), {5432: (postgres.host, postgres.port)})
        rep, _, _ = reporter()
        with pytest.raises(SeedError) as info:
            seed(cfg, kube, rep)
        e = info.value
        # The bad value sits on line 5 of the file; the statement starts on line 3.
        assert e.message.startswith("sql/003_broken.sql:5: invalid input syntax for type integer"), e.message
        assert "SQLSTATE 22P02" in e.message
        assert e.step == 0 and e.kind == "sql" and e.exit_code == ExitCode.NOT_READY
        assert "nothing from this file was kept" in (e.hint or "")
        # One transaction per file: 001 stays applied, nothing of 003 (not even its good first row).
        assert postgres.query(database, "SELECT count(*) FROM products") == [(0,)]
        assert postgres.query(database, "SELECT file FROM envci_seed_history") == [("sql/001_schema.sql",)]
        state = st.load(kube, ns)
        assert state is not None and state.history[-1]["stage"] == "seed" and state.history[-1]["result"] == "failed"
        assert "sql/003_broken.sql:5" in state.history[-1]["message"]
