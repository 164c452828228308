"""HTTP to the Kubernetes API server: one connection pool, TLS and credentials from the kubeconfig.

The Kubernetes client package would do the same, but importing it costs more CPU than the rest of
a command's start-up together (about 0.13 s on two cores), paid by every envci process, and a
hundred environments provisioned at once start hundreds of them. envci asks the API for a few
dozen paths in JSON, which urllib3 serves directly.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any, Protocol
from urllib.parse import urlencode

import urllib3

DEFAULT_REQUEST_TIMEOUT = (5.0, 60.0)
"""(connect, read) seconds for every API call that sets none (`ENVCI_API_TIMEOUT` sets the read
part). Without it a connection that goes silent (a dropped route, a half-open socket) blocks a
stage forever instead of being retried."""

TimeoutSpec = float | tuple[float, float] | None


class ApiError(Exception):
    """The API server answered with an error status. `body` is its text, kept for the Status
    message only: a body can echo what was sent, secrets included, so it is never printed whole."""

    def __init__(self, status: int, reason: str = "", body: str = "", headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"({status}) {reason}")
        self.status = status
        self.reason = reason
        self.body = body
        self.headers: dict[str, str] = dict(headers or {})


class Credentials(Protocol):
    def headers(self) -> dict[str, str]: ...

    def refresh(self) -> bool: ...


class Endpoint(Protocol):
    """What a transport needs of a loaded kubeconfig (envci.kube.kubeconfig.Endpoint)."""

    @property
    def server(self) -> str: ...
    @property
    def ca_file(self) -> str | None: ...
    @property
    def cert_file(self) -> str | None: ...
    @property
    def key_file(self) -> str | None: ...
    @property
    def insecure(self) -> bool: ...
    @property
    def tls_server_name(self) -> str | None: ...
    @property
    def proxy_url(self) -> str | None: ...
    @property
    def auth(self) -> Credentials: ...


def debug_http() -> bool:
    """`ENVCI_DEBUG=http` (a comma-separated list) prints every API request envci sends."""
    return "http" in (os.environ.get("ENVCI_DEBUG") or "").replace(" ", "").split(",")


def trace_request(method: str, path: str, status: Any, seconds: float) -> None:
    """One line on stderr per request: method, path (never a body or a header), status, duration."""
    # One write per line: print writes the text and its newline apart, and threads (a wait's
    # watches) would interleave them.
    sys.stderr.write(f"envci: http {method} {path} -> {status} in {seconds * 1000:.0f} ms\n")
    sys.stderr.flush()


def ssl_context(ep: Endpoint) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ep.ca_file) if not ep.insecure else ssl.create_default_context()
    if ep.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if ep.cert_file:
        ctx.load_cert_chain(ep.cert_file, ep.key_file)
    return ctx


def request_path(path: str, query: Mapping[str, Any] | None) -> str:
    """Pure: the path with its query; None values left out, booleans as the API spells them."""
    params = [(k, str(v).lower() if isinstance(v, bool) else str(v)) for k, v in (query or {}).items() if v is not None]
    return f"{path}?{urlencode(params)}" if params else path


def lines(resp: Any) -> Iterator[str]:
    """The lines of a streamed answer (a watch's events, a followed log) as they arrive; a chunk
    may end mid-line, and a line is split only at a newline, which no UTF-8 sequence contains."""
    buffer = b""
    for chunk in resp.stream(None, decode_content=False):
        buffer += chunk
        *done, buffer = buffer.split(b"\n")
        for line in done:
            yield line.decode("utf-8", errors="replace")
    if buffer:
        yield buffer.decode("utf-8", errors="replace")


def proxy_manager(url: str, kw: dict[str, Any]) -> urllib3.PoolManager:
    """A cluster's proxy-url: HTTP(S) proxies tunnel with CONNECT; SOCKS needs PySocks."""
    if url.startswith("socks"):
        try:
            from urllib3.contrib.socks import SOCKSProxyManager
        except ImportError:
            from envci.errors import InfrastructureError

            raise InfrastructureError(
                f"the kubeconfig's proxy-url is a SOCKS proxy ({url.split('://')[0]}), which needs the PySocks package",
                hint="pip install PySocks (or urllib3[socks]) beside envci",
            ) from None
        return SOCKSProxyManager(url, **kw)
    return urllib3.ProxyManager(url, **kw)


class Transport:
    """Requests to one API server, each with a timeout and fresh credentials (an exec plugin's
    token expires; a 401 gets one retry after the credentials are refreshed)."""

    def __init__(self, endpoint: Endpoint, *, timeout: tuple[float, float] = DEFAULT_REQUEST_TIMEOUT) -> None:
        self.endpoint = endpoint
        self.server = endpoint.server.rstrip("/")
        self.timeout = timeout
        self.trace = debug_http()
        self._pool: urllib3.PoolManager | None = None
        self._generation = 0

    def _manager(self) -> urllib3.PoolManager:
        # Built on first use: a command that fails before talking to the API pays for no TLS set-up;
        # built again when an exec plugin renewed the client certificate.
        generation = getattr(self.endpoint.auth, "cert_generation", 0)
        if self._pool is None or generation != self._generation:
            self._generation = generation
            ep = self.endpoint
            # urllib3 retries what never reached the server (refused, reset before sending); the
            # adapter's own retries handle answers. A wait holds a watch open per kind it judges,
            # beside the lease's renewals: room for those connections to be kept, not discarded.
            kw: dict[str, Any] = {"ssl_context": ssl_context(ep), "maxsize": 32, "block": False,
                                  "retries": urllib3.Retry(total=3, redirect=0, status=0, raise_on_status=False)}
            if ep.tls_server_name:
                kw["server_hostname"] = ep.tls_server_name
            self._pool = proxy_manager(ep.proxy_url, kw) if ep.proxy_url else urllib3.PoolManager(**kw)
        return self._pool

    def request(self, method: str, path: str, *, query: Mapping[str, Any] | None = None, body: Any = None,
                content_type: str = "application/json", timeout: TimeoutSpec = None, stream: bool = False) -> Any:
        """One request: the answer's JSON (an empty dict for an empty body), or with `stream` the open
        response (the caller releases it). An error status raises ApiError; no answer raises
        urllib3's or the OS's error, which the adapter retries."""
        url_path = request_path(path, query)
        payload = json.dumps(body).encode() if body is not None else None
        resp = self._send(method, url_path, payload, content_type, timeout, stream)
        if resp.status == 401 and self.endpoint.auth.refresh():
            resp.release_conn()
            resp = self._send(method, url_path, payload, content_type, timeout, stream)
        if resp.status >= 400:
            text = resp.data.decode("utf-8", errors="replace") if not stream else resp.read().decode("utf-8", errors="replace")
            resp.release_conn()
            raise ApiError(resp.status, resp.reason or "", text, dict(resp.headers))
        if stream:
            return resp
        data = resp.data
        return json.loads(data) if data else {}

    def _send(self, method: str, url_path: str, payload: bytes | None, content_type: str, timeout: TimeoutSpec, stream: bool) -> Any:
        headers = {"Accept": "application/json", "User-Agent": "envci", **self.endpoint.auth.headers()}
        if payload is not None:
            headers["Content-Type"] = content_type
        t = timeout or self.timeout
        to = urllib3.Timeout(connect=t[0], read=t[1]) if isinstance(t, tuple) else urllib3.Timeout(total=t)
        start = time.monotonic()
        status: Any = "no answer"
        try:
            resp = self._manager().request(method, self.server + url_path, body=payload, headers=headers, timeout=to,
                                           preload_content=not stream)
            status = resp.status
            return resp
        finally:
            if self.trace:
                trace_request(method, url_path, status, time.monotonic() - start)
