"""`restore:` seed steps against a real PostgreSQL, with real pg_dump and pg_restore.

The environments are records in the in-memory cluster of tests/fakekube.py, whose `db` pods
port-forward to databases of the session's loopback PostgreSQL (servers.py): the seeder's whole
path runs as in CI, through envci's own port-forward relay to the environment being seeded and to
the environment copied from. test_seed_restore_cluster.py does the same on the local cluster.
"""

from __future__ import annotations

import gzip
import json
import os
import secrets
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fakekube import FakeKube  # tests/ is on sys.path
from seedapp import load, reporter, write_app  # tests/integration is on sys.path
from servers import Postgres

from envci import cli
from envci.config.loader import LoadedConfig
from envci.errors import ConfigError, ConfigErrors, ExitCode, NotReadyError
from envci.invocation import Invocation
from envci.seeders import SeedError, restore
from envci.stages.seed import seed


@pytest.fixture(scope="module", autouse=True)
def pg_programs() -> None:
    for name in ("pg_dump", "pg_restore"):
        if restore.pg_tool(name) is None:
            pytest.skip(f"{name} is not installed (scripts/ci-deps/seed.sh installs the PostgreSQL client programs)")


@dataclass(frozen=True)
class Env:
    name: str
    namespace: str


def add_env(kube: FakeKube, pg: Postgres, name: str | None = None) -> Env:
    """An environment whose `db` Service leads to a ready pod that port-forwards to `pg`."""
    name = name or f"rs-{secrets.token_hex(3)}"
    ns = f"envci-{name}"
    kube.add({"apiVersion": "v1", "kind": "Namespace",
              "metadata": {"name": ns, "labels": {"envci.io/managed": "true", "envci.io/env": name}}})
    kube.add({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": ns},
              "spec": {"selector": {"app": "db"}, "ports": [{"port": 5432, "targetPort": 5432}]}}, ns)
    kube.add({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "db-0", "namespace": ns, "labels": {"app": "db"}},
              "spec": {"containers": [{"name": "postgres", "image": "postgres:15"}]},
              "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}, ns)
    kube.forwards[(ns, "db-0", 5432)] = (pg.host, pg.port)
    return Env(name, ns)


def config(dest: Path, env: Env, pg: Postgres, steps: list[dict[str, Any]], extra_env: dict[str, str] | None = None) -> LoadedConfig:
    names = {"db_password": "PG_PASSWORD", **{k.lower(): k for k in extra_env or {}}}
    path = write_app(dest, steps, secrets_=names)
    return load(path, env.name, {"PG_PASSWORD": pg.password, **(extra_env or {})})


def into(database: str, restore_: Any, **more: Any) -> dict[str, Any]:
    return {"restore": restore_, "component": "db", "database": database, "password": "db_password", **more}


def line_of(path: Path, start: str) -> int:
    return next(i for i, text in enumerate(path.read_text().splitlines(), 1) if text.strip().startswith(start))


def pg_dump(pg: Postgres, database: str, out: Path, *args: str) -> Path:
    subprocess.run(
        [str(restore.pg_tool("pg_dump")), "-h", pg.host, "-p", str(pg.port), "-U", pg.user, "-d", database, "-f", str(out), *args],
        env={**os.environ, "PGPASSWORD": pg.password}, check=True, capture_output=True, timeout=60,
    )
    return out


def shop(pg: Postgres) -> str:
    """A database with the seed app's shop in it (a table with a sequence, a function, three rows)."""
    database = pg.create_database(f"shop_{secrets.token_hex(3)}")
    app = Path(__file__).parent.parent / "data" / "seed" / "app" / "sql"
    for name in ("001_schema.sql", "002_products.sql"):
        run_sql(pg, database, (app / name).read_text())
    return database


def run_sql(pg: Postgres, database: str, text: str) -> None:
    with psycopg.connect(pg.conninfo(database), autocommit=True) as conn:
        conn.execute(text.encode())


def products(pg: Postgres, database: str) -> list[tuple[Any, ...]]:
    return pg.query(database, "SELECT id, sku, name, price_cents FROM products ORDER BY id")


def tables(pg: Postgres, database: str) -> list[str]:
    return [r[0] for r in pg.query(database, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]


SHOP = [(1, "A-1", "Kettle; electric", 2999), (2, "B-2", "Teapot", 1999), (3, "C-3", "Mug", 499)]


def test_restore_from_another_environment_copies_its_database_once(postgres: Postgres, tmp_path: Path) -> None:
    kube = FakeKube()
    source, target = add_env(kube, postgres), add_env(kube, postgres)
    src_db, dst_db = postgres.create_database(f"src_{secrets.token_hex(3)}"), postgres.create_database(f"dst_{secrets.token_hex(3)}")
    # The source was seeded by envci too, so it holds envci's history table: the copy must not inherit it.
    src_cfg = config(tmp_path / "src", source, postgres,
                     [{"sql": ["sql/001_schema.sql", "sql/002_products.sql"], "component": "db", "database": src_db, "password": "db_password"}])
    seed(src_cfg, kube, reporter()[0])

    step = into(dst_db, {"environment": source.name, "database": src_db}, allow=[f"env:{source.name}"])
    cfg = config(tmp_path / "dst", target, postgres, [step])
    rep, _, err = reporter()
    first = seed(cfg, kube, rep)["steps"][0]
    assert first["kind"] == "restore" and first["restored"] is True and first["changed"] is True
    assert first["source"] == f"env:{source.name}" and (first["rows"], first["tables"]) == (3, 1)
    assert first["name"] == f"restore env:{source.name}"
    assert f"-> {source.namespace}/db-0:5432 (service db of environment {source.name})" in err.getvalue()
    assert f"-> {target.namespace}/db-0:5432 (service db)" in err.getvalue()
    assert products(postgres, dst_db) == SHOP
    assert postgres.query(dst_db, "SELECT product_count()") == [(3,)]
    # The sequence came along: the next row gets the next id, not a duplicate key.
    assert postgres.query(dst_db, "INSERT INTO products (sku, name, price_cents) VALUES ('D-4', 'Cup', 1) RETURNING id") == [(4,)]
    assert postgres.query(dst_db, "SELECT file FROM envci_seed_history") == [(f"env:{source.name}",)]

    rep2, _, err2 = reporter()
    second = seed(cfg, kube, rep2)["steps"][0]
    assert second["restored"] is False and second["changed"] is False
    assert f"env:{source.name}: already restored into {dst_db}; skipped" in err2.getvalue()
    assert f"environment {source.name})" not in err2.getvalue()  # the source was not even port-forwarded to
    assert postgres.query(dst_db, "SELECT count(*) FROM products") == [(4,)]  # nothing restored over the rows since


def test_a_source_environment_that_does_not_exist_is_not_ready(postgres: Postgres, tmp_path: Path) -> None:
    kube = FakeKube()
    target = add_env(kube, postgres)
    cfg = config(tmp_path, target, postgres, [into("postgres", {"environment": "shop-gone"}, allow=["env:shop-*"])])
    with pytest.raises(NotReadyError) as info:
        seed(cfg, kube, reporter()[0])
    assert "environment shop-gone, to restore from, does not exist" in info.value.message
    assert info.value.exit_code == ExitCode.NOT_READY


def test_an_environment_cannot_restore_from_itself(postgres: Postgres, tmp_path: Path) -> None:
    kube = FakeKube()
    target = add_env(kube, postgres)
    cfg = config(tmp_path, target, postgres, [into("postgres", {"environment": target.name}, allow=["env:*"])])
    with pytest.raises(ConfigError) as info:
        seed(cfg, kube, reporter()[0])
    assert info.value.field == "seed[0].restore.environment" and info.value.exit_code == ExitCode.BAD_INPUT
    assert f"environment {target.name} is the one being seeded" in info.value.message


class Listener:
    """A TCP port that counts the connections made to it, standing in for a database nobody may read."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()


@pytest.fixture
def production() -> Iterator[Listener]:
    listener = Listener()
    yield listener
    listener.sock.close()


def test_a_url_not_on_the_allow_list_is_refused_before_anything_connects(
    postgres: Postgres, tmp_path: Path, production: Listener,
) -> None:
    kube = FakeKube()
    target = add_env(kube, postgres)
    dst_db = postgres.create_database(f"dst_{secrets.token_hex(3)}")
    password = "prod-" + secrets.token_hex(8)
    url = f"postgresql://admin:{password}@127.0.0.1:{production.port}/shop"
    steps = [into(dst_db, {"url_secret": "snapshot_url"}, allow=["postgresql://staging-db.internal/shop"])]
    cfg = config(tmp_path, target, postgres, steps, {"SNAPSHOT_URL": url})
    rep, out, err = reporter()
    with pytest.raises(ConfigError) as info:
        seed(cfg, kube, rep)
    e = info.value
    assert e.exit_code == ExitCode.BAD_INPUT and e.field == "seed[0].allow" and e.line == line_of(cfg.file, "allow:")
    assert f"copying from postgresql://127.0.0.1:{production.port}/shop is not allowed" in e.message
    assert "(allowed: postgresql://staging-db.internal/shop)" in e.message and "the secret snapshot_url" in e.message
    assert f'add "postgresql://127.0.0.1:{production.port}/shop" to seed[0].allow' in (e.hint or "")
    assert production.accepted == 0  # not even a connection attempt
    assert tables(postgres, dst_db) == []  # nor was the environment's database touched
    for text in (str(e), out.getvalue(), err.getvalue(), json.dumps(list(kube.objects.values()), default=str)):
        assert password not in text and "admin" not in text


def test_a_url_source_on_the_list_is_dumped_with_the_password_kept_out_of_sight(
    postgres: Postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    command_lines: list[str] = []
    start = restore.Tool.__init__

    def spy(tool: restore.Tool, argv: list[str], **kw: Any) -> None:
        command_lines.append(" ".join(argv))
        start(tool, argv, **kw)

    monkeypatch.setattr(restore.Tool, "__init__", spy)
    kube = FakeKube()
    target = add_env(kube, postgres)
    src_db, dst_db = shop(postgres), postgres.create_database(f"dst_{secrets.token_hex(3)}")
    url = f"postgresql://{postgres.user}:{postgres.password}@{postgres.host}:{postgres.port}/{src_db}?sslmode=disable"
    steps = [into(dst_db, {"url_secret": "snapshot_url"}, allow=[f"postgresql://{postgres.host}:*/shop_*"])]
    cfg = config(tmp_path, target, postgres, steps, {"SNAPSHOT_URL": url})
    rep, out, err = reporter()
    res = seed(cfg, kube, rep)["steps"][0]
    assert res["source"] == f"postgresql://{postgres.host}:{postgres.port}/{src_db}" and res["rows"] == 3
    assert products(postgres, dst_db) == SHOP
    assert seed(cfg, kube, rep)["steps"][0]["restored"] is False
    assert len(command_lines) == 1 and f"dbname={src_db}" in command_lines[0]
    for text in (out.getvalue(), err.getvalue(), json.dumps(list(kube.objects.values()), default=str), *command_lines):
        assert postgres.password not in text  # a command line is visible to every user of the machine


@pytest.mark.parametrize("fmt", ["plain", "gzip", "custom", "tar", "directory"])
def test_a_dump_file_in_each_format_is_restored_once(postgres: Postgres, tmp_path: Path, fmt: str) -> None:
    kube = FakeKube()
    target = add_env(kube, postgres)
    src_db, dst_db = shop(postgres), postgres.create_database(f"dst_{secrets.token_hex(3)}")
    write_app(tmp_path, [])
    (tmp_path / "snap").mkdir()
    rel = {"plain": "snap/shop.sql", "gzip": "snap/shop.sql.gz", "custom": "snap/shop.dump", "tar": "snap/shop.tar",
           "directory": "snap/shop.d"}[fmt]
    if fmt == "gzip":
        plain = pg_dump(postgres, src_db, tmp_path / "plain.sql")
        (tmp_path / rel).write_bytes(gzip.compress(plain.read_bytes()))
    else:
        flag = {"plain": "p", "custom": "c", "tar": "t", "directory": "d"}[fmt]
        pg_dump(postgres, src_db, tmp_path / rel, f"--format={flag}")
    cfg = config(tmp_path, target, postgres, [into(dst_db, rel)])
    res = seed(cfg, kube, reporter()[0])["steps"][0]
    assert res["source"] == f"file:{rel}" and res["restored"] is True and res["rows"] == 3
    assert products(postgres, dst_db) == SHOP
    again = seed(cfg, kube, reporter()[0])["steps"][0]
    assert again["restored"] is False and again["summary"] == f"file:{rel} already restored into {dst_db}"
    assert postgres.query(dst_db, "SELECT count(*) FROM products") == [(3,)]


def test_a_changed_dump_file_is_restored_again_in_one_transaction(postgres: Postgres, tmp_path: Path) -> None:
    kube = FakeKube()
    target = add_env(kube, postgres)
    src_db, dst_db = shop(postgres), postgres.create_database(f"dst_{secrets.token_hex(3)}")
    write_app(tmp_path, [])
    dump = pg_dump(postgres, src_db, tmp_path / "shop.sql")
    cfg = config(tmp_path, target, postgres, [into(dst_db, "shop.sql")])
    seed(cfg, kube, reporter()[0])

    # A new snapshot made without --clean cannot go over the old one: refused whole, the old data stays.
    run_sql(postgres, src_db, "UPDATE products SET price_cents = 100 WHERE sku = 'C-3'")
    pg_dump(postgres, src_db, dump)
    rep, _, err = reporter()
    with pytest.raises(SeedError) as info:
        seed(cfg, kube, rep)
    assert "shop.sql: changed since it was restored; restoring the new content" in err.getvalue()
    e = info.value
    line = next(i for i, text in enumerate(dump.read_text().splitlines(), 1) if text.startswith("CREATE FUNCTION"))
    assert e.message.startswith(f'shop.sql:{line}: function "product_count" already exists'), e.message
    assert "restore into an empty database" in (e.hint or "") and "--clean --if-exists" in (e.hint or "")
    assert e.step == 0 and e.kind == "restore" and e.exit_code == ExitCode.NOT_READY
    assert products(postgres, dst_db) == SHOP

    # Made with --clean --if-exists, it replaces what the last one restored.
    pg_dump(postgres, src_db, dump, "--clean", "--if-exists")
    res = seed(cfg, kube, reporter()[0])["steps"][0]
    assert res["restored"] is True
    assert products(postgres, dst_db)[2] == (3, "C-3", "Mug", 100)
    assert len(postgres.query(dst_db, "SELECT checksum FROM envci_seed_history WHERE file = 'file:shop.sql'")) == 2


def test_a_bad_row_names_its_line_and_leaves_nothing(postgres: Postgres, tmp_path: Path) -> None:
    kube = FakeKube()
    target = add_env(kube, postgres)
    src_db, dst_db = shop(postgres), postgres.create_database(f"dst_{secrets.token_hex(3)}")
    write_app(tmp_path, [])
    dump = pg_dump(postgres, src_db, tmp_path / "shop.sql")
    lines = dump.read_text().splitlines(keepends=True)
    bad = next(i for i, text in enumerate(lines, 1) if text.startswith("2\tB-2"))
    lines[bad - 1] = lines[bad - 1].replace("1999", "lots")
    dump.write_text("".join(lines))
    cfg = config(tmp_path, target, postgres, [into(dst_db, "shop.sql")])
    with pytest.raises(SeedError) as info:
        seed(cfg, kube, reporter()[0])
    assert info.value.message.startswith(f'shop.sql:{bad}: invalid input syntax for type integer: "lots" (SQLSTATE 22P02)'), info.value.message
    assert "nothing of the restore was kept" in (info.value.hint or "")
    assert tables(postgres, dst_db) == ["envci_seed_history"]
    assert postgres.query(dst_db, "SELECT count(*) FROM envci_seed_history") == [(0,)]


def test_a_restore_that_outlives_its_timeout_is_stopped_and_leaves_nothing(postgres: Postgres, tmp_path: Path) -> None:
    kube = FakeKube()
    target = add_env(kube, postgres)
    dst_db = postgres.create_database(f"dst_{secrets.token_hex(3)}")
    write_app(tmp_path, [])
    (tmp_path / "slow.sql").write_text("CREATE TABLE early (x int);\nSELECT pg_sleep(60);\n")
    cfg = config(tmp_path, target, postgres, [into(dst_db, "slow.sql", timeout="1s")])
    with pytest.raises(SeedError) as info:
        seed(cfg, kube, reporter()[0])
    assert info.value.message == "the restore of file:slow.sql did not finish within 1s; nothing of it was kept"
    assert tables(postgres, dst_db) == ["envci_seed_history"]


def test_seed_output_json_holds_the_restore(
    postgres: Postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    kube = FakeKube()
    target = add_env(kube, postgres)
    src_db, dst_db = shop(postgres), postgres.create_database(f"dst_{secrets.token_hex(3)}")
    write_app(tmp_path, [])
    pg_dump(postgres, src_db, tmp_path / "shop.dump", "--format=c")
    path = write_app(tmp_path, [into(dst_db, "shop.dump")], secrets_={"db_password": "PG_PASSWORD"})
    monkeypatch.setenv("PG_PASSWORD", postgres.password)
    monkeypatch.setattr(Invocation, "kube", lambda self: kube)
    code = cli.main(["seed", "-c", str(path), "--env", target.name, "-o", "json"])
    out = capsys.readouterr()
    assert code == ExitCode.OK, out.err
    step = json.loads(out.out)["steps"][0]
    assert {k: step[k] for k in ("kind", "name", "source", "database", "restored", "rows", "tables")} == {
        "kind": "restore", "name": "restore file:shop.dump", "source": "file:shop.dump", "database": dst_db,
        "restored": True, "rows": 3, "tables": 1,
    }
    assert len(step["checksum"]) == 64 and postgres.password not in out.out + out.err


def test_an_environment_not_on_the_allow_list_is_refused_when_envci_yaml_loads(tmp_path: Path) -> None:
    steps = [into("shop", {"environment": "shop-prod"}, allow=["env:shop-main", "env:shop-pr-*"])]
    path = write_app(tmp_path, steps, secrets_={"db_password": "PG_PASSWORD"})
    with pytest.raises(ConfigErrors) as info:
        load(path, "shop-pr-1", {"PG_PASSWORD": "x" * 12})
    (e,) = info.value.errors
    assert e.exit_code == ExitCode.BAD_INPUT and (e.field, e.line) == ("seed[0].allow", line_of(path, "allow:"))
    assert e.detail == "copying from env:shop-prod is not allowed: no entry of `allow` covers it (allowed: env:shop-main, env:shop-pr-*)"
    assert 'add "env:shop-prod" to this step\'s `allow:` list' in (e.hint or "")


def test_what_a_newer_pg_dump_writes_is_understood_and_other_psql_commands_refused(postgres: Postgres, tmp_path: Path) -> None:
    kube = FakeKube()
    target = add_env(kube, postgres)
    write_app(tmp_path, [])
    # pg_dump 17 sets transaction_timeout, which this server (15) does not know; psql shrugs it off.
    (tmp_path / "newer.sql").write_text(
        "\\restrict k3y\n\nSET statement_timeout = 0;\nSET transaction_timeout = 0;\n"
        "CREATE TABLE t (x int, note text);\n\nCOPY public.t (x, note) FROM stdin;\n1\tone; two\n2\t\\N\n\\.\n\n\\unrestrict k3y\n"
    )
    dst_db = postgres.create_database(f"dst_{secrets.token_hex(3)}")
    rep, _, err = reporter()
    res = seed(config(tmp_path, target, postgres, [into(dst_db, "newer.sql")]), kube, rep)["steps"][0]
    assert (res["statements"], res["rows"], res["settings_skipped"]) == (3, 2, ["SET transaction_timeout = 0"])
    assert "newer.sql:4: SET transaction_timeout = 0: this server does not know the parameter; passed over" in err.getvalue()
    assert postgres.query(dst_db, "SELECT x, note FROM t ORDER BY x") == [(1, "one; two"), (2, None)]

    (tmp_path / "shell.sql").write_text("CREATE TABLE u (x int);\n\\! touch /tmp/envci-should-not-exist\n")
    (tmp_path / "connect.sql").write_text("\\connect postgres\nCREATE TABLE v (x int);\n")
    (tmp_path / "cut.sql").write_text("CREATE TABLE w (x int);\nCOPY w (x) FROM stdin;\n1\n2\n")
    for file, line, words in (("shell.sql", 2, "the psql command `\\!` is not supported"), ("connect.sql", 1, "`\\connect` switches to another database"),
                              ("cut.sql", 2, "the data of the COPY at line 2 has no end line `\\.`")):
        other = postgres.create_database(f"dst_{secrets.token_hex(3)}")
        with pytest.raises(SeedError) as info:
            seed(config(tmp_path, target, postgres, [into(other, file)]), kube, reporter()[0])
        assert info.value.message.startswith(f"{file}:{line}: {words}"), info.value.message
        assert tables(postgres, other) == ["envci_seed_history"]
    assert not Path("/tmp/envci-should-not-exist").exists()
