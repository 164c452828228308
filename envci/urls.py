"""Pure: the URL of each exposed component."""

from __future__ import annotations

from envci.config.model import Component


def component_url(c: Component, namespace: str) -> str | None:
    if not c.expose:
        return None
    e = c.expose
    path = e.path if e.path.startswith("/") else f"/{e.path}"
    if e.host:
        return f"{e.scheme}://{e.host}{path}"
    svc = e.service or c.name
    port = "" if (e.scheme, e.port) in (("http", 80), ("https", 443)) else f":{e.port}"
    return f"{e.scheme}://{svc}.{namespace}.svc.cluster.local{port}{path}"


def environment_urls(components: list[Component], namespace: str) -> dict[str, str]:
    return {c.name: u for c in components if (u := component_url(c, namespace))}
