"""The closed-PR check asks the real HTTP APIs' shapes, served by a local recording server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from envci.stages.reap import github_pr_open, gitlab_mr_open

STATES = {
    "/repos/o/r/pulls/1": {"state": "open"},
    "/repos/o/r/pulls/2": {"state": "closed", "merged": True},
    "/projects/g%2Fp/merge_requests/3": {"state": "opened"},
    "/projects/g%2Fp/merge_requests/4": {"state": "merged"},
}


@pytest.fixture
def api() -> Iterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen.append({"path": self.path, "auth": self.headers.get("Authorization") or self.headers.get("PRIVATE-TOKEN") or ""})
            body = STATES.get(self.path)
            self.send_response(200 if body else 404)
            self.end_headers()
            self.wfile.write(json.dumps(body or {"message": "Not Found"}).encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", seen
    server.shutdown()


def test_github(api: tuple[str, list[dict[str, str]]]) -> None:
    base, seen = api
    check = github_pr_open("tok", base)
    assert check({"repo": "o/r", "pr": "1", "system": "github"}) is True
    assert check({"repo": "o/r", "pr": "2", "system": "github"}) is False
    assert check({"repo": "o/r", "pr": "9", "system": "github"}) is None  # unknown: keep the environment
    assert check({"repo": "g/p", "pr": "3", "system": "gitlab"}) is None  # not GitHub's to answer
    assert seen[0]["auth"] == "Bearer tok"


def test_gitlab(api: tuple[str, list[dict[str, str]]]) -> None:
    base, seen = api
    check = gitlab_mr_open("tok", base)
    assert check({"repo": "g/p", "pr": "3", "system": "gitlab"}) is True
    assert check({"repo": "g/p", "pr": "4", "system": "gitlab"}) is False
    assert seen[0]["auth"] == "tok"


def test_unreachable_api_keeps_the_environment() -> None:
    assert github_pr_open("t", "http://127.0.0.1:9")({"repo": "o/r", "pr": "1", "system": "github"}) is None
