"""GitLab: the sticky merge-request note through the REST API (v4).

JUnit and dotenv results reach GitLab through the job's `artifacts: reports:` (the pipeline
template points them at the report folder); only the note needs an API call. The token's own user
(`GET /user`, which project and group access tokens answer with their bot user) is the only author
whose note envci edits.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from envci.ci.sticky import Comment, call, comment_body, json_of, marker, upsert
from envci.errors import PublishError
from envci.redact import register


def token(env: Mapping[str, str]) -> str | None:
    value = env.get("ENVCI_GITLAB_TOKEN") or None
    register(value)
    return value


@dataclass
class MergeRequestNotes:
    """The sticky-comment thread of one merge request (its notes)."""

    session: requests.Session
    api: str
    base: str  # .../projects/<id>/merge_requests/<iid>/notes

    def me(self) -> Any:
        user = json_of(call(self.session, "GET", f"{self.api}/user"))
        if not isinstance(user, dict) or "id" not in user:
            raise PublishError(f"GET {self.api}/user did not name the token's user")
        return user["id"]

    def pages(self) -> Iterator[list[Comment]]:
        me = self.me()
        url: str | None = f"{self.base}?per_page=100&sort=asc&order_by=created_at"
        while url:
            r = call(self.session, "GET", url)
            page = json_of(r)
            if not isinstance(page, list):
                raise PublishError(f"GET {self.base} did not answer a list of notes")
            yield [
                Comment(id=n.get("id"), body=n.get("body") or "", own=(n.get("author") or {}).get("id") == me, hidden=bool(n.get("system")))
                for n in page if isinstance(n, dict)
            ]
            following = r.headers.get("X-Next-Page", "").strip()
            url = f"{self.base}?per_page=100&sort=asc&order_by=created_at&page={following}" if following else None

    def create(self, body: str) -> None:
        call(self.session, "POST", self.base, json={"body": body})

    def update(self, comment_id: Any, body: str) -> None:
        call(self.session, "PUT", f"{self.base}/{comment_id}", json={"body": body})


def upsert_note(env: Mapping[str, str], *, markdown: str, env_name: str, session: requests.Session | None = None) -> str:
    tok = token(env)
    if not tok:
        raise PublishError("no token (set ENVCI_GITLAB_TOKEN)")
    api = env.get("CI_API_V4_URL", "").rstrip("/")
    project = env.get("CI_PROJECT_ID", "")
    iid = env.get("CI_MERGE_REQUEST_IID", "")
    if not (api and project and iid):
        raise PublishError("not a merge-request pipeline (needs CI_API_V4_URL, CI_PROJECT_ID and CI_MERGE_REQUEST_IID)")
    s = session or requests.Session()
    s.headers.update({"PRIVATE-TOKEN": tok})
    thread = MergeRequestNotes(session=s, api=api, base=f"{api}/projects/{quote(project, safe='')}/merge_requests/{iid}/notes")
    return upsert(thread, comment_body(markdown, env_name), marker(env_name))
