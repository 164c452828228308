"""GitHub: the job's step summary, and the sticky pull-request comment through the REST API."""

from __future__ import annotations

from collections.abc import Mapping

import requests

from envci.ci.sticky import Endpoint, comment_body, marker, upsert
from envci.errors import PublishError
from envci.redact import register

API_VERSION = "2022-11-28"
STEP_SUMMARY_LIMIT = 1_000_000
"""GitHub rejects a step summary over 1 MiB; envci stays just under it."""


def token(env: Mapping[str, str]) -> str | None:
    """ENVCI_GITHUB_TOKEN first (a token the user chose on purpose), then the job's GITHUB_TOKEN."""
    value = env.get("ENVCI_GITHUB_TOKEN") or env.get("GITHUB_TOKEN") or None
    register(value)
    return value


def append_step_summary(path: str, markdown: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(markdown.rstrip() + "\n\n")


def _next(r: requests.Response) -> str | None:
    return (r.links.get("next") or {}).get("url")


def upsert_comment(env: Mapping[str, str], *, repo: str, number: str, markdown: str, env_name: str, session: requests.Session | None = None) -> str:
    tok = token(env)
    if not tok:
        raise PublishError("no token (set GITHUB_TOKEN or ENVCI_GITHUB_TOKEN)")
    if not repo or not number:
        raise PublishError("not a pull-request build (no GITHUB_REPOSITORY or pull-request number)")
    api = env.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
    s = session or requests.Session()
    s.headers.update({"Authorization": f"Bearer {tok}", "Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION})
    ep = Endpoint(
        session=s,
        list_url=f"{api}/repos/{repo}/issues/{number}/comments?per_page=100",
        item_url=lambda cid: f"{api}/repos/{repo}/issues/comments/{cid}",
        update_method="PATCH",
        next_page=_next,
    )
    return upsert(ep, comment_body(markdown, env_name), marker(env_name))
