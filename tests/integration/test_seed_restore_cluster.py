"""`restore:` from another environment on the local cluster (simulated nodes).

Two environments are provisioned for real; the `db` pod of each port-forwards (kwok's port-forward,
through the kube-apiserver) to a database of the session's loopback PostgreSQL. envci finds the
source environment by its labels and port-forwards to both as in CI, with pg_dump reading one side.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
from seedapp import db_pod, env_name, environment, load, reporter, write_app  # tests/integration is on sys.path
from servers import Postgres

from envci.errors import NotReadyError
from envci.kube.client import connect
from envci.seeders import restore
from envci.stages.seed import seed

pytestmark = pytest.mark.cluster


def test_restore_from_another_environment_through_the_api_servers_port_forward(
    kubeconfig: str, postgres: Postgres, pod_port_forward: Callable[..., None], tmp_path: Path,
) -> None:
    if restore.pg_tool("pg_dump") is None:
        pytest.skip("pg_dump is not installed (scripts/ci-deps/seed.sh installs the PostgreSQL client programs)")
    kube = connect(kubeconfig)
    src_db, dst_db = (postgres.create_database(f"{p}_{secrets.token_hex(3)}") for p in ("src", "dst"))
    names = {"db_password": "PG_PASSWORD"}
    values = {"PG_PASSWORD": postgres.password}
    sql_step = {"sql": ["sql/001_schema.sql", "sql/002_products.sql"], "component": "db", "database": src_db, "password": "db_password"}
    source = load(write_app(tmp_path / "main", [sql_step], secrets_=names), env_name(), values)
    restore_step = {"restore": {"environment": source.identity.name, "database": src_db}, "component": "db", "database": dst_db,
                    "password": "db_password", "allow": [f"env:{source.identity.name}"]}
    target = load(write_app(tmp_path / "pr", [restore_step], secrets_=names), env_name(), values)

    with environment(source, kube), environment(target, kube):
        for cfg in (source, target):
            ns = cfg.identity.namespace
            pod_port_forward(ns, db_pod(kube, ns), {5432: (postgres.host, postgres.port)})
        seed(source, kube, reporter()[0])

        rep, _, err = reporter()
        res = seed(target, kube, rep)["steps"][0]
        assert (res["restored"], res["rows"], res["source"]) == (True, 3, f"env:{source.identity.name}")
        assert f"-> {source.identity.namespace}/db-0:5432 (service db of environment {source.identity.name})" in err.getvalue()
        assert postgres.query(dst_db, "SELECT sku FROM products ORDER BY sku") == [("A-1",), ("B-2",), ("C-3",)]
        assert postgres.query(dst_db, "SELECT file FROM envci_seed_history") == [(f"env:{source.identity.name}",)]
        assert seed(target, kube, reporter()[0])["steps"][0]["restored"] is False

    # Once the source is gone, a new database cannot be restored from it: not ready, not a crash.
    other = load(write_app(tmp_path / "pr2", [{**restore_step, "database": postgres.create_database(f"o_{secrets.token_hex(3)}")}],
                           secrets_=names), env_name(), values)
    with environment(other, kube):
        with pytest.raises(NotReadyError, match=f"environment {source.identity.name}, to restore from, does not exist"):
            seed(other, kube, reporter()[0])
