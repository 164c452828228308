"""An in-memory stand-in for envci's `Kube` adapter (envci.kube.client), for stage tests that run in seconds.

It fakes envci's own adapter, not the Kubernetes API: the same public methods (test_fakekube.py
holds the two to the same signatures), over dicts in API JSON shape. It keeps what stage logic
depends on, and no more:
- namespaced objects exist only in a namespace that exists and is not being deleted;
- deleting a namespace marks it Terminating and removes its objects; objects with finalizers keep
  it Terminating until a patch clears them; `linger` keeps an emptied namespace a few reads longer;
- every write bumps a resourceVersion, and a Lease is replaced only from the version last read;
- time is simulated: `at(seconds, change)` schedules a change, and the adapter's waiting calls
  (`watch`, `wait_for_pod_change`) move the clock to the next change or their own timeout.
`fail(method, error)` makes a method raise, as the real adapter raises InfrastructureError; `calls`
records every change made, in order, for tests of what a stage does first.
"""

from __future__ import annotations

import copy
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from envci.errors import ConfigError, InfrastructureError
from envci.kube.client import ExecResult, ForwardStream, RetryPolicy, WatchEvent

Obj = dict[str, Any]
Key = tuple[str, str, str]
"""(kind, namespace or "", name)"""

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)

NAMESPACED = frozenset({
    "ConfigMap", "Secret", "Pod", "Service", "Endpoints", "Event", "ServiceAccount", "PersistentVolumeClaim", "Deployment",
    "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob", "Ingress", "NetworkPolicy", "Role", "RoleBinding", "Lease",
    "LimitRange", "ResourceQuota",
})
CLUSTER_SCOPED = frozenset({"Namespace", "Node", "PersistentVolume", "StorageClass", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"})


def refused(doing: str, why: str) -> InfrastructureError:
    """What the real adapter raises when the API answers with an error."""
    return InfrastructureError(f"Kubernetes API refused to {doing}: {why}")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: a null deletes a key, a dict merges, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def matches(selector: str | None, labels: dict[str, str]) -> bool:
    """Equality-based label selectors (`a=b,c!=d,e`), the forms envci uses."""
    for term in filter(None, (t.strip() for t in (selector or "").split(","))):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.split("=", 1)
            if labels.get(k.rstrip("=")) != v:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class FakeKube:
    def __init__(self, *, kinds: dict[str, bool] | None = None, linger: int = 0, start: datetime = T0, horizon: float = 3600) -> None:
        self.objects: dict[Key, Obj] = {}
        self.calls: list[str] = []
        """Every change made, in order: "apply ConfigMap/envci-state", "delete Namespace/x", ..."""
        self.logs: dict[tuple[str, str, bool], str] = {}
        """(pod, container, previous) -> log text, for log_tail and read_log."""
        self.log_reads: list[tuple[str, str, bool]] = []
        """Which logs were read, in order: (pod, container, previous)."""
        self.on_exec: Callable[[str, str, list[str], str | None], ExecResult] | None = None
        self.forwards: dict[tuple[str, str, int], tuple[str, int]] = {}
        """(namespace, pod, port) -> (host, port) of a server on this machine: `port_forward` to that
        pod's port connects to it, as the simulated cluster's port-forward reaches a local server."""
        self.kinds = {**{k: True for k in NAMESPACED}, **{k: False for k in CLUSTER_SCOPED}, **(kinds or {})}
        """Kind -> namespaced, as API discovery would tell; other kinds are not served."""
        self.linger = linger
        """How many more reads an emptied Terminating namespace stays (the namespace controller's lag)."""
        self.kubeconfig: str | None = None
        self.retry = RetryPolicy()
        self.start = start
        self.horizon = horizon
        """Simulated seconds after which waiting fails the test: code that would wait forever stops."""
        self.elapsed = 0.0
        """Simulated seconds since `start`; see `monotonic` and `utcnow`."""
        self._scheduled: list[tuple[float, Callable[[FakeKube], None], bool]] = []
        self._failures: dict[str, tuple[Exception, int | None]] = {}
        self._lingering: dict[str, int] = {}
        self._version = 0
        self._lock = threading.RLock()  # the lease's renewal thread calls in too

    # --- driving the fake (not part of the adapter) ------------------------------------------

    def monotonic(self) -> float:
        return self.elapsed

    def utcnow(self) -> datetime:
        return self.start + timedelta(seconds=self.elapsed)

    def sleep(self, seconds: float) -> None:
        """A stage's injected `sleep`: simulated time passes, and the changes due by then happen."""
        with self._lock:
            self._pass_time(seconds)

    def at(self, seconds: float, change: Callable[[FakeKube], None], *, wakes: bool = True) -> None:
        """Make `change` happen once `seconds` of simulated time have passed. `wakes=False`: a change
        no watch sees (a workload's status, when only pods are watched); it waits for time to pass."""
        self._scheduled.append((seconds, change, wakes))
        self._scheduled.sort(key=lambda s: s[0])

    def fail(self, method: str, error: Exception, times: int | None = None) -> None:
        """Make `method` raise `error` (the next `times` calls; None: until `heal`)."""
        self._failures[method] = (error, times)

    def heal(self, method: str | None = None) -> None:
        if method is None:
            self._failures.clear()
        else:
            self._failures.pop(method, None)

    def add(self, obj: Obj, namespace: str | None = None) -> Obj:
        """Put an object in place as another actor would (a controller, kubectl): not in `calls`."""
        with self._lock:
            return self._store(obj, namespace)

    def set_status(self, kind: str, name: str, namespace: str, status: Obj) -> None:
        with self._lock:
            obj = self.objects[(kind, namespace, name)]
            obj["status"] = copy.deepcopy(status)
            self._bump(obj)

    def exists(self, kind: str, name: str, namespace: str = "") -> bool:
        return (kind, namespace, name) in self.objects

    def _check(self, method: str) -> None:
        failure = self._failures.get(method)
        if failure is None:
            return
        error, times = failure
        if times is not None:
            if times <= 1:
                del self._failures[method]
            else:
                self._failures[method] = (error, times - 1)
        raise error

    def _pass_time(self, seconds: float, *, every_change_wakes: bool = False) -> None:
        """Move the clock to the next scheduled change within `seconds` (making every change then
        due), or by `seconds` when none is due: a watch wakes on a change or its timeout. A pod watch
        sleeps through changes scheduled with `wakes=False`; a mirror watches every kind."""
        end = self.elapsed + max(seconds, 0.0)
        if end > self.horizon:
            raise AssertionError(f"still waiting after {self.horizon:.0f} simulated seconds: the code under test would wait forever")
        waking = [s for s in self._scheduled if s[0] <= end and (s[2] or every_change_wakes)]
        self.elapsed = max(self.elapsed, waking[0][0]) if waking else end
        now_due = [s for s in self._scheduled if s[0] <= self.elapsed]
        self._scheduled = [s for s in self._scheduled if s[0] > self.elapsed]
        for _, change, _ in now_due:
            change(self)

    # --- objects -----------------------------------------------------------------------------

    def _bump(self, obj: Obj) -> None:
        self._version += 1
        obj["metadata"]["resourceVersion"] = str(self._version)

    def _key(self, kind: str, name: str, namespace: str | None) -> Key:
        return (kind, (namespace or "") if self.kinds.get(kind, True) else "", name)

    def _store(self, obj: Obj, namespace: str | None, doing: str = "") -> Obj:
        kind, name = obj["kind"], obj["metadata"]["name"]
        doing = doing or f"apply {kind} {name}"
        if self.kinds.get(kind) is None:
            raise ConfigError(f"the cluster has no API for {kind} ({obj.get('apiVersion')})")
        ns = (namespace or obj["metadata"].get("namespace") or "") if self.kinds[kind] else ""
        key = (kind, ns, name)
        old = self.objects.get(key)
        if old is None and ns:
            owner = self.objects.get(("Namespace", "", ns))
            if owner is None:
                raise refused(doing, f'namespaces "{ns}" not found')
            if owner["metadata"].get("deletionTimestamp"):
                raise refused(doing, f'namespaces "{ns}" is forbidden: unable to create new content in namespace {ns} because it is being terminated')
        new = copy.deepcopy(obj)
        meta = new["metadata"]
        if ns:
            meta["namespace"] = ns
        if old is not None:
            for server_set in ("uid", "creationTimestamp", "deletionTimestamp"):
                if server_set in old["metadata"]:
                    meta[server_set] = old["metadata"][server_set]
            if "status" in old and "status" not in new:
                new["status"] = old["status"]
        else:
            meta.setdefault("uid", f"uid-{kind.lower()}-{ns}-{name}")
            meta.setdefault("creationTimestamp", self.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"))
        if kind == "Namespace":
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
            new.setdefault("status", {"phase": "Active"})
        self._bump(new)
        self.objects[key] = new
        return copy.deepcopy(new)

    def with_retry(self, retry: RetryPolicy) -> FakeKube:
        return self

    def is_namespaced(self, api_version: str, kind: str) -> bool:
        self._check("is_namespaced")
        if kind not in self.kinds:
            raise ConfigError(f"the cluster has no API for {kind} ({api_version})", hint="install the CRD first, or check apiVersion and kind")
        return self.kinds[kind]

    def apply(self, obj: dict[str, Any], namespace: str | None) -> dict[str, Any]:
        with self._lock:
            self._check("apply")
            out = self._store(obj, namespace)
            self.calls.append(f"apply {obj['kind']}/{obj['metadata']['name']}")
            return out

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        with self._lock:
            self._check("get")
            obj = self.objects.get(self._key(kind, name, namespace))
            return copy.deepcopy(obj) if obj is not None else None

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        with self._lock:
            self._check("list")
            found = [
                copy.deepcopy(o) for (k, ns, _), o in sorted(self.objects.items())
                if k == kind and (namespace is None or ns == namespace) and matches(label_selector, o["metadata"].get("labels") or {})
            ]
            for o in found:
                o.setdefault("apiVersion", api_version)
            return found

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        with self._lock:
            self._check("delete")
            key = self._key(kind, name, namespace)
            obj = self.objects.get(key)
            if obj is None:
                return False
            self.calls.append(f"delete {kind}/{name}")
            obj["metadata"].setdefault("deletionTimestamp", self.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"))
            if kind == "Namespace":
                obj["status"] = {"phase": "Terminating"}
                self._lingering.setdefault(name, self.linger)
            self._bump(obj)
            self._collect()
            return True

    def delete_all(self, api_version: str, kind: str, namespace: str) -> None:
        assert namespace, "delete_all needs a namespace"
        with self._lock:
            self._check("delete_all")
            self.calls.append(f"delete all {kind} in {namespace}")
            for key, obj in self.objects.items():
                if key[0] == kind and key[1] == namespace:
                    obj["metadata"].setdefault("deletionTimestamp", self.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"))
                    self._bump(obj)
            self._collect()

    def patch_merge(self, api_version: str, kind: str, name: str, patch: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        with self._lock:
            self._check("patch_merge")
            key = self._key(kind, name, namespace)
            if key not in self.objects:
                raise refused(f"update {kind} {name}", f'{kind.lower()}s "{name}" not found')
            self.calls.append(f"patch {kind}/{name}")
            obj = merge_patch(self.objects[key], patch)
            self._bump(obj)
            self.objects[key] = obj
            self._collect()
            return copy.deepcopy(obj)

    def _collect(self) -> None:
        """The garbage collector and namespace controller, done at once: what is being deleted
        goes unless a finalizer holds it; a Terminating namespace takes its objects with it."""
        terminating = {k[2] for k, o in self.objects.items() if k[0] == "Namespace" and o["metadata"].get("deletionTimestamp")}
        for key, obj in list(self.objects.items()):
            meta = obj["metadata"]
            if key[1] in terminating:
                meta.setdefault("deletionTimestamp", self.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"))
            if key[0] != "Namespace" and meta.get("deletionTimestamp") and not meta.get("finalizers"):
                del self.objects[key]
        for ns in terminating:
            if not any(k[1] == ns for k in self.objects) and self._lingering.get(ns, 0) <= 0:
                self.objects.pop(("Namespace", "", ns), None)
                self._lingering.pop(ns, None)

    def watch(
        self, kind: str, namespace: str, *, seconds: float, name: str | None = None, resource_version: str | None = None
    ) -> Iterator[WatchEvent]:
        """Each change as it happens, until the watch's own `seconds` run out, as the API server does."""

        def seen() -> dict[str, Obj]:
            return {o["metadata"]["name"]: o for o in self.list("", kind, namespace) if name is None or o["metadata"]["name"] == name}

        end = self.elapsed + seconds
        before = seen()
        while True:
            with self._lock:
                self._pass_time(end - self.elapsed)
            after = seen()
            for n, obj in after.items():
                if n not in before:
                    yield WatchEvent("ADDED", obj)
                elif obj["metadata"]["resourceVersion"] != before[n]["metadata"]["resourceVersion"]:
                    yield WatchEvent("MODIFIED", obj)
            for n, obj in before.items():
                if n not in after:
                    yield WatchEvent("DELETED", obj)
            if self.elapsed >= end:
                return
            before = after

    # --- namespaces, pods, events, logs ------------------------------------------------------

    def namespace(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            left = self._lingering.get(name)
            if left is not None and not any(k[1] == name for k in self.objects):
                if left > 0:
                    self._lingering[name] = left - 1  # one more read while the controller catches up
                else:
                    self._collect()
            return self.get("v1", "Namespace", name)

    def namespaces(self, label_selector: str) -> list[dict[str, Any]]:
        return self.list("v1", "Namespace", label_selector=label_selector)

    def pods(self, namespace: str) -> list[dict[str, Any]]:
        return self.list("v1", "Pod", namespace)

    def events(self, namespace: str) -> list[dict[str, Any]]:
        return self.list("v1", "Event", namespace)

    def log_tail(self, namespace: str, pod: str, container: str | None = None, lines: int = 20, *, previous: bool = False) -> str:
        self.log_reads.append((pod, container or "", previous))
        text = self.logs.get((pod, container or "", previous))
        return "".join(text.splitlines(keepends=True)[-lines:]) if text is not None else "(no logs: not found)"

    def read_log(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        previous: bool = False,
        tail_lines: int | None = None,
        since_seconds: int | None = None,
        limit_bytes: int | None = None,
        timestamps: bool = True,
    ) -> str | None:
        self._check("read_log")
        self.log_reads.append((pod, container, previous))
        text = self.logs.get((pod, container, previous))
        if text is None:
            return None
        if tail_lines is not None:
            text = "".join(text.splitlines(keepends=True)[-tail_lines:])
        return text[:limit_bytes] if limit_bytes else text

    def follow_log(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        previous: bool = False,
        tail_lines: int | None = None,
        since_seconds: int | None = None,
        idle_seconds: float = 300,
    ) -> Iterator[str]:
        yield from (self.read_log(namespace, pod, container, previous=previous, tail_lines=tail_lines) or "").splitlines()

    def pods_version(self, namespace: str) -> str | None:
        return str(self.elapsed)

    def list_with_version(self, api_version: str, kind: str, namespace: str) -> tuple[list[dict[str, Any]], str | None]:
        return self.list(api_version, kind, namespace), str(self._version)

    def open_watch(self, api_version: str, kind: str, namespace: str, *, resource_version: str | None, seconds: float) -> FakeWatchStream:
        return FakeWatchStream(self.watch(kind, namespace, seconds=seconds, resource_version=resource_version), self)

    def wait_for_pod_change(self, namespace: str, seconds: int, *, since: str | None = None) -> None:
        with self._lock:
            self._pass_time(seconds)

    def mirror(self, namespace: str, kinds: Sequence[tuple[str, str]]) -> FakeMirror:
        return FakeMirror(self, namespace, kinds)

    # --- secrets and leases ------------------------------------------------------------------

    def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        self._check("secret_data")
        obj = self.objects.get(("Secret", namespace, name))
        return dict(obj.get("data") or {}) if obj is not None else None

    def get_lease(self, namespace: str, name: str, *, timeout: float | None = None) -> dict[str, Any] | None:
        with self._lock:
            self._check("get_lease")
            obj = self.objects.get(("Lease", namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def create_lease(self, namespace: str, body: dict[str, Any]) -> bool:
        with self._lock:
            self._check("create_lease")
            if ("Lease", namespace, body["metadata"]["name"]) in self.objects:
                return False
            self._store({**body, "kind": "Lease"}, namespace, f"create lease in {namespace}")
            self.calls.append(f"create Lease/{body['metadata']['name']}")
            return True

    def replace_lease(self, namespace: str, body: dict[str, Any], *, timeout: float | None = None) -> bool:
        with self._lock:
            self._check("replace_lease")
            name = body["metadata"]["name"]
            cur = self.objects.get(("Lease", namespace, name))
            if cur is None:
                raise refused(f"update lease in {namespace}", f'leases.coordination.k8s.io "{name}" not found')
            if body["metadata"].get("resourceVersion") != cur["metadata"]["resourceVersion"]:
                return False
            self._store({**body, "kind": "Lease"}, namespace, f"update lease in {namespace}")
            self.calls.append(f"replace Lease/{name}")
            return True

    def delete_lease(self, namespace: str, name: str) -> bool:
        with self._lock:
            self._check("delete_lease")
            if self.objects.pop(("Lease", namespace, name), None) is None:
                return False
            self.calls.append(f"delete Lease/{name}")
            self._collect()
            return True

    # --- exec and port-forward ---------------------------------------------------------------

    def exec(self, namespace: str, pod: str, command: Sequence[str], *, container: str | None, timeout: float) -> ExecResult:
        if self.on_exec is None:
            raise InfrastructureError(f"exec in pod {namespace}/{pod} failed: the fake has no on_exec")
        self.calls.append(f"exec Pod/{pod}")
        return self.on_exec(namespace, pod, list(command), container)

    def port_forward(self, namespace: str, pod: str, port: int) -> ForwardStream:
        target = self.forwards.get((namespace, pod, port))
        if target is None:
            raise InfrastructureError(f"cannot port-forward to pod {namespace}/{pod}:{port}: the fake has no network there (see `forwards`)")
        return _SocketStream(socket.create_connection(target, timeout=10))


class FakeWatchStream:
    """The adapter's WatchStream over the fake's `watch`: a version never expires here."""

    def __init__(self, events: Iterator[WatchEvent], kube: FakeKube) -> None:
        self._events, self._kube = events, kube
        self.expired = False
        self.version: str | None = None

    def __iter__(self) -> Iterator[WatchEvent]:
        for event in self._events:
            self.version = str(self._kube._version)
            yield event

    def close(self) -> None:
        pass


class FakeMirror:
    """The adapter's Mirror as a perfect one: what it holds is always the store as it is now, and
    waiting for a change moves the clock to the next change or the wait's end."""

    def __init__(self, kube: FakeKube, namespace: str, kinds: Sequence[tuple[str, str]]) -> None:
        self.kube, self.namespace, self.kinds = kube, namespace, list(kinds)
        self.objects()  # listed at once, as the real one does: a refusal fails the caller here

    def __enter__(self) -> FakeMirror:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def objects(self) -> dict[str, list[Obj]]:
        return {kind: self.kube.list(api_version, kind, self.namespace) for api_version, kind in self.kinds}

    def wait(self, seconds: float) -> bool:
        before = self.kube.elapsed
        with self.kube._lock:
            self.kube._pass_time(seconds, every_change_wakes=True)
        return self.kube.elapsed < before + seconds

    def close(self) -> None:
        pass


class _SocketStream:
    """A port-forward stream that is a plain TCP connection to a local server."""

    def __init__(self, sock: socket.socket) -> None:
        sock.settimeout(None)
        self._sock = sock

    def socket(self, port_number: int) -> socket.socket:
        return self._sock

    def error(self, port_number: int) -> str | None:
        return None
