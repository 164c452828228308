"""Publishing: the sticky PR/MR comment against a local server that emulates GitHub and GitLab,
the step summary, and warnings (never failures, never tokens) when posting goes wrong."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from envci.ci.publish import publish_report
from envci.ci.sticky import marker
from envci.report.model import Case, RunResult, SuiteResult

TOKEN = "ghp_local-test-token-1234567890"
PAGE = 2  # small pages, so finding the marker needs pagination


@dataclass
class Forge:
    """State of the emulated server: comments per thread, every request seen, forced failures."""

    comments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_with: int | None = None
    next_id: int = 100
    base: str = ""

    def seen(self, method: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == method]


GH_LIST = re.compile(r"^/api/v3/repos/(?P<repo>[^/]+/[^/]+)/issues/(?P<n>\d+)/comments$")
GH_ITEM = re.compile(r"^/api/v3/repos/(?P<repo>[^/]+/[^/]+)/issues/comments/(?P<id>\d+)$")
GL_LIST = re.compile(r"^/api/v4/projects/(?P<p>[^/]+)/merge_requests/(?P<n>\d+)/notes$")
GL_ITEM = re.compile(r"^/api/v4/projects/(?P<p>[^/]+)/merge_requests/(?P<n>\d+)/notes/(?P<id>\d+)$")


def make_handler(forge: Forge) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            forge.requests.append({"method": self.command, "path": url.path, "query": url.query, "headers": dict(self.headers), "body": body})
            if forge.fail_with:
                return self._send(forge.fail_with, {"message": "Resource not accessible by integration"})
            github = self.headers.get("Authorization") == f"Bearer {TOKEN}"
            gitlab = self.headers.get("PRIVATE-TOKEN") == TOKEN
            if not (github or gitlab):
                return self._send(401, {"message": "Bad credentials"})
            for pattern, kind in ((GH_LIST, "list"), (GL_LIST, "list"), (GH_ITEM, "item"), (GL_ITEM, "item")):  # noqa: B007 - used after the loop
                m = pattern.match(url.path)
                if m:
                    break
            else:
                return self._send(404, {"message": "Not Found"})
            if kind == "list":
                key = f"{m.groupdict().get('repo') or m['p']}#{m['n']}"
                thread = forge.comments.setdefault(key, [])
                if self.command == "GET":
                    page = int(parse_qs(url.query).get("page", ["1"])[0])
                    items = thread[(page - 1) * PAGE : page * PAGE]
                    more = page * PAGE < len(thread)
                    headers = {}
                    if more and github:
                        headers["Link"] = f'<{forge.base}{url.path}?per_page=100&page={page + 1}>; rel="next"'
                    if more and gitlab:
                        headers["X-Next-Page"] = str(page + 1)
                    return self._send(200, items, headers)
                if self.command == "POST":
                    forge.next_id += 1
                    item = {"id": forge.next_id, "body": body["body"], "user": {"login": "envci-bot"}}
                    thread.append(item)
                    return self._send(201, item)
            if kind == "item" and self.command in ("PATCH", "PUT"):
                for thread in forge.comments.values():
                    for item in thread:
                        if str(item["id"]) == m["id"]:
                            item["body"] = body["body"]
                            return self._send(200, item)
                return self._send(404, {"message": "Not Found"})
            return self._send(405, {"message": "Method Not Allowed"})

        do_GET = do_POST = do_PATCH = do_PUT = _handle

    return Handler


@pytest.fixture
def forge() -> Iterator[Forge]:
    f = Forge()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(f))
    f.base = f"http://127.0.0.1:{server.server_address[1]}"
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f
    server.shutdown()
    server.server_close()


def run_result(failed: bool = True) -> RunResult:
    cases = [Case("test_ok", "checks"), Case("test_total", "checks", status="failed" if failed else "passed", message="off by one")]
    return RunResult("shop-pr-7", "envci-shop-pr-7", urls={"web": "http://shop-pr-7.preview.local/"},
                     suites=[SuiteResult("smoke", "command", cases)], ci={"build_url": "https://ci.example.com/run/1"})


def github_env(forge: Forge, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "acme/shop", "GITHUB_REF": "refs/pull/7/merge", "GITHUB_RUN_ID": "1",
        "GITHUB_API_URL": f"{forge.base}/api/v3", "GITHUB_TOKEN": TOKEN, "GITHUB_STEP_SUMMARY": str(tmp_path / "step-summary.md"), **extra,
    }


def gitlab_env(forge: Forge, **extra: str) -> dict[str, str]:
    return {
        "GITLAB_CI": "true", "CI_API_V4_URL": f"{forge.base}/api/v4", "CI_PROJECT_ID": "acme/shop", "CI_MERGE_REQUEST_IID": "7",
        "ENVCI_GITLAB_TOKEN": TOKEN, **extra,
    }


def unrelated(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "body": f"LGTM {i}", "user": {"login": "reviewer"}} for i in range(1, n + 1)]


def test_github_comment_is_created_once_then_updated_in_place(forge: Forge, tmp_path: Path) -> None:
    forge.comments["acme/shop#7"] = unrelated(3)
    warnings: list[str] = []
    env = github_env(forge, tmp_path)
    first = publish_report(run_result(), {}, env=env, warn=warnings.append)
    assert first["comment"] == "created"
    second = publish_report(run_result(failed=False), {}, env=env, warn=warnings.append)
    assert second["comment"] == "updated"
    third = publish_report(run_result(failed=False), {}, env=env, warn=warnings.append)
    assert third["comment"] == "updated" and warnings == []

    thread = forge.comments["acme/shop#7"]
    ours = [c for c in thread if marker("shop-pr-7") in c["body"]]
    assert len(thread) == 4 and len(ours) == 1
    assert "envci tests passed" in ours[0]["body"] and "off by one" not in ours[0]["body"]
    assert len(forge.seen("POST")) == 1 and len(forge.seen("PATCH")) == 2
    assert forge.seen("PATCH")[0]["path"] == f"/api/v3/repos/acme/shop/issues/comments/{ours[0]['id']}"
    get = forge.seen("GET")[0]
    assert get["headers"]["Accept"] == "application/vnd.github+json" and get["headers"]["X-GitHub-Api-Version"] == "2022-11-28"
    # the step summary was appended each time
    summary = (tmp_path / "step-summary.md").read_text()
    assert summary.count("envci tests") == 3 and "checks.test_total: off by one" in summary


def test_another_environment_gets_its_own_comment(forge: Forge, tmp_path: Path) -> None:
    env = github_env(forge, tmp_path)
    publish_report(run_result(), {}, env=env, warn=print)
    other = run_result()
    other.name = "shop-pr-7-mobile"
    assert publish_report(other, {}, env=env, warn=print)["comment"] == "created"
    assert len(forge.comments["acme/shop#7"]) == 2


def test_gitlab_note_is_created_once_then_updated_with_put(forge: Forge) -> None:
    forge.comments["acme%2Fshop#7"] = unrelated(5)
    files = {"junit": "envci-report/junit.xml", "dotenv": "envci-report/test.env"}
    warnings: list[str] = []
    first = publish_report(run_result(), files, env=gitlab_env(forge), warn=warnings.append)
    second = publish_report(run_result(failed=False), files, env=gitlab_env(forge), warn=warnings.append)
    assert (first["comment"], second["comment"]) == ("created", "updated") and warnings == []
    assert first["reports"] == {"junit": "envci-report/junit.xml", "dotenv": "envci-report/test.env"}
    notes = forge.comments["acme%2Fshop#7"]
    assert len(notes) == 6 and sum(marker("shop-pr-7") in n["body"] for n in notes) == 1
    assert [r["method"] for r in forge.requests if r["method"] != "GET"] == ["POST", "PUT"]
    assert forge.seen("PUT")[0]["path"].startswith("/api/v4/projects/acme%2Fshop/merge_requests/7/notes/")
    # pagination followed X-Next-Page to the third page before deciding to create
    assert [parse_qs(r["query"]).get("page", ["1"])[0] for r in forge.seen("GET")][:3] == ["1", "2", "3"]


@pytest.mark.parametrize("status", [403, 500])
def test_a_failing_comment_post_only_warns_and_never_shows_the_token(forge: Forge, tmp_path: Path, status: int) -> None:
    forge.fail_with = status
    warnings: list[str] = []
    done = publish_report(run_result(), {}, env=github_env(forge, tmp_path), warn=warnings.append)
    assert done["comment"].startswith("failed: GET ") and f"HTTP {status}" in done["comment"]
    assert len(warnings) == 1 and "could not post the pull-request comment" in warnings[0] and "the build goes on" in warnings[0]
    assert TOKEN not in warnings[0] and TOKEN not in json.dumps(done)
    assert (tmp_path / "step-summary.md").exists()  # the step summary does not depend on the API


def test_an_unreachable_api_only_warns(tmp_path: Path) -> None:
    warnings: list[str] = []
    env = {**github_env(Forge(), tmp_path), "GITHUB_API_URL": "http://127.0.0.1:9"}
    done = publish_report(run_result(), {}, env=env, warn=warnings.append)
    assert done["comment"].startswith("failed: GET http://127.0.0.1:9/repos/acme/shop/issues/7/comments failed: ConnectionError")
    assert TOKEN not in warnings[0]


def test_a_wrong_token_is_a_warning_too(forge: Forge, tmp_path: Path) -> None:
    warnings: list[str] = []
    done = publish_report(run_result(), {}, env=github_env(forge, tmp_path, GITHUB_TOKEN="ghp_wrong-token-abcdef"), warn=warnings.append)
    assert "HTTP 401" in done["comment"] and "ghp_wrong-token-abcdef" not in warnings[0]


def test_without_a_token_or_a_pull_request_nothing_is_posted(forge: Forge, tmp_path: Path) -> None:
    env = github_env(forge, tmp_path)
    del env["GITHUB_TOKEN"]
    assert publish_report(run_result(), {}, env=env, warn=print)["comment"].startswith("skipped")
    env = github_env(forge, tmp_path, GITHUB_REF="refs/heads/main")
    assert publish_report(run_result(), {}, env=env, warn=print)["comment"].startswith("skipped")
    assert publish_report(run_result(), {}, env=github_env(forge, tmp_path), warn=print, comment=False)["comment"] == "skipped"
    assert forge.requests == []


def test_envci_token_wins_over_the_job_token(forge: Forge, tmp_path: Path) -> None:
    env = github_env(forge, tmp_path, GITHUB_TOKEN="ghp_job-token-0000", ENVCI_GITHUB_TOKEN=TOKEN)
    assert publish_report(run_result(), {}, env=env, warn=print)["comment"] == "created"


def test_jenkins_and_local_builds_only_point_at_files() -> None:
    files = {"junit": "r/junit.xml", "summary": "r/summary.md"}
    assert publish_report(run_result(), files, env={"JENKINS_URL": "http://j"}, warn=print) == {"system": "jenkins", "comment": "skipped", "reports": files}
    assert publish_report(run_result(), files, env={}, warn=print) == {"system": "local", "comment": "skipped"}
