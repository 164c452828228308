"""Secrets used by seed steps never reach stdout, stderr, logs, errors or the cluster record.

`envci seed` runs as a real process (as in CI) with a database password, S3 keys and an HTTP
token from environment variables. The HTTP endpoint echoes the token back in an error body, the
worst case: the message must still show it masked.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from seedapp import (  # tests/integration is on sys.path
    db_pod,
    env_name,
    environment,
    load,
    write_app,
)
from servers import Postgres

from envci.errors import ExitCode
from envci.kube.client import connect
from envci.redact import MASK

pytestmark = pytest.mark.cluster


class Api(BaseHTTPRequestHandler):
    received: list[tuple[str, str, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        auth = self.headers.get("Authorization", "")
        Api.received.append((self.path, auth, body))
        if self.path.startswith("/echo"):
            self._answer(500, f"rejected credentials {auth}".encode())
        else:
            self._answer(201, b"{}")

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Api.received = []
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_secrets_never_appear_in_output(
    kubeconfig: str, postgres: Postgres, s3_endpoint: str, api_server: int, pod_port_forward: Callable[..., None], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = "tok-" + secrets.token_hex(16)
    s3_secret = "s3s-" + secrets.token_hex(16)
    database = postgres.create_database(f"sec_{secrets.token_hex(3)}")
    steps = [
        {"sql": ["sql/001_schema.sql", "sql/002_products.sql"], "component": "db", "database": database, "password": "db_password"},
        {"s3": "fixtures", "endpoint": s3_endpoint, "access_key": "s3_access", "secret_key": "s3_secret"},
        {"http": "/products", "component": "api", "files": ["fixtures/config.json"], "headers": {"Authorization": "Bearer {{ secrets.api_token }}"}},
        {"http": "/echo", "component": "api", "headers": {"Authorization": "Bearer {{ secrets.api_token }}"}},
    ]
    names = {"db_password": "SEED_DB_PASSWORD", "s3_access": "SEED_S3_ACCESS", "s3_secret": "SEED_S3_SECRET", "api_token": "SEED_API_TOKEN"}
    values = {"SEED_DB_PASSWORD": postgres.password, "SEED_S3_ACCESS": "AKIDSECRETTEST", "SEED_S3_SECRET": s3_secret, "SEED_API_TOKEN": token}
    path = write_app(tmp_path, steps, secrets_=names)
    name = env_name()
    cfg = load(path, name, values)
    kube = connect(kubeconfig)
    with environment(cfg, kube):
        ns = cfg.identity.namespace
        pod_port_forward(ns, db_pod(kube, ns), {5432: (postgres.host, postgres.port)})
        api_pod = kube.list("v1", "Pod", ns, label_selector="app=api")[0]["metadata"]["name"]
        pod_port_forward(ns, api_pod, {8080: ("127.0.0.1", api_server)})

        env = {**os.environ, **values, "ENVCI_LOCK_SECONDS": "6", "ENVCI_S3_ACCESS_KEY_ID": "AKIDSECRETTEST", "ENVCI_S3_SECRET_ACCESS_KEY": s3_secret}
        runs = [
            subprocess.run([sys.executable, "-m", "envci.cli", "seed", "-c", str(path), "--env", name, *extra],
                           env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
            for extra in ([], ["-o", "json"])
        ]
        for run in runs:
            assert run.returncode == ExitCode.NOT_READY, run.stderr
            text = run.stdout + run.stderr
            for secret in (postgres.password, s3_secret, token):
                assert secret not in text
            assert f"rejected credentials Bearer {MASK}" in text  # the echo was masked, not dropped
            assert "seed[3]" in run.stderr and "HTTP 500" in run.stderr
        assert json.loads(runs[1].stdout)["exit_code"] == ExitCode.NOT_READY

        # The steps really ran with the secrets: rows loaded, bucket filled, the token sent.
        assert postgres.query(database, "SELECT count(*) FROM products") == [(3,)]
        assert ("/products", f"Bearer {token}", b'{"banner": "welcome"}\n') in Api.received
        # Nothing in the cluster record holds a secret either.
        record = json.dumps([kube.get("v1", "ConfigMap", "envci-state", ns), kube.namespace(ns)], default=str)
        for secret in (postgres.password, s3_secret, token):
            assert secret not in record
        # for the teardown in `environment()`, which deletes the bucket
        monkeypatch.setenv("ENVCI_S3_ACCESS_KEY_ID", "AKIDSECRETTEST")
        monkeypatch.setenv("ENVCI_S3_SECRET_ACCESS_KEY", s3_secret)
