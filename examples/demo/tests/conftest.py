"""Where the API under test is: the environment's URL that `envci test` passes to the suite.

`ENVCI_LOCAL_URL_API` is a loopback port that envci forwards to the api Service for the test stage
(the runner cannot reach cluster addresses); `ENVCI_URL_API` is the cluster URL, used when the
runner can reach it (a runner pod in the cluster, or an ingress host). `DEMO_API_URL` points the
tests at any API, e.g. `python3 api/api.py` on a laptop.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest

TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class Response:
    status: int
    body: Any


@dataclass(frozen=True)
class Api:
    base: str

    def request(self, method: str, path: str, payload: Any = None) -> Response:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT_SECONDS) as resp:
                return Response(resp.status, json.loads(resp.read() or b"null"))
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return Response(e.code, json.loads(raw or b"null"))
            except ValueError:
                return Response(e.code, raw.decode(errors="replace"))

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def post(self, path: str, payload: Any) -> Response:
        return self.request("POST", path, payload)


@pytest.fixture(scope="session")
def api() -> Api:
    for var in ("DEMO_API_URL", "ENVCI_LOCAL_URL_API", "ENVCI_URL_API"):
        if os.environ.get(var):
            return Api(os.environ[var].rstrip("/"))
    pytest.fail("no API URL: run the tests through `envci test` (which sets ENVCI_LOCAL_URL_API), or set DEMO_API_URL")


@pytest.fixture(scope="session")
def run_id() -> str:
    """Makes names this run writes unique, so a re-run against the same environment does not collide."""
    return f"{os.environ.get('ENVCI_NAME', 'local')}-{os.getpid()}-{os.urandom(3).hex()}"
