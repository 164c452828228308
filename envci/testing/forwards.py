"""Loopback URLs for `command:` suites: the exposed components, port-forwarded for the test stage.

A command suite runs on the CI runner, which usually cannot reach a Service's cluster address
(ENVCI_URL_<NAME> without an ingress `host`). For the whole test stage envci therefore forwards a
loopback port to each exposed component's Service, as `kubectl port-forward svc/NAME` would, and
passes ENVCI_LOCAL_URL_<NAME> beside ENVCI_URL_<NAME>. A component that cannot be forwarded (no
ready pod, no such Service) gets no local URL and a warning: its tests then fail on their own,
naming the component, rather than the stage stopping before any suite ran.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from envci.ci.outputs import env_key
from envci.config.model import Component
from envci.errors import EnvciError
from envci.kube.client import Kube
from envci.kube.portforward import forward_service

LOCAL_URL_PREFIX = "ENVCI_LOCAL_URL_"


def local_url(c: Component, port: int, host: str = "127.0.0.1") -> str:
    """Pure: the URL that reaches component `c` through a port-forward listening on `host`:`port`."""
    assert c.expose is not None
    path = c.expose.path if c.expose.path.startswith("/") else f"/{c.expose.path}"
    return f"{c.expose.scheme}://{host}:{port}{path}"


@contextlib.contextmanager
def forwarded(
    kube: Kube, namespace: str, components: list[Component], *, progress: Callable[[str], None], warn: Callable[[str], None]
) -> Iterator[dict[str, str]]:
    """ENVCI_LOCAL_URL_<NAME> for every exposed component, valid until the block ends."""
    env: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        for c in components:
            if not c.expose:
                continue
            service = c.expose.service or c.name
            try:
                pf = forward_service(kube, namespace, service, c.expose.port)
            except EnvciError as e:
                warn(f"no local URL for {c.name}: {e.message}")
                continue
            stack.callback(pf.close)
            env[LOCAL_URL_PREFIX + env_key(c.name)] = url = local_url(c, pf.local_port, pf.host)
            progress(f"{c.name}: {url} -> {namespace}/{pf.pod}:{pf.port} (port-forward to Service {service} for the tests)")
        yield env
