"""A sticky comment: one pull/merge-request comment per environment, created once, then edited.

The comment carries a hidden HTML marker naming the environment; each publish lists the
request's comments, edits the one with the marker, and creates one only when none has it. The
GitHub and GitLab adapters supply the four HTTP calls; the decisions here are pure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

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


def find_marked(comments: Iterable[dict[str, Any]], mark: str) -> Any | None:
    """Pure: the id of the first comment whose body holds the marker, or None."""
    for c in comments:
        if mark in (c.get("body") or ""):
            return c.get("id")
    return None


@dataclass
class Endpoint:
    """The HTTP side of one system: how to list, create and update comments."""

    session: requests.Session
    list_url: str
    item_url: Callable[[Any], str]
    update_method: str
    next_page: Callable[[requests.Response], str | None]

    def call(self, method: str, url: str, **kw: Any) -> requests.Response:
        shown = url.split("?", 1)[0]
        try:
            r = self.session.request(method, url, timeout=TIMEOUT_SECONDS, **kw)
        except requests.RequestException as e:
            raise PublishError(f"{method} {shown} failed: {type(e).__name__}") from None
        if r.status_code >= 300:
            raise PublishError(f"{method} {shown} answered HTTP {r.status_code}: {truncate(redact(r.text.strip()), 300)}")
        return r


def upsert(ep: Endpoint, body: str, mark: str) -> str:
    """Create or update the marked comment; returns "created" or "updated"."""
    url: str | None = ep.list_url
    found = None
    for _ in range(MAX_PAGES):
        if url is None:
            break
        r = ep.call("GET", url)
        try:
            page = r.json()
        except ValueError:
            raise PublishError(f"GET {url.split('?', 1)[0]} did not answer JSON") from None
        if not isinstance(page, list):
            raise PublishError(f"GET {url.split('?', 1)[0]} did not answer a list of comments")
        found = find_marked(page, mark)
        if found is not None:
            break
        url = ep.next_page(r)
    if found is not None:
        ep.call(ep.update_method, ep.item_url(found), json={"body": body})
        return "updated"
    ep.call("POST", ep.list_url.split("?", 1)[0], json={"body": body})
    return "created"
