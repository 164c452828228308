"""The adapter's HTTP transport against a small HTTP server on loopback: what each answer becomes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from envci.kube.discovery import KNOWN, Discovery, Resource, from_document
from envci.kube.transport import ApiError, Transport, lines, request_path


class Tokens:
    """Credentials whose token changes when refreshed, as an exec plugin's does."""

    def __init__(self) -> None:
        self.token, self.refreshed = "old", 0

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def refresh(self) -> bool:
        self.refreshed += 1
        self.token = "new"
        return True


@dataclass(frozen=True)
class Local:
    server: str
    auth: Tokens = field(default_factory=Tokens)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False
    tls_server_name: str | None = None
    proxy_url: str | None = None


class Handler(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def answer(self, status: int, body: bytes, chunks: list[bytes] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if chunks is None:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for c in chunks:
            self.wfile.write(f"{len(c):x}\r\n".encode() + c + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def handle_any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        Handler.seen.append({"method": self.command, "path": self.path, "auth": self.headers.get("Authorization"),
                             "type": self.headers.get("Content-Type"), "body": body})
        if self.path.startswith("/needs-new-token") and self.headers.get("Authorization") != "Bearer new":
            self.answer(401, b'{"kind": "Status", "message": "Unauthorized"}')
        elif self.path.startswith("/forbidden"):
            self.answer(403, b'{"kind": "Status", "message": "pods is forbidden"}')
        elif self.path.startswith("/watch"):
            events = [json.dumps({"type": "ADDED", "object": {"n": i}}).encode() + b"\n" for i in range(3)]
            # the second event split across two chunks, as a proxy may send it
            self.answer(200, b"", [events[0] + events[1][:7], events[1][7:], events[2]])
        elif self.path.startswith("/empty"):
            self.answer(200, b"")
        else:
            self.answer(200, json.dumps({"path": self.path}).encode())

    do_GET = do_PATCH = do_DELETE = do_POST = handle_any


@pytest.fixture()
def server() -> Iterator[str]:
    Handler.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_an_answer_is_its_json_and_a_query_leaves_out_what_is_unset(server: str) -> None:
    t = Transport(Local(server))
    got = t.request("GET", "/api/v1/pods", query={"labelSelector": "a=b", "watch": False, "limit": None})
    assert got == {"path": "/api/v1/pods?labelSelector=a%3Db&watch=false"}
    assert t.request("DELETE", "/empty", body={"propagationPolicy": "Background"}) == {}
    assert Handler.seen[-1]["body"] == b'{"propagationPolicy": "Background"}' and Handler.seen[-1]["type"] == "application/json"


def test_an_error_status_is_an_api_error_with_the_body_kept_for_its_message(server: str) -> None:
    with pytest.raises(ApiError) as e:
        Transport(Local(server)).request("PATCH", "/forbidden", body={}, content_type="application/apply-patch+yaml")
    assert e.value.status == 403 and "pods is forbidden" in e.value.body
    assert Handler.seen[-1]["type"] == "application/apply-patch+yaml"


def test_a_401_refreshes_the_credentials_once_and_asks_again(server: str) -> None:
    ep = Local(server)
    assert Transport(ep).request("GET", "/needs-new-token") == {"path": "/needs-new-token"}
    assert ep.auth.refreshed == 1 and [s["auth"] for s in Handler.seen] == ["Bearer old", "Bearer new"]


def test_a_stream_yields_whole_lines_across_chunks(server: str) -> None:
    resp = Transport(Local(server)).request("GET", "/watch", stream=True)
    try:
        assert [json.loads(line)["object"]["n"] for line in lines(resp) if line] == [0, 1, 2]
    finally:
        resp.release_conn()


def test_every_request_is_traced_on_request(server: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    Transport(Local(server)).request("GET", "/quiet")
    assert "envci: http" not in capsys.readouterr().err
    monkeypatch.setenv("ENVCI_DEBUG", "x, http")
    with pytest.raises(ApiError):
        Transport(Local(server)).request("GET", "/forbidden", query={"limit": 1})
    err = capsys.readouterr().err
    assert err.startswith("envci: http GET /forbidden?limit=1 -> 403 in ") and "Bearer" not in err


def test_request_paths() -> None:
    assert request_path("/api/v1/pods", None) == "/api/v1/pods"
    assert request_path("/x", {"force": True, "fieldManager": "envci"}) == "/x?force=true&fieldManager=envci"


# --- discovery ----------------------------------------------------------------------------------


def test_paths_of_namespaced_and_cluster_kinds() -> None:
    deploy, ns = KNOWN[("apps/v1", "Deployment")], KNOWN[("v1", "Namespace")]
    assert deploy.path("a", "web") == "/apis/apps/v1/namespaces/a/deployments/web"
    assert deploy.path(None) == "/apis/apps/v1/deployments"
    assert ns.path("ignored", "envci-x") == "/api/v1/namespaces/envci-x"
    assert KNOWN[("v1", "Endpoints")].path("a") == "/api/v1/namespaces/a/endpoints"


def test_other_kinds_are_asked_of_their_group_version_and_a_missing_one_is_asked_again() -> None:
    asked: list[str] = []
    served: dict[str, Any] = {}

    def fetch(path: str) -> dict[str, Any] | None:
        asked.append(path)
        return served.get(path)

    d = Discovery(fetch)
    assert d.resolve("v1", "Pod") == KNOWN[("v1", "Pod")] and asked == []
    assert d.resolve("example.com/v1", "Widget") is None
    served["/apis/example.com/v1"] = {"resources": [
        {"name": "widgets", "kind": "Widget", "namespaced": True}, {"name": "widgets/status", "kind": "Widget", "namespaced": True},
        {"name": "gadgets", "kind": "Gadget", "namespaced": False},
    ]}
    assert d.resolve("example.com/v1", "Widget") == Resource("example.com/v1", "Widget", "widgets", True)
    assert d.resolve("example.com/v1", "Gadget") == Resource("example.com/v1", "Gadget", "gadgets", False)
    assert asked == ["/apis/example.com/v1"] * 2


def test_subresources_are_not_kinds() -> None:
    doc = {"resources": [{"name": "deployments/scale", "kind": "Scale", "namespaced": True}]}
    assert from_document("apps/v1", doc) == {}
