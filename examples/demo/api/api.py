"""The demo's API: a small catalogue of items kept in PostgreSQL.

Only the standard library's http.server and psycopg 3, because the image holds nothing else
(Debian's python3 and python3-psycopg). One database connection per request: no pool package is
installed, and at demo traffic a fresh connection costs a few milliseconds.

Endpoints:
  GET  /healthz      liveness: the process answers; never touches the database, so a database
                     outage does not get the API restarted in a loop
  GET  /readyz       readiness: the database answers; the body says whether the schema is there
                     and migrated (the schema arrives with `envci seed`, after the environment is
                     ready, so readiness cannot wait for it)
  GET  /items        every item, by id
  GET  /items/{id}   one item, 404 when there is none
  POST /items        {"name": str, "price_cents": int} -> 201 and the item; 400 bad input, 409 taken
  GET  /version      the build the image and the chart were made from

Configuration (environment): DATABASE_URL, or libpq's PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE;
PORT (8080); BUILD_ID; DEMO_FAIL=1 turns on a deliberate defect (GET /items skips the first row,
the classic off-by-one of a paginated query) so that a pipeline can show a real failing test.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
from psycopg.rows import dict_row

MAX_BODY_BYTES = 64 * 1024
"""Largest request body read: an item is a few dozen bytes; anything bigger is a mistake or abuse."""
CONNECT_TIMEOUT_SECONDS = 3
"""Short, so a probe fails before the kubelet's probe timeout instead of hanging past it."""
ITEM_PATH = re.compile(r"^/items/(\d{1,18})$")
COLUMNS = "id, name, price_cents"
MIGRATED_COLUMNS = COLUMNS + ", created_at"


class ApiError(Exception):
    """An error the client caused or should see: becomes a JSON body with this status."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def connect() -> psycopg.Connection[Any]:
    """A new connection from DATABASE_URL or the PG* variables (libpq reads those itself)."""
    try:
        return psycopg.connect(os.environ.get("DATABASE_URL", ""), connect_timeout=CONNECT_TIMEOUT_SECONDS,
                               autocommit=True, row_factory=dict_row, application_name="demo-api")
    except psycopg.OperationalError as e:
        # The first line only: libpq's message names host and port, never the password.
        raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, f"database unavailable: {str(e).strip().splitlines()[0]}") from None


def schema_state(conn: psycopg.Connection[Any]) -> dict[str, bool]:
    """Whether the seeded schema exists and the migration Job has added its column."""
    row = conn.execute(
        "SELECT to_regclass('public.items') IS NOT NULL AS schema,"
        " EXISTS (SELECT 1 FROM information_schema.columns"
        "         WHERE table_schema = 'public' AND table_name = 'items' AND column_name = 'created_at') AS migrated"
    ).fetchone()
    return {"schema": bool(row and row["schema"]), "migrated": bool(row and row["migrated"])}


def require_migrated(conn: psycopg.Connection[Any]) -> None:
    state = schema_state(conn)
    if not state["migrated"]:
        missing = "the items table" if not state["schema"] else "the created_at column (run migrate.py)"
        raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, f"schema not ready: {missing} is missing")


def row_json(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    if out.get("created_at") is not None:
        out["created_at"] = out["created_at"].isoformat()
    return out


def list_items(conn: psycopg.Connection[Any], *, defective: bool) -> list[dict[str, Any]]:
    # The defect DEMO_FAIL turns on: an OFFSET meant for page 2 applied to page 1.
    offset = 1 if defective else 0
    rows = conn.execute(f"SELECT {MIGRATED_COLUMNS} FROM items ORDER BY id OFFSET %s", (offset,)).fetchall()
    return [row_json(r) for r in rows]


def get_item(conn: psycopg.Connection[Any], item_id: int) -> dict[str, Any]:
    row = conn.execute(f"SELECT {MIGRATED_COLUMNS} FROM items WHERE id = %s", (item_id,)).fetchone()
    if row is None:
        raise ApiError(HTTPStatus.NOT_FOUND, f"no item {item_id}")
    return row_json(row)


def parse_new_item(body: bytes) -> tuple[str, int]:
    """Pure: the (name, price_cents) of a POST /items body, or ApiError 400 saying what is wrong."""
    try:
        data = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(HTTPStatus.BAD_REQUEST, "the body must be JSON") from None
    if not isinstance(data, dict):
        raise ApiError(HTTPStatus.BAD_REQUEST, 'the body must be an object: {"name": ..., "price_cents": ...}')
    name, price = data.get("name"), data.get("price_cents")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ApiError(HTTPStatus.BAD_REQUEST, "name must be a non-empty string of at most 200 characters")
    if not isinstance(price, int) or isinstance(price, bool) or price < 0:
        raise ApiError(HTTPStatus.BAD_REQUEST, "price_cents must be a whole number >= 0")
    return name.strip(), price


def create_item(conn: psycopg.Connection[Any], name: str, price_cents: int) -> dict[str, Any]:
    try:
        row = conn.execute(
            f"INSERT INTO items (name, price_cents) VALUES (%s, %s) RETURNING {MIGRATED_COLUMNS}", (name, price_cents)
        ).fetchone()
    except psycopg.errors.UniqueViolation:
        raise ApiError(HTTPStatus.CONFLICT, f"an item named {name!r} exists") from None
    assert row is not None
    return row_json(row)


class Handler(BaseHTTPRequestHandler):
    server_version = "demo-api"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        self._handle(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._handle(self._post)

    def _get(self) -> tuple[HTTPStatus, Any]:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            return HTTPStatus.OK, {"status": "ok"}
        if path == "/version":
            return HTTPStatus.OK, {"build": os.environ.get("BUILD_ID", "dev")}
        if path == "/readyz":
            with connect() as conn:
                return HTTPStatus.OK, {"database": "ok", **schema_state(conn)}
        if path == "/items":
            with connect() as conn:
                require_migrated(conn)
                return HTTPStatus.OK, list_items(conn, defective=os.environ.get("DEMO_FAIL") == "1")
        match = ITEM_PATH.match(path)
        if match:
            with connect() as conn:
                require_migrated(conn)
                return HTTPStatus.OK, get_item(conn, int(match.group(1)))
        raise ApiError(HTTPStatus.NOT_FOUND, f"no route {path}")

    def _post(self) -> tuple[HTTPStatus, Any]:
        if self.path.split("?", 1)[0] != "/items":
            raise ApiError(HTTPStatus.NOT_FOUND, f"no route POST {self.path}")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body may have at most {MAX_BODY_BYTES} bytes")
        name, price = parse_new_item(self.rfile.read(length))
        with connect() as conn:
            require_migrated(conn)
            return HTTPStatus.CREATED, create_item(conn, name, price)

    def _handle(self, route: Any) -> None:
        started = time.monotonic()
        try:
            status, payload = route()
        except ApiError as e:
            status, payload = e.status, {"error": e.message}
        except (psycopg.Error, ValueError) as e:
            status, payload = HTTPStatus.INTERNAL_SERVER_ERROR, {"error": type(e).__name__}
            print(f"error on {self.command} {self.path}: {type(e).__name__}: {str(e).strip().splitlines()[:1]}", file=sys.stderr, flush=True)
        body = json.dumps(payload).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        millis = (time.monotonic() - started) * 1000
        # One line per request, to stdout, where `kubectl logs` and envci's diagnostics read it.
        print(f'{self.address_string()} "{self.command} {self.path}" {int(status)} {len(body)}B {millis:.1f}ms', flush=True)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        """Silenced: _handle writes the one line per request (http.server would add a second)."""


def serve(port: int) -> None:
    server = ThreadingHTTPServer(("", port), Handler)
    server.daemon_threads = True

    def stop(signum: int, _frame: Any) -> None:
        # As PID 1 in a container, SIGTERM is ignored unless handled: without this every rollout
        # and teardown would wait out the whole termination grace period.
        print(f"signal {signum}: stopping", flush=True)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"demo-api build {os.environ.get('BUILD_ID', 'dev')} listening on :{port}"
          + (" with DEMO_FAIL=1 (GET /items skips its first row)" if os.environ.get("DEMO_FAIL") == "1" else ""), flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    serve(int(os.environ.get("PORT", "8080")))
