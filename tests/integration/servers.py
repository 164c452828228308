"""Real servers for integration tests: a throwaway PostgreSQL cluster and an S3-compatible server.

Both listen on loopback only, on free ports. The fixtures in conftest.py start them once per
session; they skip (not fail) when the machine lacks them (`scripts/ci-deps/seed.sh` installs both).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    base = Path("/usr/lib/postgresql")
    for version in sorted(base.glob("*"), reverse=True) if base.is_dir() else []:
        candidate = version / "bin" / name
        if candidate.exists():
            return str(candidate)
    return None


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    password: str

    def conninfo(self, dbname: str = "postgres") -> str:
        return f"host={self.host} port={self.port} user={self.user} password={self.password} dbname={dbname}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def query(self, dbname: str, sql: str) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.conninfo(dbname), autocommit=True) as conn:
            return list(conn.execute(sql.encode()))


@contextmanager
def start_postgres() -> Iterator[Postgres]:
    """A PostgreSQL cluster in a temporary directory on 127.0.0.1:<free port>, password-protected.

    PostgreSQL refuses to run as root, so as root it runs as the `postgres` system user.
    """
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server binaries not installed (scripts/ci-deps/seed.sh installs them)")
    prefix: list[str] = []
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run PostgreSQL as")
        prefix = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="envci-pg-"))
    data, pwfile = root / "data", root / "pw"
    password = "pg-" + secrets.token_hex(12)
    pwfile.write_text(password + "\n")
    if owner:
        for p in (root, pwfile):
            os.chown(p, owner.pw_uid, owner.pw_gid)
    port = free_port()
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    subprocess.run(
        [*prefix, initdb, "-D", str(data), "-U", "postgres", "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8"],
        check=True, capture_output=True, env=env, timeout=120,
    )
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    subprocess.run([*prefix, pg_ctl, "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "-t", "60", "start"],
                   check=True, capture_output=True, env=env, timeout=90)
    try:
        yield Postgres("127.0.0.1", port, "postgres", password)
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, env=env, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def start_s3() -> Iterator[str]:
    """An S3-compatible server (moto's server mode) on 127.0.0.1:<free port>."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        pytest.skip("moto[server] is not installed (scripts/ci-deps/seed.sh installs it)")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
