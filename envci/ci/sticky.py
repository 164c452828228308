"""A sticky comment: one pull/merge-request comment per environment, created once, then edited.

The comment carries a hidden HTML marker naming the environment; each publish lists the
request's comments, edits the one with the marker, and creates one only when none has it.

A marker is plain text that anyone can paste into a comment of their own, so only a comment the
token's own user wrote, and that nobody hid (a minimized GitHub comment, a GitLab system note), is
taken for envci's: otherwise envci would edit, or stay silent behind, somebody else's comment. The
GitHub and GitLab adapters list, create and update; the decisions here are pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import requests

from envci.errors import PublishError
from envci.redact import redact, truncate

TIMEOUT_SECONDS = 15
"""Per request: a comment is a convenience, never worth holding a pipeline for long."""
MAX_PAGES = 30
"""Pages of comments read while looking for the marker (100 per page): a bound for huge threads."""


def marker(env_name: str) -> str:
    return f"<!-- envci:test-report env={env_name} -->"


def comment_body(markdown: str, env_name: str) -> str:
    return f"{marker(env_name)}\n{markdown.rstrip()}\n"


@dataclass(frozen=True)
class Comment:
    """A comment as the adapters report it."""

    id: Any
    body: str
    own: bool
    """Written by the user the token belongs to."""
    hidden: bool = False
    """Minimized on GitHub, a system note on GitLab: not a comment envci may reuse."""


def find_marked(comments: Iterable[Comment], mark: str) -> Any | None:
    """Pure: the id of the first comment that is the token user's own, not hidden, and holds the marker."""
    for c in comments:
        if c.own and not c.hidden and mark in c.body:
            return c.id
    return None


class Thread(Protocol):
    """One pull or merge request's comments, as one CI system's API serves them."""

    def pages(self) -> Iterator[list[Comment]]: ...

    def create(self, body: str) -> None: ...

    def update(self, comment_id: Any, body: str) -> None: ...


def call(session: requests.Session, method: str, url: str, **kw: Any) -> requests.Response:
    """One request; a network error or an answer of 300 and above is a PublishError that never
    holds the query string, and holds the answer's text only cut short and redacted."""
    shown = url.split("?", 1)[0]
    try:
        r = session.request(method, url, timeout=TIMEOUT_SECONDS, **kw)
    except requests.RequestException as e:
        raise PublishError(f"{method} {shown} failed: {type(e).__name__}") from None
    if r.status_code >= 300:
        raise PublishError(f"{method} {shown} answered HTTP {r.status_code}: {truncate(redact(r.text.strip()), 300)}")
    return r


def json_of(r: requests.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        raise PublishError(f"{r.request.method} {str(r.url).split('?', 1)[0]} did not answer JSON") from None


def upsert(thread: Thread, body: str, mark: str) -> str:
    """Create or update the marked comment; returns "created" or "updated"."""
    found = None
    for number, page in enumerate(thread.pages()):
        found = find_marked(page, mark)
        if found is not None or number + 1 >= MAX_PAGES:
            break
    if found is not None:
        thread.update(found, body)
        return "updated"
    thread.create(body)
    return "created"
