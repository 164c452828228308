"""The one place envci talks to the Kubernetes API.

Stages call these thin methods; the objects they return are plain dicts in API JSON shape
(camelCase), which is what the pure rules in readiness.py take. API errors become
InfrastructureError with the Status message only: response bodies can carry secrets.

No other module imports the Kubernetes client (tests/unit/test_import_boundary.py checks it), so
retries, timeouts and error mapping cannot be bypassed, and tests/fakekube.py, an in-memory
stand-in with these methods, is all a stage test needs.
"""

from __future__ import annotations

import atexit
import builtins
import contextlib
import email.utils
import json
import logging
import os
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError
from kubernetes.stream import portforward as _portforward
from kubernetes.stream import stream as _stream
from kubernetes.watch.watch import iter_resp_lines

from envci.errors import ConfigError, InfrastructureError
from envci.redact import redact, truncate

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
    if isinstance(e, ApiException):
        return e.status in RETRY_STATUS or e.status == 0
    if isinstance(e, LOCAL_FILE_ERRORS):
        return False
    return isinstance(e, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError, OSError))


def retry_after(e: BaseException, now: Callable[[], float] = time.time) -> float | None:
    """Pure (given `now`): the seconds a 429/503 answer asked to wait, from its Retry-After header
    (delta seconds or an HTTP date); None when it asked nothing readable."""
    if not isinstance(e, ApiException) or e.status not in (429, 503):
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
    """What a caller sees when retries end: an ApiException as is (callers turn it into an
    InfrastructureError with its Status message), anything else as an InfrastructureError."""
    if isinstance(e, ApiException):
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


def status_message(e: ApiException) -> str:
    """The API's own explanation, never the raw body (it may echo submitted secrets)."""
    try:
        body = json.loads(e.body or "{}")
        if body.get("kind") == "Status" and body.get("message"):
            return truncate(redact(str(body["message"])), 500)
    except (ValueError, TypeError):
        pass
    return f"HTTP {e.status} {e.reason}"


def api_error(e: ApiException, doing: str) -> InfrastructureError:
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


def _discovery_cache() -> str:
    """A discovery cache for this process alone, removed at exit. The client's default is one file per
    server shared by every process, which goes on listing a kind after its CRD was deleted: a missing
    CRD would then pass the checks made before anything is changed and fail half-way as a 404."""
    path = os.path.join(tempfile.gettempdir(), f"envci-discovery-{os.getpid()}-{secrets.token_hex(4)}.json")
    atexit.register(_remove_quietly, path)
    return path


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


class Kube:
    """A connected client; construct with `connect()`.

    The Kubernetes client objects stay private: every call goes through a method here, so every
    call gets the retries and the error mapping (tests/unit/test_import_boundary.py keeps it so).
    tests/fakekube.py is an in-memory stand-in with the same methods, for stage tests."""

    def __init__(self, api: client.ApiClient, retry: RetryPolicy = RetryPolicy(), *, kubeconfig: str | None = None) -> None:
        self._api = api
        self.retry = retry
        self.kubeconfig = kubeconfig
        """The kubeconfig file this client was made from (None: ~/.kube/config or in-cluster), so
        tools that run beside it (helm, a test suite's kubectl) reach the same cluster."""
        self._dyn: DynamicClient | None = None

    def _dynamic(self) -> DynamicClient:
        if self._dyn is None:
            try:
                self._dyn = with_retries(lambda: DynamicClient(self._api, cache_file=_discovery_cache()), "discover the API", self.retry)
            except ApiException as e:
                raise api_error(e, "discover the API") from None
            except LOCAL_FILE_ERRORS as e:
                # The client keeps its discovery cache in the temporary directory.
                raise InfrastructureError(
                    f"cannot keep the Kubernetes API discovery cache: {e}",
                    hint="give envci a writable temporary directory (TMPDIR); in a pod with a read-only root "
                    "filesystem, mount an emptyDir at /tmp",
                ) from None
        return self._dyn

    def with_retry(self, retry: RetryPolicy) -> Kube:
        """The same connection under another retry policy: work done after a failure (diagnostics)
        must not spend minutes retrying a cluster that may be what failed."""
        other = Kube(self._api, retry, kubeconfig=self.kubeconfig)
        other._dyn = self._dyn
        return other

    # --- generic -------------------------------------------------------------------------------

    def _call(self, fn: Callable[[], T], doing: str) -> T:
        return with_retries(fn, doing, self.retry)

    def _plain(self, obj: Any) -> dict[str, Any]:
        """A generated model as the API's JSON (camelCase dict), the shape every caller takes."""
        out: dict[str, Any] = self._api.sanitize_for_serialization(obj)
        return out

    def _rest(self, method: str, path: str, *, query: dict[str, Any] | None = None, body: Any = None,
              timeout: Any = None, stream: bool = False) -> Any:
        """One request by path, answered as the API's JSON (or, with `stream`, the open response).

        The generated per-group API classes would do the same, but building them validates hundreds
        of models at import: about half a second of every command's start-up for a dozen paths."""
        params = [(k, str(v).lower() if isinstance(v, bool) else v) for k, v in (query or {}).items() if v is not None]
        headers = {"Accept": "application/json", **({"Content-Type": "application/json"} if body is not None else {})}
        _, url, headers, payload, _ = self._api.param_serialize(method, path, query_params=params, header_params=headers,
                                                                body=body, auth_settings=["BearerToken"])
        resp = self._api.call_api(method, url, header_params=headers, body=payload, _request_timeout=timeout)
        if resp.status >= 400:
            text = resp.read().decode("utf-8", errors="replace")
            raise ApiException.from_response(http_resp=resp, body=text, data=None)
        if stream:
            return resp.response
        data = resp.read()
        return json.loads(data) if data else {}

    def _resource(self, api_version: str, kind: str) -> Any:
        try:
            return self._call(lambda: self._dynamic().resources.get(api_version=api_version, kind=kind), f"look up {kind}")
        except ResourceNotFoundError:
            raise ConfigError(
                f"the cluster has no API for {kind} ({api_version})",
                hint="install the CRD first, or check apiVersion and kind",
            ) from None

    def is_namespaced(self, api_version: str, kind: str) -> bool:
        """Whether objects of a kind live in a namespace, from API discovery; ConfigError when the
        cluster serves no such kind."""
        return bool(self._resource(api_version, kind).namespaced)

    def apply(self, obj: dict[str, Any], namespace: str | None) -> dict[str, Any]:
        """Server-side apply: idempotent, and it leaves other managers' fields alone."""
        res = self._resource(obj["apiVersion"], obj["kind"])
        name = obj["metadata"]["name"]
        kw: dict[str, Any] = {"namespace": namespace} if res.namespaced else {}
        try:
            out = self._call(
                lambda: res.server_side_apply(body=obj, name=name, field_manager=FIELD_MANAGER, force_conflicts=True, **kw),
                f"apply {obj['kind']} {name}",
            )
        except ApiException as e:
            raise api_error(e, f"apply {obj['kind']} {name}") from None
        return cast(dict[str, Any], out.to_dict())

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        res = self._resource(api_version, kind)
        try:
            return cast(dict[str, Any], self._call(lambda: res.get(name=name, namespace=namespace), f"read {kind} {name}").to_dict())
        except NotFoundError:
            return None
        except ApiException as e:
            raise api_error(e, f"read {kind} {name}") from None

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        res = self._resource(api_version, kind)
        try:
            out = self._call(lambda: res.get(namespace=namespace, label_selector=label_selector), f"list {kind}")
        except NotFoundError:
            return []
        except ApiException as e:
            raise api_error(e, f"list {kind}") from None
        items: list[dict[str, Any]] = out.to_dict().get("items", [])
        for item in items:  # list items omit kind/apiVersion; the rules dispatch on kind
            item.setdefault("kind", kind)
            item.setdefault("apiVersion", api_version)
        return items

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        """Delete with Background propagation (Foreground can hang); False if it was already gone."""
        res = self._resource(api_version, kind)
        try:
            self._call(
                lambda: res.delete(name=name, namespace=namespace, body={"propagationPolicy": "Background"}), f"delete {kind} {name}"
            )
            return True
        except NotFoundError:
            return False
        except ApiException as e:
            if e.status == 404:
                return False
            raise api_error(e, f"delete {kind} {name}") from None

    def patch_merge(self, api_version: str, kind: str, name: str, patch: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        res = self._resource(api_version, kind)
        try:
            return cast(dict[str, Any], self._call(
                lambda: res.patch(name=name, namespace=namespace, body=patch, content_type="application/merge-patch+json"),
                f"update {kind} {name}",
            ).to_dict())
        except ApiException as e:
            raise api_error(e, f"update {kind} {name}") from None

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
        resp = None
        try:
            resp = self._rest("GET", paths[kind], query=query, timeout=seconds + 10, stream=True)
            for line in iter_resp_lines(resp):
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    if (event.get("object") or {}).get("code") == 410:
                        return
                    raise ApiException(status=(event.get("object") or {}).get("code") or 500, reason=(event.get("object") or {}).get("message"))
                yield WatchEvent(str(event["type"]), event["object"])
        except ApiException as e:
            if e.status == 410:
                return
            raise api_error(e, f"watch {kind} {name}" if name else f"watch {kind.lower()}s in {namespace}") from None
        except (*NO_ANSWER, ValueError):
            return
        finally:
            if resp is not None:
                resp.release_conn()

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
        except ApiException as e:
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
        except ApiException as e:
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
        except ApiException as e:
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
        except ApiException as e:
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
        except ApiException as e:
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
        except ApiException as e:
            if e.status in (400, 404):
                return
            raise api_error(e, doing) from None
        try:
            for line in iter_resp_lines(resp):
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
        except ApiException as e:
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

    def _stream_core(self) -> client.CoreV1Api:
        """A CoreV1Api on a private ApiClient, safe to hand to the streaming helpers (STREAM_LOCK)."""
        return client.CoreV1Api(client.ApiClient(self._api.configuration))

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
        except ApiException as e:
            raise api_error(e, doing) from None
        except Exception as e:  # noqa: BLE001 - websocket failures have many types
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
        except ApiException as e:
            raise api_error(e, f"port-forward to pod {namespace}/{pod}:{port}") from None
        except Exception as e:  # noqa: BLE001 - websocket errors have many types; all mean "cannot reach"
            raise InfrastructureError(
                f"cannot port-forward to pod {namespace}/{pod}:{port}: {redact(str(e))[:300]}",
                hint="check that the pod is running and that your credentials allow pods/portforward",
            ) from None


def kubeconfig_namespace(kubeconfig: str | None = None) -> str:
    """The namespace of the kubeconfig's current context, as kubectl would use it ("default")."""
    try:
        _, active = config.list_kube_config_contexts(config_file=kubeconfig or os.environ.get("KUBECONFIG"))
        return str((active.get("context") or {}).get("namespace") or "default")
    except (config.ConfigException, OSError, TypeError):
        return "default"


def connect(kubeconfig: str | None = None, context: str | None = None) -> Kube:
    """Connect with the given kubeconfig, $KUBECONFIG, ~/.kube/config, or in-cluster credentials."""
    path = kubeconfig or os.environ.get("KUBECONFIG")
    cfg = client.Configuration()
    try:
        if path or os.path.exists(os.path.expanduser("~/.kube/config")) or context:
            config.load_kube_config(config_file=path, context=context, client_configuration=cfg)
        else:
            config.load_incluster_config(client_configuration=cfg)
    except (config.ConfigException, OSError, TypeError) as e:
        raise InfrastructureError(
            f"no usable Kubernetes credentials: {e}",
            hint="set KUBECONFIG (or --kubeconfig), or run `envci cluster up` for the local cluster",
        ) from None
    cfg.retries = 3  # urllib3 retries connection errors; API-level retries are the caller's
    api = client.ApiClient(cfg)
    read = float(os.environ.get("ENVCI_API_TIMEOUT") or DEFAULT_REQUEST_TIMEOUT[1])
    with_default_timeout(api, (DEFAULT_REQUEST_TIMEOUT[0], read))
    return Kube(api, kubeconfig=path or None)


DEFAULT_REQUEST_TIMEOUT = (5.0, 60.0)
"""(connect, read) seconds for every API call that sets none (`ENVCI_API_TIMEOUT` sets the read
part). Without it a connection that goes silent (a dropped route, a half-open socket) blocks a
stage forever instead of being retried."""


def debug_http() -> bool:
    """`ENVCI_DEBUG=http` (a comma-separated list) prints every API request envci sends."""
    return "http" in (os.environ.get("ENVCI_DEBUG") or "").replace(" ", "").split(",")


def trace_request(method: str, url: str, status: Any, seconds: float) -> None:
    """One line on stderr per request: method, path (never a body or a header), status, duration."""
    path = urllib3.util.parse_url(url).request_uri
    print(f"envci: http {method} {path} -> {status} in {seconds * 1000:.0f} ms", file=sys.stderr, flush=True)


def with_default_timeout(api: client.ApiClient, timeout: tuple[float, float]) -> None:
    """The generated client sends `timeout=None` (wait forever) unless each call passes one."""
    rest = api.rest_client
    request: Callable[..., Any] = rest.request

    trace = debug_http()

    def timed_request(*args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("_request_timeout"):
            kwargs["_request_timeout"] = timeout
        if not trace:
            return request(*args, **kwargs)
        start = time.monotonic()
        status: Any = "no answer"
        try:
            resp = request(*args, **kwargs)
            status = resp.status
            return resp
        except ApiException as e:
            status = e.status
            raise
        finally:
            trace_request(str(args[0]), str(args[1]), status, time.monotonic() - start)

    rest.request = timed_request  # type: ignore[method-assign]  # wraps the method on this one instance
