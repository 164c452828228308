"""GitLab: the sticky merge-request note through the REST API (v4).

JUnit and dotenv results reach GitLab through the job's `artifacts: reports:` (the pipeline
template points them at the report folder); only the note needs an API call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import quote

import requests

from envci.ci.sticky import Endpoint, comment_body, marker, upsert
from envci.errors import PublishError
from envci.redact import register


def token(env: Mapping[str, str]) -> str | None:
    value = env.get("ENVCI_GITLAB_TOKEN") or None
    register(value)
    return value


def _next(list_url: str) -> Callable[[requests.Response], str | None]:
    def next_page(r: requests.Response) -> str | None:
        page = r.headers.get("X-Next-Page", "").strip()
        return f"{list_url}&page={page}" if page else None

    return next_page


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
    base = f"{api}/projects/{quote(project, safe='')}/merge_requests/{iid}/notes"
    list_url = f"{base}?per_page=100&sort=asc&order_by=created_at"
    ep = Endpoint(
        session=s,
        list_url=list_url,
        item_url=lambda nid: f"{base}/{nid}",
        update_method="PUT",
        next_page=_next(list_url),
    )
    return upsert(ep, comment_body(markdown, env_name), marker(env_name))
