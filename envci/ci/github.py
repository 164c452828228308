"""GitHub: the job's step summary, and the sticky pull-request comment through the GraphQL API.

GraphQL, because only it says whether the token's own user wrote a comment (`viewerDidAuthor`,
which also holds for the job's GITHUB_TOKEN, whose REST identity `GET /user` refuses) and whether
it was minimized (`isMinimized`); it also edits and adds comments by their node ids.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from envci.ci.sticky import Comment, call, comment_body, json_of, marker, upsert
from envci.errors import PublishError
from envci.redact import redact, register, truncate

API_VERSION = "2022-11-28"
STEP_SUMMARY_LIMIT = 1_000_000
"""GitHub rejects a step summary over 1 MiB; envci stays just under it."""

COMMENTS_QUERY = """
query($owner: String!, $name: String!, $number: Int!, $after: String) {
  repository(owner: $owner, name: $name) {
    pullRequest(number: $number) {
      id
      comments(first: 100, after: $after) {
        nodes { id body isMinimized viewerDidAuthor }
        pageInfo { hasNextPage endCursor }
      }
    }
  }
}
"""
ADD_COMMENT = "mutation($subject: ID!, $body: String!) { addComment(input: {subjectId: $subject, body: $body}) { clientMutationId } }"
UPDATE_COMMENT = "mutation($id: ID!, $body: String!) { updateIssueComment(input: {id: $id, body: $body}) { clientMutationId } }"


def token(env: Mapping[str, str]) -> str | None:
    """ENVCI_GITHUB_TOKEN first (a token the user chose on purpose), then the job's GITHUB_TOKEN."""
    value = env.get("ENVCI_GITHUB_TOKEN") or env.get("GITHUB_TOKEN") or None
    register(value)
    return value


def graphql_url(env: Mapping[str, str]) -> str:
    """GITHUB_GRAPHQL_URL (set in every Actions job), else derived from GITHUB_API_URL:
    https://api.github.com -> /graphql; https://HOST/api/v3 (GitHub Enterprise Server) -> /api/graphql."""
    if env.get("GITHUB_GRAPHQL_URL"):
        return env["GITHUB_GRAPHQL_URL"]
    api = env.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
    return api[: -len("/v3")] + "/graphql" if api.endswith("/api/v3") else api + "/graphql"


def append_step_summary(path: str, markdown: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(markdown.rstrip() + "\n\n")


@dataclass
class PullRequestComments:
    """The sticky-comment thread of one pull request (its issue comments)."""

    session: requests.Session
    url: str
    owner: str
    name: str
    number: int
    subject: str = ""  # the pull request's node id, learnt from the first page

    def query(self, text: str, variables: dict[str, Any]) -> dict[str, Any]:
        answer = json_of(call(self.session, "POST", self.url, json={"query": text, "variables": variables}))
        errors = answer.get("errors") if isinstance(answer, dict) else None
        if errors:
            messages = "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors)
            raise PublishError(f"POST {self.url} answered GraphQL errors: {truncate(redact(messages), 300)}")
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, dict):
            raise PublishError(f"POST {self.url} answered no data")
        return data

    def pages(self) -> Iterator[list[Comment]]:
        after: str | None = None
        while True:
            data = self.query(COMMENTS_QUERY, {"owner": self.owner, "name": self.name, "number": self.number, "after": after})
            pr = (data.get("repository") or {}).get("pullRequest")
            if not isinstance(pr, dict):
                raise PublishError(f"pull request {self.owner}/{self.name}#{self.number} not found (or the token cannot read it)")
            self.subject = pr.get("id") or self.subject
            conn = pr.get("comments") or {}
            yield [
                Comment(id=n.get("id"), body=n.get("body") or "", own=bool(n.get("viewerDidAuthor")), hidden=bool(n.get("isMinimized")))
                for n in conn.get("nodes") or [] if isinstance(n, dict)
            ]
            info = conn.get("pageInfo") or {}
            if not info.get("hasNextPage") or not info.get("endCursor"):
                return
            after = info["endCursor"]

    def create(self, body: str) -> None:
        if not self.subject:
            raise PublishError(f"pull request {self.owner}/{self.name}#{self.number}: no node id to comment on")
        self.query(ADD_COMMENT, {"subject": self.subject, "body": body})

    def update(self, comment_id: Any, body: str) -> None:
        self.query(UPDATE_COMMENT, {"id": comment_id, "body": body})


def upsert_comment(env: Mapping[str, str], *, repo: str, number: str, markdown: str, env_name: str, session: requests.Session | None = None) -> str:
    tok = token(env)
    if not tok:
        raise PublishError("no token (set GITHUB_TOKEN or ENVCI_GITHUB_TOKEN)")
    if "/" not in repo or not number.isdigit():
        raise PublishError("not a pull-request build (no GITHUB_REPOSITORY or pull-request number)")
    s = session or requests.Session()
    s.headers.update({"Authorization": f"Bearer {tok}", "Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION})
    owner, name = repo.split("/", 1)
    thread = PullRequestComments(session=s, url=graphql_url(env), owner=owner, name=name, number=int(number))
    return upsert(thread, comment_body(markdown, env_name), marker(env_name))
