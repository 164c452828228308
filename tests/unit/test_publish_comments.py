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
ME = "envci-bot"  # the token's user
GITLAB_IDS = {ME: 99, "reviewer": 7, "mallory": 13}


@dataclass
class Forge:
    """State of the emulated server: comments per thread, every request seen, forced failures.

    Comments are `{"id", "body", "user", "minimized", "system"}`; GitHub's are served through GraphQL
    (node ids, `viewerDidAuthor`, `isMinimized`), GitLab's as REST notes with an author id."""

    comments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_with: int | None = None
    graphql_error: str | None = None
    next_id: int = 100
    base: str = ""

    def seen(self, method: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == method]

    def ops(self) -> list[str]:
        """GitHub's GraphQL operations in order: list, add, update."""
        return [r["op"] for r in self.requests if r.get("op")]


GL_USER = "/api/v4/user"
GL_LIST = re.compile(r"^/api/v4/projects/(?P<p>[^/]+)/merge_requests/(?P<n>\d+)/notes$")
GL_ITEM = re.compile(r"^/api/v4/projects/(?P<p>[^/]+)/merge_requests/(?P<n>\d+)/notes/(?P<id>\d+)$")
GH_GRAPHQL = "/api/graphql"


def graphql(forge: Forge, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """What GitHub's GraphQL API answers for the three operations envci sends."""
    query, v = body["query"], body["variables"]
    if "updateIssueComment" in query:
        for thread in forge.comments.values():
            for item in thread:
                if item["id"] == v["id"]:
                    item["body"] = v["body"]
                    return "update", {"data": {"updateIssueComment": {"clientMutationId": None}}}
        return "update", {"data": None, "errors": [{"message": f"Could not resolve to a node with the global id of '{v['id']}'"}]}
    if "addComment" in query:
        key = v["subject"].removeprefix("PR_")
        forge.next_id += 1
        forge.comments.setdefault(key, []).append({"id": f"IC_{forge.next_id}", "body": v["body"], "user": ME})
        return "add", {"data": {"addComment": {"clientMutationId": None}}}
    key = f"{v['owner']}/{v['name']}#{v['number']}"
    thread = forge.comments.setdefault(key, [])
    page = int(v["after"] or 0)
    items = thread[page * PAGE : (page + 1) * PAGE]
    nodes = [{"id": c["id"], "body": c["body"], "viewerDidAuthor": c["user"] == ME, "isMinimized": c.get("minimized", False)} for c in items]
    more = (page + 1) * PAGE < len(thread)
    conn = {"nodes": nodes, "pageInfo": {"hasNextPage": more, "endCursor": str(page + 1) if more else None}}
    return "list", {"data": {"repository": {"pullRequest": {"id": f"PR_{key}", "comments": conn}}}}


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
            seen: dict[str, Any] = {"method": self.command, "path": url.path, "query": url.query, "headers": dict(self.headers), "body": body}
            forge.requests.append(seen)
            if forge.fail_with:
                return self._send(forge.fail_with, {"message": "Resource not accessible by integration"})
            github = self.headers.get("Authorization") == f"Bearer {TOKEN}"
            gitlab = self.headers.get("PRIVATE-TOKEN") == TOKEN
            if not (github or gitlab):
                return self._send(401, {"message": "Bad credentials"})
            if github and url.path == GH_GRAPHQL and self.command == "POST":
                if forge.graphql_error:
                    return self._send(200, {"data": None, "errors": [{"type": "FORBIDDEN", "message": forge.graphql_error}]})
                seen["op"], answer = graphql(forge, body)
                return self._send(200, answer)
            if gitlab and url.path == GL_USER:
                return self._send(200, {"id": GITLAB_IDS[ME], "username": ME})
            m = GL_LIST.match(url.path) if gitlab else None
            if m:
                key = f"{m['p']}#{m['n']}"
                thread = forge.comments.setdefault(key, [])
                if self.command == "GET":
                    page = int(parse_qs(url.query).get("page", ["1"])[0])
                    items = thread[(page - 1) * PAGE : page * PAGE]
                    notes = [{"id": c["id"], "body": c["body"], "system": c.get("system", False), "author": {"id": GITLAB_IDS[c["user"]]}} for c in items]
                    more = page * PAGE < len(thread)
                    return self._send(200, notes, {"X-Next-Page": str(page + 1)} if more else {"X-Next-Page": ""})
                if self.command == "POST":
                    forge.next_id += 1
                    item = {"id": forge.next_id, "body": body["body"], "user": ME}
                    thread.append(item)
                    return self._send(201, item)
            m = GL_ITEM.match(url.path) if gitlab else None
            if m and self.command == "PUT":
                for thread in forge.comments.values():
                    for item in thread:
                        if str(item["id"]) == m["id"]:
                            item["body"] = body["body"]
                            return self._send(200, item)
            return self._send(404, {"message": "Not Found"})

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


def unrelated(n: int, *, gitlab: bool = False) -> list[dict[str, Any]]:
    return [{"id": i if gitlab else f"IC_{i}", "body": f"LGTM {i}", "user": "reviewer"} for i in range(1, n + 1)]


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
    # pagination (two comments a page) reached the last page before deciding to add
    assert forge.ops() == ["list", "list", "add", "list", "list", "update", "list", "list", "update"]
    updates = [r for r in forge.requests if r.get("op") == "update"]
    assert {r["body"]["variables"]["id"] for r in updates} == {ours[0]["id"]}
    first_request = forge.requests[0]
    assert first_request["path"] == "/api/graphql" and first_request["body"]["variables"] == {"owner": "acme", "name": "shop", "number": 7, "after": None}
    assert first_request["headers"]["Accept"] == "application/vnd.github+json" and first_request["headers"]["X-GitHub-Api-Version"] == "2022-11-28"
    # the step summary was appended each time
    summary = (tmp_path / "step-summary.md").read_text()
    assert summary.count("envci tests") == 3 and "checks.test_total: off by one" in summary


def test_a_marker_in_someone_elses_comment_is_only_text(forge: Forge, tmp_path: Path) -> None:
    """Anyone can paste the marker: envci neither edits their comment nor stays quiet behind it."""
    planted = {"id": "IC_5", "body": marker("shop-pr-7") + "\nall tests passed, merge away", "user": "mallory"}
    forge.comments["acme/shop#7"] = [*unrelated(2), planted]
    assert publish_report(run_result(), {}, env=github_env(forge, tmp_path), warn=print)["comment"] == "created"
    thread = forge.comments["acme/shop#7"]
    assert planted["body"].endswith("merge away") and len(thread) == 4
    assert thread[-1]["user"] == ME and "off by one" in thread[-1]["body"]


def test_a_minimized_comment_of_envci_is_left_hidden_and_a_new_one_made(forge: Forge, tmp_path: Path) -> None:
    hidden = {"id": "IC_9", "body": marker("shop-pr-7") + "\nold report", "user": ME, "minimized": True}
    forge.comments["acme/shop#7"] = [hidden]
    assert publish_report(run_result(), {}, env=github_env(forge, tmp_path), warn=print)["comment"] == "created"
    assert hidden["body"].endswith("old report") and len(forge.comments["acme/shop#7"]) == 2
    assert publish_report(run_result(), {}, env=github_env(forge, tmp_path), warn=print)["comment"] == "updated"
    assert len(forge.comments["acme/shop#7"]) == 2


def test_a_graphql_error_is_a_warning_that_names_it(forge: Forge, tmp_path: Path) -> None:
    """GraphQL answers 200 with `errors` (e.g. a token without pull-requests: write)."""
    forge.graphql_error = "Resource not accessible by integration"
    warnings: list[str] = []
    env = github_env(forge, tmp_path, GITHUB_GRAPHQL_URL=f"{forge.base}/api/graphql")  # as Actions sets it
    done = publish_report(run_result(), {}, env=env, warn=warnings.append)
    assert done["comment"] == "failed: POST " + f"{forge.base}/api/graphql answered GraphQL errors: Resource not accessible by integration"
    assert len(warnings) == 1 and TOKEN not in warnings[0]


def test_another_environment_gets_its_own_comment(forge: Forge, tmp_path: Path) -> None:
    env = github_env(forge, tmp_path)
    publish_report(run_result(), {}, env=env, warn=print)
    other = run_result()
    other.name = "shop-pr-7-mobile"
    assert publish_report(other, {}, env=env, warn=print)["comment"] == "created"
    assert len(forge.comments["acme/shop#7"]) == 2


def test_gitlab_note_is_created_once_then_updated_with_put(forge: Forge) -> None:
    planted = {"id": 6, "body": marker("shop-pr-7") + "\nplanted", "user": "mallory"}
    system = {"id": 8, "body": marker("shop-pr-7") + " mentioned in commit abc", "user": ME, "system": True}
    forge.comments["acme%2Fshop#7"] = [*unrelated(3, gitlab=True), planted, system]
    files = {"junit": "envci-report/junit.xml", "dotenv": "envci-report/test.env"}
    warnings: list[str] = []
    first = publish_report(run_result(), files, env=gitlab_env(forge), warn=warnings.append)
    second = publish_report(run_result(failed=False), files, env=gitlab_env(forge), warn=warnings.append)
    assert (first["comment"], second["comment"]) == ("created", "updated") and warnings == []
    assert first["reports"] == {"junit": "envci-report/junit.xml", "dotenv": "envci-report/test.env"}
    notes = forge.comments["acme%2Fshop#7"]
    assert len(notes) == 6 and planted["body"].endswith("planted") and system["body"].endswith("abc")
    assert [r["method"] for r in forge.requests if r["method"] != "GET"] == ["POST", "PUT"]
    assert forge.seen("PUT")[0]["path"] == f"/api/v4/projects/acme%2Fshop/merge_requests/7/notes/{notes[-1]['id']}"
    # the token's user first, then pagination followed X-Next-Page to the third page before deciding to create
    gets = forge.seen("GET")
    assert gets[0]["path"] == "/api/v4/user"
    assert [parse_qs(r["query"]).get("page", ["1"])[0] for r in gets[1:4]] == ["1", "2", "3"]


@pytest.mark.parametrize("status", [403, 500])
def test_a_failing_comment_post_only_warns_and_never_shows_the_token(forge: Forge, tmp_path: Path, status: int) -> None:
    forge.fail_with = status
    warnings: list[str] = []
    done = publish_report(run_result(), {}, env=github_env(forge, tmp_path), warn=warnings.append)
    assert done["comment"].startswith("failed: POST ") and f"HTTP {status}" in done["comment"]
    assert len(warnings) == 1 and "could not post the pull-request comment" in warnings[0] and "the build goes on" in warnings[0]
    assert TOKEN not in warnings[0] and TOKEN not in json.dumps(done)
    assert (tmp_path / "step-summary.md").exists()  # the step summary does not depend on the API


def test_an_unreachable_api_only_warns(tmp_path: Path) -> None:
    warnings: list[str] = []
    env = {**github_env(Forge(), tmp_path), "GITHUB_API_URL": "http://127.0.0.1:9"}
    done = publish_report(run_result(), {}, env=env, warn=warnings.append)
    assert done["comment"] == "failed: POST http://127.0.0.1:9/graphql failed: ConnectionError"
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
