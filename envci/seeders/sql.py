"""`sql:` seed steps: run SQL files against a PostgreSQL database of the environment.

The database is reached through a port-forward envci opens to the component's Service (or the
step's `url`). Each file runs in its own transaction, one statement at a time, so a failure names
the file and the line of the failing statement and leaves nothing of that file behind.

Re-runs are guarded by a table in the seeded database, `envci_seed_history(file, checksum,
applied_at)`: a file whose name and content (sha256) were already applied is skipped, so a retried
CI job does not insert rows twice. The history row is written in the same transaction as the file.
A file changed since it was applied runs again (the new content is a new seed) and is reported as
such. Statements that cannot run inside a transaction (CREATE DATABASE, VACUUM) and
`COPY ... FROM STDIN` are not supported.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import psycopg

from envci.config.model import RestoreSeed, SqlSeed
from envci.errors import InfrastructureError
from envci.kube.portforward import forward_service
from envci.redact import redact, truncate
from envci.seeders.base import SeedContext, SeedError, StepResult
from envci.seeders.sqltext import Statement, checksum, split_statements

HISTORY_TABLE = "envci_seed_history"
CREATE_HISTORY = f"""CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} (
    file text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (file, checksum)
)"""
CONNECT_BACKOFFS: tuple[float, ...] = (0.3, 0.5, 1, 1, 2, 2, 3)
"""Seconds between connection attempts (about 10 s in all): a fresh port-forward or a database
that just became ready may refuse the first connections. Errors with an SQLSTATE (bad password,
unknown database) are not retried: they will not change."""


DatabaseStep = SqlSeed | RestoreSeed
"""Steps that write into a database of the environment, named the same way."""


def service_of(step: DatabaseStep, ctx: SeedContext) -> str | None:
    if step.service:
        return step.service
    if step.component:
        comp = ctx.cfg.spec.component(step.component)  # known: checked when envci.yaml loaded
        return (comp.expose.service if comp.expose and comp.expose.service else None) or comp.name
    return None


@contextlib.contextmanager
def endpoint(step: DatabaseStep, ctx: SeedContext) -> Iterator[dict[str, Any]]:
    """Connection keyword arguments, with a port-forward open while they are in use."""
    password = ctx.secret(step.password, "password") if step.password else None
    if step.url:
        kw: dict[str, Any] = {"conninfo": step.url}
        if password:
            kw["password"] = password
        yield kw
        return
    service = service_of(step, ctx)
    if not service:
        raise ctx.config_error("needs `component`, `service` or `url` to know which database to seed", hint="e.g. `component: db`")
    with forward_service(ctx.kube, ctx.namespace, service, step.port) as pf:
        ctx.progress(f"port-forward 127.0.0.1:{pf.local_port} -> {ctx.namespace}/{pf.pod}:{pf.port} (service {service})")
        kw = {"host": pf.host, "port": pf.local_port, "dbname": step.database, "user": step.user}
        if password:
            kw["password"] = password
        yield kw


def connect(kw: dict[str, Any], *, what: str, sleep: Any = time.sleep) -> psycopg.Connection[Any]:
    kw = {**kw, "autocommit": True, "connect_timeout": 10, "application_name": "envci-seed"}
    conninfo = kw.pop("conninfo", "")
    last: Exception | None = None
    for wait in (*CONNECT_BACKOFFS, None):
        try:
            return psycopg.connect(conninfo, **kw)
        except psycopg.OperationalError as e:
            last = e
            if e.sqlstate or wait is None:
                break
            sleep(wait)
    raise InfrastructureError(
        f"cannot connect to {what}: {truncate(redact(str(last).strip()), 500)}",
        hint="check that the database is ready (`envci wait-ready`), and the step's user, password and database",
    ) from None


def applied(conn: psycopg.Connection[Any]) -> set[tuple[str, str]]:
    conn.execute(CREATE_HISTORY)
    return {(r[0], r[1]) for r in conn.execute(f"SELECT file, checksum FROM {HISTORY_TABLE}")}


def error_text(e: psycopg.Error) -> str:
    diag = e.diag
    text = diag.message_primary or str(e).strip().splitlines()[0]
    if diag.sqlstate:
        text += f" (SQLSTATE {diag.sqlstate})"
    for label, extra in (("detail", diag.message_detail), ("hint", diag.message_hint)):
        if extra:
            text += f"\n  {label}: {extra}"
    return redact(text)


def apply_file(conn: psycopg.Connection[Any], rel: str, text: str, digest: str) -> int:
    """Run one file's statements and record it, all in one transaction; returns the statement count.

    Raises SeedError naming `rel`:line of the failing statement.
    """
    statements = split_statements(text)
    current: Statement | None = None
    try:
        with conn.transaction():
            for current in statements:
                conn.execute(current.text.encode(), prepare=False)  # bytes: no placeholder parsing
            conn.execute(f"INSERT INTO {HISTORY_TABLE} (file, checksum) VALUES (%s, %s) ON CONFLICT DO NOTHING", (rel, digest))
    except psycopg.Error as e:
        if current is None:
            raise
        pos = e.diag.statement_position
        line = current.line_at(int(pos) if pos and pos.isdigit() else None)
        raise SeedError(
            f"{rel}:{line}: {error_text(e)}\n  statement: {truncate(redact(current.first_line), 200)}",
            kind="sql",
            hint=f"fix the statement at {rel}:{line}; nothing from this file was kept (it ran in one transaction)",
            details={"file": rel, "line": line},
        ) from None
    return len(statements)


def run(step: SqlSeed, ctx: SeedContext) -> StepResult:
    files: list[tuple[str, str, str]] = []
    for j, rel in enumerate(step.sql):
        path = ctx.path(rel)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ctx.config_error(f"cannot read SQL file {rel!r}: {e}", "sql", j) from None
        files.append((rel, text, checksum(text)))

    ran: list[str] = []
    skipped: list[str] = []
    with endpoint(step, ctx) as kw:
        what = f"database {step.database} as {step.user}" if not step.url else "the database at `url`"
        with connect(kw, what=what) as conn:
            done = applied(conn)
            names_done = {f for f, _ in done}
            for rel, text, digest in files:
                if (rel, digest) in done:
                    ctx.progress(f"{rel}: already applied (checksum {digest[:12]}); skipped")
                    skipped.append(rel)
                    continue
                if rel in names_done:
                    ctx.progress(f"{rel}: changed since it was applied; running the new content")
                started = time.monotonic()
                count = apply_file(conn, rel, text, digest)
                ctx.progress(f"{rel}: {count} statement(s) applied in {time.monotonic() - started:.2f}s")
                ran.append(rel)
    summary = f"{len(ran)} SQL file(s) applied" + (f", {len(skipped)} already applied" if skipped else "")
    return StepResult("sql", summary, changed=bool(ran), details={"applied": ran, "skipped": skipped})
