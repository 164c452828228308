"""The one place envci talks to the Kubernetes API.

Stages call these thin methods; the objects they return are plain dicts in API JSON shape
(camelCase), which is what the pure rules in readiness.py take. API errors become
InfrastructureError with the Status message only: response bodies can carry secrets.

No other module imports the Kubernetes client (tests/unit/test_import_boundary.py checks it), so
retries, timeouts and error mapping cannot be bypassed, and tests/fakekube.py, an in-memory
stand-in with these methods, is all a stage test needs.
"""

from __future__ import annotations

import builtins
import contextlib
import email.utils
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import urllib3
import yaml

from envci.errors import ConfigError, InfrastructureError
from envci.kube import kubeconfig as kubeconfig_mod
from envci.kube.discovery import Discovery, Resource
from envci.kube.transport import DEFAULT_REQUEST_TIMEOUT, ApiError, Transport, TimeoutSpec, lines
from envci.redact import redact, truncate

if TYPE_CHECKING:
    from envci.kube.mirror import Mirror

FIELD_MANAGER = "envci"
T = TypeVar("T")
log = logging.getLogger("envci.kube")

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
EXEC_ERROR_CHANNEL = 3
"""The exec stream's channel that carries the command's final Status."""


@dataclass(frozen=True)
class RetryPolicy:
    """How API calls ride out a flaky API server."""

    backoffs: tuple[float, ...] = (0.2, 0.5, 1, 2, 3, 5, 5, 5, 5, 5, 5)
    """Seconds to wait before each retry; about 37 s in all, enough for an API server restart.
    4xx answers other than 429 are never retried: they will not change."""
    deadline: float | None = None
    """Monotonic time after which no retry starts (the stage's deadline), or None."""
    max_retry_after: float = 60.0
    """The longest wait a server's Retry-After (on 429 and 503) is honoured for, in seconds: an API
    server under load asks for a few seconds; a proxy asking for an hour should not stall a stage."""


LOCAL_FILE_ERRORS = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)
"""OSErrors about a file on this machine (the discovery cache, a token, a certificate): retrying
cannot fix them, and calling them "cannot reach the API" would send the reader the wrong way."""


def transient(e: BaseException) -> bool:
    if isinstance(e, ApiError):
        return e.status in RETRY_STATUS or e.status == 0
    if isinstance(e, LOCAL_FILE_ERRORS):
        return False
    return isinstance(e, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError, OSError))


def retry_after(e: BaseException, now: Callable[[], float] = time.time) -> float | None:
    """Pure (given `now`): the seconds a 429/503 answer asked to wait, from its Retry-After header
    (delta seconds or an HTTP date); None when it asked nothing readable."""
    if not isinstance(e, ApiError) or e.status not in (429, 503):
        return None
    headers = e.headers or {}
    raw = next((str(v) for k, v in headers.items() if str(k).lower() == "retry-after"), "").strip()
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        at = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, at.timestamp() - now()) if at.tzinfo else None


def retry_wait(e: BaseException, attempt: int, policy: RetryPolicy, now: Callable[[], float] = time.time) -> tuple[float, bool]:
    """Pure: (seconds to wait before the next attempt, whether the server chose it).

    The policy's backoff, or longer when the server asked for longer (capped by max_retry_after):
    retrying a 429 sooner than asked only adds to the load that caused it."""
    wait = policy.backoffs[attempt - 1]
    asked = retry_after(e, now)
    if asked is not None and asked > wait:
        return min(asked, policy.max_retry_after), True
    return wait, False


def _gave_up(e: Exception, doing: str, why: str) -> Exception:
    """What a caller sees when retries end: an ApiError as is (callers turn it into an
    InfrastructureError with its Status message), anything else as an InfrastructureError."""
    if isinstance(e, ApiError):
        return e
    return InfrastructureError(
        f"cannot reach the Kubernetes API to {doing} {why}: {type(e).__name__}",
        hint="check that the API server is up and reachable (KUBECONFIG)",
    )


def with_retries(
    fn: Callable[[], T],
    doing: str,
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    attempts = len(policy.backoffs) + 1
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - classified just below
            if not transient(e):
                raise
            if attempt == attempts:
                raise _gave_up(e, doing, f"after {attempt} attempts") from None
            wait, asked = retry_wait(e, attempt, policy)
            if policy.deadline is not None and clock() + wait > policy.deadline:
                raise _gave_up(e, doing, f"after {attempt} attempt(s), as the deadline comes before the next retry") from None
            log.warning(
                "attempt #%d/%d to %s failed (%s); retrying in %.1fs%s",
                attempt, attempts, doing, type(e).__name__, wait, " as the server asked (Retry-After)" if asked else "",
            )
            sleep(wait)
    raise AssertionError("unreachable")

# kinds wait-ready looks at, with the API path to list them
WORKLOAD_KINDS: tuple[tuple[str, str], ...] = (
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("batch/v1", "Job"),
    # Always ready, but the Jobs they start belong to their component.
    ("batch/v1", "CronJob"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "Service"),
)


def status_message(e: ApiError) -> str:
    """The API's own explanation, never the raw body (it may echo submitted secrets)."""
    try:
        body = json.loads(e.body or "{}")
        if body.get("kind") == "Status" and body.get("message"):
            return truncate(redact(str(body["message"])), 500)
    except (ValueError, TypeError):
        pass
    return f"HTTP {e.status} {e.reason}"


def api_error(e: ApiError, doing: str) -> InfrastructureError:
    hint = None
    if e.status in (401, 403):
        hint = "check the kubeconfig's credentials and the RBAC described in README (\"Permissions\")"
    return InfrastructureError(f"Kubernetes API refused to {doing}: {status_message(e)}", hint=hint)


NO_RETRIES = RetryPolicy(backoffs=())
"""For calls on a clock of their own (the lease's renewal thread): a retry would run into its next round."""

NO_ANSWER = (urllib3.exceptions.HTTPError, OSError)
"""What the client raises when the API server did not answer (refused, dropped, timed out)."""

STREAM_LOCK = threading.Lock()
"""The streaming helpers of the Kubernetes client swap `call_api` on the ApiClient they are given
for the duration of the call. On a shared client that would route another thread's request (the
lease renewal, say) through a websocket, so every stream gets a private ApiClient and the swap is
serialised."""


def unreachable(e: BaseException, doing: str) -> InfrastructureError:
    """A call that got no answer, as an InfrastructureError; a local file (a token, a certificate)
    that could not be read is named as such, not as the API server's fault."""
    if isinstance(e, LOCAL_FILE_ERRORS):
        return InfrastructureError(
            f"cannot {doing}: {type(e).__name__}: {e}",
            hint="check the files the kubeconfig names (certificates, token) and that the temporary directory is writable",
        )
    return InfrastructureError(
        f"cannot reach the Kubernetes API to {doing}: {type(e).__name__}",
        hint="check that the API server is up and reachable (KUBECONFIG)",
    )


@dataclass(frozen=True)
class WatchEvent:
    """One change seen by `Kube.watch`: ADDED, MODIFIED or DELETED, and the object in API JSON shape."""

    type: str
    object: dict[str, Any]


@dataclass(frozen=True)
class ExecResult:
    """How a command run by `Kube.exec` ended."""

    finished: bool
    """False when it still ran at the timeout (its stream was closed then)."""
    status: dict[str, Any] | None
    """The final Status the API server sent on the error channel; None when none came."""
    output: str
    """Its stdout and stderr, interleaved; not redacted yet."""


class ForwardStream(Protocol):
    """One port-forward connection to a pod (what `kubernetes.stream.portforward` returns)."""

    def socket(self, port_number: int) -> Any: ...

    def error(self, port_number: int) -> str | None: ...


class WatchRefused(InfrastructureError):
    """RBAC lets this client list a kind but not watch it."""


class WatchStream:
    """One open watch: its events as they arrive. When it ends, `expired` says whether the server
    ended it with an error (410 Gone: the version it started from is no longer kept; `error` holds
    its Status) and the caller must list again, rather than just ending it. `close`, from any
    thread, ends a read that is blocked waiting for the next event."""

    def __init__(self, resp: Any, doing: str) -> None:
        self._resp = resp
        self._doing = doing
        self.expired = resp is None
        self.error: dict[str, Any] | None = None
        self.version: str | None = None
        """The resource version of the last event read, bookmarks included: where a new watch goes on."""
        self._closed = False

    def __iter__(self) -> Iterator[WatchEvent]:
        if self._resp is None:
            return
        read_to_end = False
        try:
            for line in lines(self._resp):
                if not line.strip():
                    continue
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    # 410 Gone, or another error the server ends the watch with: as client-go's
                    # reflector does, list again (a server that cannot answer fails that list).
                    log.debug("%s ended: %s", self._doing, truncate(redact(str(obj.get("message") or obj)), 300))
                    self.expired, self.error = True, obj
                    return
                self.version = str((obj.get("metadata") or {}).get("resourceVersion") or self.version or "") or None
                if event.get("type") == "BOOKMARK":
                    continue
                yield WatchEvent(str(event["type"]), obj)
            read_to_end = True
        except (*NO_ANSWER, ValueError):
            return  # dropped (or closed): the caller watches on from `version`, or lists again
        finally:
            self._end(reusable=read_to_end and not self._closed)

    def close(self) -> None:
        self._closed = True
        resp = self._resp
        if resp is not None:
            with contextlib.suppress(Exception):
                resp.shutdown()

    def _end(self, *, reusable: bool) -> None:
        resp, self._resp = self._resp, None
        if resp is None:
            return
        if reusable:
            resp.release_conn()
        else:
            resp.close()  # left mid-answer: the connection cannot carry another request


class _NotFound(Exception):
    """A 404 answer, inside the adapter: each method decides what a missing object means."""


class Kube:
    """A connected client; construct with `connect()`.

    The transport stays private: every call goes through a method here, so every call gets the
    retries and the error mapping (tests/unit/test_import_boundary.py keeps it so).
    tests/fakekube.py is an in-memory stand-in with the same methods, for stage tests."""

    def __init__(self, transport: Transport, retry: RetryPolicy = RetryPolicy(), *, kubeconfig: str | None = None,
                 discovery: Discovery | None = None) -> None:
        self._http = transport
        self.retry = retry
        self.kubeconfig = kubeconfig
        """The kubeconfig file this client was made from (None: ~/.kube/config or in-cluster), so
        tools that run beside it (helm, a test suite's kubectl) reach the same cluster."""
        self._kinds = discovery or Discovery(self._discovery_document)

    def with_retry(self, retry: RetryPolicy) -> Kube:
        """The same connection under another retry policy: work done after a failure (diagnostics)
        must not spend minutes retrying a cluster that may be what failed."""
        return Kube(self._http, retry, kubeconfig=self.kubeconfig, discovery=self._kinds)

    # --- generic -------------------------------------------------------------------------------

    def _call(self, fn: Callable[[], T], doing: str) -> T:
        return with_retries(fn, doing, self.retry)

    def _rest(self, method: str, path: str, *, query: dict[str, Any] | None = None, body: Any = None,
              timeout: TimeoutSpec = None, stream: bool = False, content_type: str = "application/json") -> Any:
        """One request by path, answered as the API's JSON (or, with `stream`, the open response)."""
        return self._http.request(method, path, query=query, body=body, timeout=timeout, stream=stream, content_type=content_type)

    def _discovery_document(self, path: str) -> dict[str, Any] | None:
        try:
            doc: dict[str, Any] = self._call(lambda: self._rest("GET", path), "discover the API")
        except ApiError as e:
            if e.status == 404:
                return None
            raise api_error(e, "discover the API") from None
        except NO_ANSWER as e:
            raise unreachable(e, "discover the API") from None
        return doc

    def _resource(self, api_version: str, kind: str) -> Resource:
        found = self._kinds.resolve(api_version, kind)
        if found is None:
            raise ConfigError(
                f"the cluster has no API for {kind} ({api_version})",
                hint="install the CRD first, or check apiVersion and kind",
            )
        return found

    def _object_call(self, fn: Callable[[], T], doing: str) -> T:
        """A call on objects: API refusals and no answer both become InfrastructureError."""
        try:
            return self._call(fn, doing)
        except ApiError as e:
            if e.status == 404:
                raise _NotFound from None
            raise api_error(e, doing) from None
        except NO_ANSWER as e:
            raise unreachable(e, doing) from None

    def is_namespaced(self, api_version: str, kind: str) -> bool:
        """Whether objects of a kind live in a namespace, from API discovery; ConfigError when the
        cluster serves no such kind."""
        return bool(self._resource(api_version, kind).namespaced)

    def apply(self, obj: dict[str, Any], namespace: str | None) -> dict[str, Any]:
        """Server-side apply: idempotent, and it leaves other managers' fields alone."""
        res = self._resource(obj["apiVersion"], obj["kind"])
        name = obj["metadata"]["name"]
        path = res.path(namespace, name)
        query = {"fieldManager": FIELD_MANAGER, "force": True}
        # JSON is YAML: the apply content type takes either.
        return cast(dict[str, Any], self._object_call(
            lambda: self._rest("PATCH", path, query=query, body=obj, content_type="application/apply-patch+yaml"),
            f"apply {obj['kind']} {name}",
        ))

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        path = self._resource(api_version, kind).path(namespace, name)
        try:
            return cast(dict[str, Any], self._object_call(lambda: self._rest("GET", path), f"read {kind} {name}"))
        except _NotFound:
            return None

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        return self._listed(api_version, kind, namespace, label_selector)[0]

    def list_with_version(self, api_version: str, kind: str, namespace: str) -> tuple[builtins.list[dict[str, Any]], str | None]:
        """A namespace's objects of a kind and the resource version they were read at, from which
        `open_watch` sees every later change."""
        return self._listed(api_version, kind, namespace, None)

    def _listed(self, api_version: str, kind: str, namespace: str | None,
                label_selector: str | None) -> tuple[builtins.list[dict[str, Any]], str | None]:
        path = self._resource(api_version, kind).path(namespace)
        try:
            out = self._object_call(lambda: self._rest("GET", path, query={"labelSelector": label_selector}), f"list {kind}")
        except _NotFound:
            return [], None
        items: builtins.list[dict[str, Any]] = out.get("items") or []
        for item in items:  # list items omit kind/apiVersion; the rules dispatch on kind
            item.setdefault("kind", kind)
            item.setdefault("apiVersion", api_version)
        version = (out.get("metadata") or {}).get("resourceVersion")
        return items, str(version) if version else None

    def open_watch(self, api_version: str, kind: str, namespace: str, *, resource_version: str | None, seconds: float) -> WatchStream:
        """A watch of a namespace's objects of a kind from `resource_version`, which the server ends
        after `seconds`. Refusals (403) raise; an expired version gives a stream that is already over."""
        path = self._resource(api_version, kind).path(namespace)
        query = {"watch": True, "resourceVersion": resource_version, "timeoutSeconds": max(1, int(seconds)),
                 "allowWatchBookmarks": True}
        doing = f"watch {kind} in {namespace}"
        try:
            # The adapter's own read timeout, not the watch's length: a connection that goes silent
            # (a dropped route) is given up within it, and the watch opened again from its version.
            resp = self._call(lambda: self._rest("GET", path, query=query, stream=True), doing)
        except ApiError as e:
            if e.status == 410:
                return WatchStream(None, doing)
            if e.status == 403:
                raise WatchRefused(api_error(e, doing).message) from None
            raise api_error(e, doing) from None
        except NO_ANSWER as e:
            raise unreachable(e, doing) from None
        return WatchStream(resp, doing)

    def mirror(self, namespace: str, kinds: Sequence[tuple[str, str]]) -> Mirror:
        """The namespace's objects of `kinds`, listed once and then kept current by watches."""
        from envci.kube.mirror import Mirror

        return Mirror(self, namespace, kinds)

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        """Delete with Background propagation (Foreground can hang); False if it was already gone."""
        path = self._resource(api_version, kind).path(namespace, name)
        try:
            self._object_call(lambda: self._rest("DELETE", path, body={"propagationPolicy": "Background"}), f"delete {kind} {name}")
            return True
        except _NotFound:
            return False

    def delete_all(self, api_version: str, kind: str, namespace: str) -> None:
        """Delete every object of a namespaced kind in one namespace (one request), Background propagation."""
        if not namespace:  # the collection's path without a namespace is every namespace's
            raise ValueError("delete_all needs a namespace")
        path = self._resource(api_version, kind).path(namespace)
        with contextlib.suppress(_NotFound):
            self._object_call(lambda: self._rest("DELETE", path, body={"propagationPolicy": "Background"}), f"delete the {kind}s in {namespace}")

    def patch_merge(self, api_version: str, kind: str, name: str, patch: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        path = self._resource(api_version, kind).path(namespace, name)
        return cast(dict[str, Any], self._object_call(
            lambda: self._rest("PATCH", path, body=patch, content_type="application/merge-patch+json"), f"update {kind} {name}"
        ))

    def watch(
        self, kind: str, namespace: str, *, seconds: float, name: str | None = None, resource_version: str | None = None
    ) -> Iterator[WatchEvent]:
        """Changes to the Pods or Jobs of a namespace (only the one called `name`, if given) until
        the server ends the watch after `seconds`.

        A watch that was dropped, or whose resourceVersion expired (410 Gone), just ends: callers
        read the current state again and watch on from there, which they do after a timeout anyway."""
        paths = {"Pod": f"/api/v1/namespaces/{namespace}/pods", "Job": f"/apis/batch/v1/namespaces/{namespace}/jobs"}
        if kind not in paths:
            raise ValueError(f"cannot watch {kind}: only {', '.join(paths)}")
        query = {"watch": True, "resourceVersion": resource_version, "timeoutSeconds": max(1, int(seconds)),
                 "fieldSelector": f"metadata.name={name}" if name else None, "allowWatchBookmarks": False}
        doing = f"watch {kind} {name}" if name else f"watch {kind.lower()}s in {namespace}"
        try:
            stream = WatchStream(self._rest("GET", paths[kind], query=query, timeout=seconds + 10, stream=True), doing)
            yield from stream
        except ApiError as e:
            if e.status == 410:
                return
            raise api_error(e, doing) from None
        except NO_ANSWER:
            return
        status = stream.error or {}
        if status and status.get("code") != 410:
            raise api_error(ApiError(int(status.get("code") or 500), str(status.get("message") or ""), json.dumps(status)), doing)

    # --- namespaces ----------------------------------------------------------------------------

    def namespace(self, name: str) -> dict[str, Any] | None:
        return self.get("v1", "Namespace", name)

    def namespaces(self, label_selector: str) -> builtins.list[dict[str, Any]]:
        return self.list("v1", "Namespace", label_selector=label_selector)

    # --- secrets -------------------------------------------------------------------------------

    def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's `data` (values base64-encoded, as the API keeps them); None when there is no
        such Secret. A typed read, not `get`: it runs while envci.yaml loads, before any discovery."""
        doing = f"read Secret {namespace}/{name}"
        try:
            obj = self._call(lambda: self._rest("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}"), doing)
        except ApiError as e:
            if e.status == 404:
                return None
            raise api_error(e, doing) from None
        except NO_ANSWER as e:
            raise unreachable(e, doing) from None
        return dict(obj.get("data") or {})

    # --- leases --------------------------------------------------------------------------------
    # A lease is taken with create and replace, not apply: their 409 answers (it exists; it changed
    # since it was read) are how two holders find out about each other. The renewal thread calls
    # these on `with_retry(NO_RETRIES)` with a `timeout`, so one call never outlasts its round.

    def get_lease(self, namespace: str, name: str, *, timeout: float | None = None) -> dict[str, Any] | None:
        """The Lease, or None when there is none."""
        doing = f"read lease in {namespace}"
        try:
            lease: dict[str, Any] = self._call(lambda: self._rest("GET", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}", timeout=timeout), doing)
        except ApiError as e:
            if e.status == 404:
                return None
            raise api_error(e, doing) from None
        except NO_ANSWER as e:
            raise unreachable(e, doing) from None
        return lease

    def create_lease(self, namespace: str, body: dict[str, Any]) -> bool:
        """Create the Lease; False when one exists already (409)."""
        return self._write_lease(lambda: self._rest("POST", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases", body=body), f"create lease in {namespace}", 409)

    def replace_lease(self, namespace: str, body: dict[str, Any], *, timeout: float | None = None) -> bool:
        """Replace the Lease as it was read (the body's resourceVersion); False when another
        writer changed it since (409)."""
        name = body["metadata"]["name"]
        return self._write_lease(
            lambda: self._rest("PUT", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}", body=body, timeout=timeout), f"update lease in {namespace}", 409
        )

    def delete_lease(self, namespace: str, name: str) -> bool:
        """Delete the Lease; False when it was already gone (404)."""
        return self._write_lease(lambda: self._rest("DELETE", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"), f"delete lease in {namespace}", 404)

    def _write_lease(self, fn: Callable[[], Any], doing: str, declined: int) -> bool:
        """True when done; False when the API answered `declined`, the one refusal the caller expects."""
        try:
            self._call(fn, doing)
            return True
        except ApiError as e:
            if e.status == declined:
                return False
            raise api_error(e, doing) from None
        except NO_ANSWER as e:
            raise unreachable(e, doing) from None

    # --- pods, events, logs --------------------------------------------------------------------

    def pods(self, namespace: str) -> builtins.list[dict[str, Any]]:
        return self.list("v1", "Pod", namespace)

    def events(self, namespace: str) -> builtins.list[dict[str, Any]]:
        return self.list("v1", "Event", namespace)

    def log_tail(self, namespace: str, pod: str, container: str | None = None, lines: int = 20, *, previous: bool = False) -> str:
        """The last `lines` lines of a container's log; with `previous`, of the instance before the current one.

        The previous instance is gone when the kubelet has collected it, or when the container has
        not restarted after all; its current log is the next best, so that one is read instead."""
        try:
            text = self._log(namespace, pod, {"container": container, "tailLines": lines, "previous": previous}, timeout=10)
        except ApiError as e:
            if previous and e.status in (400, 404):
                return self.log_tail(namespace, pod, container, lines)
            return f"(no logs: {status_message(e)})"
        except (urllib3.exceptions.HTTPError, OSError) as e:
            return f"(no logs: {e})"
        if previous and (text or "").startswith("unable to retrieve container logs"):
            # The kubelet answers this, with success, for an instance it has already removed.
            return self.log_tail(namespace, pod, container, lines)
        return truncate(redact(text or ""), 4000)

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
        """One container instance's log, each line starting with its RFC 3339 time when `timestamps`
        (a test suite's log, parsed for JUnit, goes without); None when that instance is not there
        (never started, or already removed by the kubelet).

        Unlike `log_tail` nothing is substituted: `envci logs --previous` must not show the current
        instance as if it were the previous one. The raw text is returned (read as bytes: the
        generated client turns a log that happens to be JSON into a Python dict); callers redact
        what they print. Other API failures raise InfrastructureError."""
        query = {"container": container, "previous": previous, "timestamps": timestamps, "tailLines": tail_lines,
                 "sinceSeconds": since_seconds, "limitBytes": limit_bytes}
        doing = f"read the log of pod {pod} container {container}"
        try:
            text = self._call(lambda: self._log(namespace, pod, query, timeout=(DEFAULT_REQUEST_TIMEOUT[0], 30)), doing)
        except ApiError as e:
            if e.status in (400, 404):  # waiting to start, no previous instance, pod gone
                return None
            raise api_error(e, doing) from None
        if text.startswith("unable to retrieve container logs"):
            return None  # the kubelet's answer, with success, for an instance it has removed
        return text

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
        """Lines of a container instance's log as it writes them (`kubectl logs -f`), with their time.

        Ends when the instance ends, the pod goes, or nothing came for `idle_seconds` (the caller
        reads again from its last line if the instance still runs: a silent connection may be a
        dead one). Yields nothing when the instance is not there."""
        query = {"container": container, "previous": previous, "follow": True, "timestamps": True, "tailLines": tail_lines,
                 "sinceSeconds": since_seconds}
        doing = f"follow the log of pod {pod} container {container}"
        try:
            resp = self._call(
                lambda: self._rest("GET", f"/api/v1/namespaces/{namespace}/pods/{pod}/log", query=query,
                                   timeout=(DEFAULT_REQUEST_TIMEOUT[0], idle_seconds), stream=True),
                doing,
            )
        except ApiError as e:
            if e.status in (400, 404):
                return
            raise api_error(e, doing) from None
        try:
            for line in lines(resp):
                if line.startswith("unable to retrieve container logs"):
                    return
                yield line
        except (urllib3.exceptions.HTTPError, OSError):
            return  # dropped or idle: the caller decides whether to read on
        finally:
            resp.release_conn()

    def _log(self, namespace: str, pod: str, query: dict[str, Any], *, timeout: Any) -> str:
        """A log as text, whatever it holds (a log line may well be JSON)."""
        resp = self._rest("GET", f"/api/v1/namespaces/{namespace}/pods/{pod}/log", query=query, timeout=timeout, stream=True)
        try:
            return bytes(resp.read() or b"").decode("utf-8", errors="replace")
        finally:
            resp.release_conn()

    def pods_version(self, namespace: str) -> str | None:
        """The resource version of the namespace's pods now: a watch from it sees every later change."""
        try:
            listed = self._call(lambda: self._rest("GET", f"/api/v1/namespaces/{namespace}/pods", query={"limit": 1}), f"list pods in {namespace}")
        except ApiError as e:
            raise api_error(e, f"list pods in {namespace}") from None
        version = (listed.get("metadata") or {}).get("resourceVersion")
        return str(version) if version else None

    def wait_for_pod_change(self, namespace: str, seconds: int, *, since: str | None = None) -> None:
        """Block until a pod in the namespace changes, or `seconds` pass.

        From `since` (a `pods_version` read before the caller last looked, so that nothing that
        changed while it looked is missed), else from now. A watch that ends early (dropped,
        expired) still waits out a short pause, never a busy loop."""
        version = since or self.pods_version(namespace)
        end = time.monotonic() + seconds
        for _ in self.watch("Pod", namespace, seconds=seconds, resource_version=version):
            return
        left = end - time.monotonic()
        if left > 0:
            time.sleep(min(left, 0.2))

    # --- exec and port-forward -----------------------------------------------------------------

    def _stream_core(self) -> Any:
        """A CoreV1Api on a private ApiClient, safe to hand to the streaming helpers (STREAM_LOCK)."""
        return stream_api(self._http.endpoint)

    def exec(self, namespace: str, pod: str, command: Sequence[str], *, container: str | None, timeout: float) -> ExecResult:
        """Run a command in a pod's container (`kubectl exec`) for at most `timeout` seconds.

        Nothing is retried: the command may have run before the connection failed."""
        doing = f"exec in pod {namespace}/{pod}"
        try:
            with STREAM_LOCK:
                resp = _stream(
                    self._stream_core().connect_get_namespaced_pod_exec, pod, namespace, command=list(command), container=container,
                    stdin=False, stdout=True, stderr=True, tty=False, _preload_content=False,
                )
            resp.run_forever(timeout=timeout)
            finished = not resp.is_open()
            status = None
            if finished:
                raw = resp.read_channel(EXEC_ERROR_CHANNEL, timeout=0)
                status = yaml.safe_load(raw) if raw else None
            else:
                resp.close()
            output = resp.read_all()
        except Exception as e:  # noqa: BLE001 - websocket failures have many types
            refused = stream_refusal(e)
            if refused is not None:
                raise api_error(refused, doing) from None
            raise InfrastructureError(f"{doing} failed: {truncate(redact(str(e)), 300)}") from None
        text = output if isinstance(output, str) else output.decode(errors="replace")
        return ExecResult(finished, status if isinstance(status, dict) else None, text)

    def port_forward(self, namespace: str, pod: str, port: int) -> ForwardStream:
        """One port-forward connection to a pod's port (`kubectl port-forward`): `.socket(port)`
        is its end here, `.error(port)` what the API server reported once it closed."""
        core = self._stream_core()
        try:
            with STREAM_LOCK:
                forward: ForwardStream = _portforward(core.connect_get_namespaced_pod_portforward, pod, namespace, ports=str(port))
                return forward
        except Exception as e:  # noqa: BLE001 - websocket errors have many types; all mean "cannot reach"
            refused = stream_refusal(e)
            if refused is not None:
                raise api_error(refused, f"port-forward to pod {namespace}/{pod}:{port}") from None
            raise InfrastructureError(
                f"cannot port-forward to pod {namespace}/{pod}:{port}: {redact(str(e))[:300]}",
                hint="check that the pod is running and that your credentials allow pods/portforward",
            ) from None


def kubeconfig_namespace(kubeconfig: str | None = None) -> str:
    """The namespace of the kubeconfig's current context, as kubectl would use it ("default")."""
    return kubeconfig_mod.current_namespace(kubeconfig or os.environ.get("KUBECONFIG"))


def connect(kubeconfig: str | None = None, context: str | None = None) -> Kube:
    """Connect with the given kubeconfig, $KUBECONFIG, ~/.kube/config, or in-cluster credentials."""
    path = kubeconfig or os.environ.get("KUBECONFIG")
    endpoint = kubeconfig_mod.load(path, context)  # a KubeconfigError names the file, the field and the fix
    read = float(os.environ.get("ENVCI_API_TIMEOUT") or DEFAULT_REQUEST_TIMEOUT[1])
    return Kube(Transport(endpoint, timeout=(DEFAULT_REQUEST_TIMEOUT[0], read)), kubeconfig=path or None)


def _stream(*args: Any, **kwargs: Any) -> Any:
    from kubernetes.stream import stream

    return stream(*args, **kwargs)


def _portforward(*args: Any, **kwargs: Any) -> Any:
    from kubernetes.stream import portforward

    return portforward(*args, **kwargs)


def stream_refusal(e: BaseException) -> ApiError | None:
    """The Kubernetes client's own ApiException (from exec and port-forward) as an ApiError."""
    status = getattr(e, "status", None)
    if type(e).__name__ != "ApiException" or not isinstance(status, int):
        return None
    return ApiError(status, str(getattr(e, "reason", "") or ""), str(getattr(e, "body", "") or ""))


def stream_api(endpoint: Any) -> Any:
    """A CoreV1Api of the Kubernetes client for one exec or port-forward (websockets, which this
    adapter's transport does not speak): imported only here, by the few commands that need it."""
    from kubernetes import client

    cfg = client.Configuration()
    cfg.host = endpoint.server
    cfg.ssl_ca_cert = endpoint.ca_file
    cfg.cert_file = endpoint.cert_file
    cfg.key_file = endpoint.key_file
    cfg.verify_ssl = not endpoint.insecure
    cfg.proxy = endpoint.proxy_url
    if endpoint.tls_server_name:
        cfg.tls_server_name = endpoint.tls_server_name
    authorization = endpoint.auth.headers().get("Authorization")
    if authorization:
        cfg.api_key = {"authorization": authorization}
    return client.CoreV1Api(client.ApiClient(cfg))
