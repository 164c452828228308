"""`http:` seed steps: send fixture files to an HTTP endpoint of the environment.

With `component`, `http` is a path on that component's Service, reached through a port-forward
envci opens (the CI runner cannot reach cluster addresses); otherwise it is a full URL. Headers
are templated, typically `Authorization: Bearer {{ secrets.api_token }}`; the loader registered
those values with the redactor, and response bodies in errors are redacted and cut short.
Statuses outside `expect_status` (default 200, 201, 204 and 409, "already exists") fail the step.
"""

from __future__ import annotations

import contextlib
import mimetypes
from collections.abc import Iterator

import requests

from envci.config.model import HttpSeed
from envci.errors import InfrastructureError
from envci.kube.portforward import forward_service
from envci.redact import redact, truncate
from envci.seeders.base import SeedContext, SeedError, StepResult

TIMEOUT = (10, 60)
"""(connect, read) seconds per request: a seed endpoint may do real work, but not for ever."""


def content_type(name: str) -> str:
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


@contextlib.contextmanager
def _base_url(step: HttpSeed, ctx: SeedContext) -> Iterator[tuple[str, str]]:
    """(URL to call, how to name it in messages)."""
    if not step.component:  # the model made sure it is an http(s):// URL
        yield step.http, step.http
        return
    comp = ctx.cfg.spec.component(step.component)  # known: checked when envci.yaml loaded
    service = (comp.expose.service if comp.expose else None) or comp.name
    port = comp.expose.port if comp.expose else 80
    path = "/" + step.http.lstrip("/")
    with forward_service(ctx.kube, ctx.namespace, service, port) as pf:
        yield f"http://{pf.host}:{pf.local_port}{path}", f"{step.component}{path}"


def run(step: HttpSeed, ctx: SeedContext) -> StepResult:
    bodies: list[tuple[str, bytes | None]] = []
    for j, rel in enumerate(step.files):
        try:
            bodies.append((rel, ctx.path(rel).read_bytes()))
        except OSError as e:
            raise ctx.config_error(f"cannot read {rel!r}: {e}", "files", j) from None
    if not bodies:
        bodies = [("(no body)", None)]
    sent: list[dict[str, object]] = []
    with _base_url(step, ctx) as (url, shown), requests.Session() as session:
        for name, data in bodies:
            headers = dict(step.headers)
            if data is not None and not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = content_type(name)
            try:
                resp = session.request(step.method.upper(), url, data=data, headers=headers, timeout=TIMEOUT)
            except requests.RequestException as e:
                raise InfrastructureError(
                    f"{step.method.upper()} {redact(shown)} failed: {type(e).__name__}: {truncate(redact(str(e)), 300)}",
                    hint="check that the endpoint is up (`envci wait-ready`) and the URL",
                ) from None
            ctx.progress(f"{step.method.upper()} {redact(shown)} {name}: HTTP {resp.status_code}")
            if resp.status_code not in step.expect_status:
                raise SeedError(
                    f"{step.method.upper()} {redact(shown)} with {name}: HTTP {resp.status_code} {resp.reason}, "
                    f"expected one of {step.expect_status}\n  response: {truncate(redact(resp.text.strip()), 300) or '(empty)'}",
                    kind="http",
                    hint="fix the fixture or the endpoint, or add the status to `expect_status`",
                )
            sent.append({"file": name, "status": resp.status_code})
    return StepResult("http", f"{len(sent)} request(s) to {redact(shown)}", details={"requests": sent})
