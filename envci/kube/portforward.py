"""A local TCP port that reaches a pod's port through the API server (like `kubectl port-forward`).

Seed steps and test suites use it to talk to a database or HTTP service inside the environment
from the CI runner, which cannot reach cluster addresses. Every accepted local connection gets its
own port-forward stream (`Kube.port_forward`), relayed by a small thread pair, so a
client that opens several connections (a connection pool, HTTP keep-alive failing over) just works.

Choosing the pod behind a Service is a pure function (`service_target`), unit-tested on real
object shapes; the classes here are the thin I/O shell.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
from dataclasses import dataclass
from typing import Any

from envci.errors import ConfigError, NotReadyError
from envci.kube.client import ForwardStream, Kube
from envci.redact import redact

log = logging.getLogger("envci.kube.portforward")


@dataclass(frozen=True)
class Target:
    """A pod and the container port that a Service port leads to."""

    pod: str
    port: int


def _selector_matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def pod_is_ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def _container_port(pod: dict[str, Any], name: str) -> int | None:
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == name:
                return int(p["containerPort"])
    return None


def service_target(service: dict[str, Any], pods: list[dict[str, Any]], port: int | None) -> Target:
    """Pure: the ready pod (first by name, so repeated runs pick the same one) and container port
    behind `port` of `service`.

    Raises ConfigError when the Service has no such port or no selector (nothing to forward to),
    NotReadyError when no selected pod is ready.
    """
    meta = service.get("metadata") or {}
    name = f"Service {meta.get('namespace', '')}/{meta.get('name', '?')}"
    spec = service.get("spec") or {}
    ports = spec.get("ports") or []
    if port is None and len(ports) == 1:
        entry: dict[str, Any] | None = ports[0]
    else:
        entry = next((p for p in ports if p.get("port") == port or p.get("targetPort") == port), None)
    if entry is None:
        known = ", ".join(str(p.get("port")) for p in ports) or "none"
        raise ConfigError(f"{name} has no port {port} (its ports: {known})", hint="set the step's `port` to one of the Service's ports")
    selector = spec.get("selector") or {}
    if not selector:
        raise ConfigError(f"{name} has no selector, so there is no pod to forward to", hint="point the step at a Service that selects pods")
    ready = sorted(
        (p for p in pods if _selector_matches(selector, (p.get("metadata") or {}).get("labels") or {}) and pod_is_ready(p)),
        key=lambda p: p["metadata"]["name"],
    )
    if not ready:
        sel = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        raise NotReadyError(f"{name}: no ready pod matches its selector {sel}", hint="run `envci wait-ready` first; `envci status` shows the pods")
    pod = ready[0]
    target: Any = entry.get("targetPort", entry.get("port"))
    number: int | None = int(target) if isinstance(target, int) or str(target).isdigit() else _container_port(pod, str(target))
    if number is None:
        raise ConfigError(f"{name}: pod {pod['metadata']['name']} has no container port named {target!r}")
    return Target(pod=pod["metadata"]["name"], port=number)


def resolve_service(kube: Kube, namespace: str, service: str, port: int | None) -> Target:
    svc = kube.get("v1", "Service", service, namespace)
    if svc is None:
        raise ConfigError(
            f"Service {namespace}/{service} does not exist",
            hint="check the step's `service`/`component`; `kubectl get svc -n <namespace>` lists the Services",
        )
    return service_target(svc, kube.pods(namespace), port)


class PortForward:
    """A listening socket on `host` (loopback) whose connections reach `pod`:`port`.

    Use as a context manager, or call `start()` and `close()`. `local_port` is the port to
    connect to; `errors` collects what the API server reported for failed connections.
    """

    def __init__(self, kube: Kube, namespace: str, pod: str, port: int, *, host: str = "127.0.0.1") -> None:
        self.kube = kube
        self.namespace = namespace
        self.pod = pod
        self.port = port
        self.host = host
        self.local_port = 0
        self.errors: list[str] = []
        self._server: socket.socket | None = None
        self._stop = threading.Event()
        self._conns: list[Any] = []
        self._lock = threading.Lock()

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.local_port)

    def __enter__(self) -> "PortForward":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> "PortForward":
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((self.host, 0))
        server.listen(16)
        self._server = server
        self.local_port = server.getsockname()[1]
        threading.Thread(target=self._accept, name=f"port-forward {self.pod}:{self.port}", daemon=True).start()
        log.debug("forwarding %s:%d -> pod %s/%s:%d", self.host, self.local_port, self.namespace, self.pod, self.port)
        return self

    def close(self) -> None:
        self._stop.set()
        if self._server is not None:
            try:
                self._server.close()
            except OSError:
                pass
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                c.close()
            except OSError:
                pass

    def open_stream(self) -> ForwardStream:
        """One port-forward stream to the pod: an object with `.socket(port)` and `.error(port)`."""
        return self.kube.port_forward(self.namespace, self.pod, self.port)

    def _accept(self) -> None:
        assert self._server is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            pf = self.open_stream()
        except Exception as e:  # noqa: BLE001 - reported through `errors`; the client sees a closed connection
            self.errors.append(str(e))
            log.warning("%s", redact(str(e)))
            conn.close()
            return
        remote = pf.socket(self.port)
        with self._lock:
            self._conns += [conn, remote]
        try:
            _relay(conn, remote, self._stop)
        finally:
            for s in (conn, remote):
                try:
                    s.close()
                except OSError:
                    pass
            err = pf.error(self.port)
            if err:
                self.errors.append(redact(str(err))[:500])
                log.warning("port-forward to %s/%s:%d: %s", self.namespace, self.pod, self.port, redact(str(err))[:500])


def _relay(a: Any, b: Any, stop: threading.Event, chunk: int = 65536) -> None:
    """Copy bytes both ways until either side closes (then both are closed by the caller)."""
    socks = [a, b]
    while not stop.is_set():
        try:
            readable, _, _ = select.select(socks, [], [], 0.5)
        except (OSError, ValueError):
            return
        for s in readable:
            try:
                data = s.recv(chunk)
            except OSError:
                return
            if not data:
                return
            other = b if s is a else a
            try:
                other.sendall(data)
            except OSError:
                return


def forward_pod(kube: Kube, namespace: str, pod: str, port: int) -> PortForward:
    """A started PortForward to a pod's port; close it (or use `with`)."""
    return PortForward(kube, namespace, pod, port).start()


def forward_service(kube: Kube, namespace: str, service: str, port: int | None = None) -> PortForward:
    """A started PortForward to a ready pod behind `service`:`port`, as kubectl does for `svc/NAME`."""
    target = resolve_service(kube, namespace, service, port)
    return PortForward(kube, namespace, target.pod, target.port).start()
