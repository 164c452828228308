"""Kubernetes connection settings from kubeconfig files or a pod's service account.

This module exists so that envci can reach the API server without importing the `kubernetes`
package, whose import alone costs about 0.13 s of CPU on every CLI command. It reads what kubectl
reads (KUBECONFIG merging, relative paths, *-data fields, tokens, exec plugins) and hands back an
`Endpoint`: plain file paths for the TLS context plus an `Auth` that produces request headers.

Only the standard library and PyYAML are imported here, on purpose; keep it that way.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import yaml

from envci.errors import InfrastructureError

try:  # libyaml parses a large kubeconfig several times faster than the pure-Python loader
    from yaml import CSafeLoader as _YamlLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _YamlLoader  # type: ignore[assignment]

Clock = Callable[[], float]
"""Seconds since the epoch (wall time: exec credentials expire at a wall-clock instant)."""

INCLUSTER_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
"""Where Kubernetes mounts a pod's service account token, CA bundle and namespace."""

EXEC_EXPIRY_MARGIN = 60.0
"""Seconds before an exec credential's expirationTimestamp at which it is renewed, so a request
that starts just before expiry does not reach the server with a token that just ran out."""

TOKEN_FILE_REREAD = 60.0
"""Seconds between rereads of a token file. Projected service account tokens rotate (hourly by
default, renewed well before expiry), so once a minute is plenty and keeps file I/O off the hot path."""

EXEC_TIMEOUT = 120.0
"""Seconds an exec plugin may run. envci is never interactive: a plugin waiting for a browser login
would otherwise block a CI job until the job's own timeout."""

STDERR_TAIL = 500
"""Characters of a failed plugin's stderr shown in the error (the end is where the reason is)."""

EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")

_EXEC_CLUSTER_EXTENSION = "client.authentication.k8s.io/exec"
"""The cluster extension whose value is passed to exec plugins as spec.cluster.config."""

_SECRETISH = re.compile(r"(?i)(bearer\s+)\S+|eyJ[\w-]{6,}\.[\w-]{6,}\.[\w-]*")
"""Bearer tokens and JWTs a plugin might echo on stderr: they must not reach CI logs."""


class KubeconfigError(InfrastructureError):
    """The Kubernetes connection settings cannot be used; the message names the file, the field and the fix.

    An InfrastructureError, as failing to connect always was, so existing handlers and exit codes apply."""


@dataclass(frozen=True)
class Endpoint:
    """Everything needed to open a connection to one API server."""

    server: str
    """Base URL such as "https://127.0.0.1:6443", without a trailing slash."""
    ca_file: str | None
    """CA bundle to verify the server with; None: the system's trust store."""
    cert_file: str | None
    """Client certificate (PEM). For an exec plugin's certificate the path stays the same when the
    plugin renews it; watch `auth.cert_generation` to know when to reload it."""
    key_file: str | None
    """Client key (PEM) matching cert_file."""
    insecure: bool
    """insecure-skip-tls-verify: do not verify the server's certificate."""
    tls_server_name: str | None
    """Name to send in SNI and check the server certificate against, instead of the URL's host."""
    proxy_url: str | None
    """Proxy for every request to this cluster (http, https or socks5 URL)."""
    namespace: str
    """The context's namespace, else "default"; in a pod, the service account's namespace."""
    auth: Auth
    """Produces the request headers (bearer token, basic auth) and renews them."""
    source: str
    """Where these settings came from, for messages."""


# --- authentication ----------------------------------------------------------------------------


class Auth:
    """Request headers for one user, shared by all threads of a process (every method takes a lock).

    This base class is the anonymous user (no headers); the kinds of credential are subclasses."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._cert_generation = 0

    def headers(self) -> dict[str, str]:
        """Headers to add to a request; {} when there are none. May renew an expired credential."""
        return {}

    def refresh(self) -> bool:
        """Called after a 401: renew the credential now. True if it may have changed (worth a retry)."""
        return False

    @property
    def cert_generation(self) -> int:
        """Grows each time an exec plugin hands out a new client certificate (written to the same
        files as before), so a client knows to reload its TLS context."""
        with self._lock:
            return self._cert_generation


class StaticAuth(Auth):
    """A credential that never changes: a token, basic auth or an OIDC id-token written in the kubeconfig."""

    def __init__(self, authorization: str, clock: Clock = time.time) -> None:
        super().__init__(clock)
        self._authorization = authorization

    def headers(self) -> dict[str, str]:
        return {"Authorization": self._authorization}

    def __repr__(self) -> str:  # the token must not reach a log through a repr
        return f"{type(self).__name__}(<redacted>)"


class TokenFileAuth(Auth):
    """A bearer token read from a file that something else rotates (tokenFile, a projected service
    account token). A failed reread keeps the last good token: the file is usually replaced by an
    atomic rename, but a reader can still race the writer."""

    def __init__(self, path: str, what: str, fallback: str | None = None, clock: Clock = time.time) -> None:
        super().__init__(clock)
        self._path = path
        self._fallback = fallback
        self._token = _read_token(path, what)  # unreadable at load: a KubeconfigError that says where
        self._read_at = clock()

    def _reread(self) -> bool:
        self._read_at = self._clock()
        try:
            with open(self._path, encoding="utf-8") as f:
                token = f.read().strip()
        except (OSError, UnicodeDecodeError):
            return False
        changed = token != self._token
        self._token = token
        return changed

    def headers(self) -> dict[str, str]:
        with self._lock:
            if self._clock() - self._read_at >= TOKEN_FILE_REREAD:
                self._reread()
            token = self._token or self._fallback
        return {"Authorization": f"Bearer {token}"} if token else {}

    def refresh(self) -> bool:
        with self._lock:
            return self._reread()

    def __repr__(self) -> str:
        return f"TokenFileAuth({self._path!r})"


@dataclass(frozen=True)
class ExecConfig:
    """A user's `exec` section, checked and with its command resolved."""

    command: str
    """As written in the kubeconfig; relative paths containing a separator are already made
    absolute against the kubeconfig's directory, bare names are looked up on PATH when run."""
    args: tuple[str, ...]
    env: dict[str, str]
    api_version: str
    install_hint: str | None
    cluster: dict[str, Any] | None
    """spec.cluster of the ExecCredential passed to the plugin (provideClusterInfo), else None."""
    where: str
    """'kubeconfig FILE: users[name=U].user.exec', for messages."""


class ExecAuth(Auth):
    """Credentials from an exec plugin (client.authentication.k8s.io), cached until they expire.

    The plugin runs with the lock held, so concurrent requests wait for one run instead of starting
    several. A credential without expirationTimestamp is kept until a 401 makes the caller refresh."""

    def __init__(self, config: ExecConfig, clock: Clock = time.time) -> None:
        super().__init__(clock)
        self.config = config
        self._ran = False
        self._token: str | None = None
        self._cert: bytes | None = None
        self._key: bytes | None = None
        self._expires_at: float | None = None
        self.cert_file: str | None = None
        self.key_file: str | None = None

    def _valid(self) -> bool:
        if not self._ran:
            return False
        return self._expires_at is None or self._clock() < self._expires_at - EXEC_EXPIRY_MARGIN

    def ensure(self) -> None:
        """Run the plugin unless the cached credential is still good."""
        with self._lock:
            if not self._valid():
                self._run()

    def headers(self) -> dict[str, str]:
        with self._lock:
            if not self._valid():
                self._run()
            token = self._token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def refresh(self) -> bool:
        with self._lock:
            before = (self._token, self._cert, self._key)
            self._run()
            return (self._token, self._cert, self._key) != before

    def _run(self) -> None:
        token, cert, key, expires_at = run_exec_plugin(self.config, self._clock)
        self._ran = True
        self._token, self._expires_at = token, expires_at
        if cert is not None and key is not None and (cert, key) != (self._cert, self._key):
            self.cert_file = _write_private(cert, "exec-cert-", replace=self.cert_file)
            self.key_file = _write_private(key, "exec-key-", replace=self.key_file)
            self._cert, self._key = cert, key
            self._cert_generation += 1

    def __repr__(self) -> str:
        return f"ExecAuth({self.config.command!r})"


def _resolve_command(config: ExecConfig) -> str:
    if os.sep in config.command or (os.altsep and os.altsep in config.command):
        return config.command  # already made absolute against the kubeconfig's directory
    found = shutil.which(config.command)
    if found is None:
        raise _missing_command(config, "not found on PATH")
    return found


def _missing_command(config: ExecConfig, why: str) -> KubeconfigError:
    hint = (config.install_hint or "").strip() or "install the plugin, or fix the command in the kubeconfig"
    return KubeconfigError(f"{config.where}.command: cannot run {config.command!r}: {why}", hint=hint)


def run_exec_plugin(config: ExecConfig, clock: Clock = time.time) -> tuple[str | None, bytes | None, bytes | None, float | None]:
    """Run an exec plugin once: (token, client certificate PEM, client key PEM, expiry as epoch seconds).

    Nothing the plugin prints on stdout is ever put into a message: that is where the credential is."""
    spec: dict[str, Any] = {"interactive": False}
    if config.cluster is not None:
        spec["cluster"] = config.cluster
    env = dict(os.environ)
    env.update(config.env)
    env["KUBERNETES_EXEC_INFO"] = json.dumps({"apiVersion": config.api_version, "kind": "ExecCredential", "spec": spec})
    command = _resolve_command(config)
    try:
        proc = subprocess.run(
            [command, *config.args], env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=EXEC_TIMEOUT, check=False
        )
    except FileNotFoundError:
        raise _missing_command(config, f"{command} does not exist") from None
    except PermissionError:
        raise _missing_command(config, f"{command} is not executable (chmod +x it)") from None
    except subprocess.TimeoutExpired:
        raise KubeconfigError(
            f"{config.where}: plugin {config.command!r} did not finish within {EXEC_TIMEOUT:.0f} s",
            hint="envci never answers prompts: log in beforehand so the plugin can work without interaction",
        ) from None
    except OSError as e:
        raise _missing_command(config, e.strerror or str(e)) from None
    if proc.returncode != 0:
        stderr = _SECRETISH.sub(lambda m: (m.group(1) or "") + "<redacted>", proc.stderr.decode("utf-8", "replace")).strip()
        tail = stderr[-STDERR_TAIL:] if stderr else "(no stderr)"
        raise KubeconfigError(
            f"{config.where}: plugin {config.command!r} failed with exit code {proc.returncode}: {tail}",
            hint="run the plugin by hand to see why (expired login, missing permissions), or pick another context",
        )
    try:
        credential = json.loads(proc.stdout)
    except ValueError:
        credential = None
    if not isinstance(credential, dict):
        raise KubeconfigError(
            f"{config.where}: plugin {config.command!r} printed no ExecCredential JSON ({len(proc.stdout)} bytes on stdout)",
            hint="check that the command in the kubeconfig is the credential plugin itself, not a wrapper that prints other text",
        )
    returned = credential.get("apiVersion")
    if returned != config.api_version:
        raise KubeconfigError(
            f"{config.where}: plugin {config.command!r} returned apiVersion {returned!r}, the kubeconfig asks for {config.api_version!r}",
            hint="set exec.apiVersion in the kubeconfig to the version the plugin speaks",
        )
    status = credential.get("status")
    status = status if isinstance(status, dict) else {}
    token = status.get("token") or None
    cert = status.get("clientCertificateData") or None
    key = status.get("clientKeyData") or None
    if not all(v is None or isinstance(v, str) for v in (token, cert, key)) or (cert is None) != (key is None):
        raise KubeconfigError(
            f"{config.where}: plugin {config.command!r} returned a malformed status "
            "(token, clientCertificateData and clientKeyData must be strings, the last two together)",
            hint="update the plugin",
        )
    if token is None and cert is None:
        raise KubeconfigError(
            f"{config.where}: plugin {config.command!r} returned neither status.token nor a client certificate",
            hint="run the plugin by hand: it may need a login first",
        )
    expires_at = None
    stamp = status.get("expirationTimestamp")
    if stamp:
        try:
            moment = datetime.fromisoformat(str(stamp))
        except ValueError:
            raise KubeconfigError(
                f"{config.where}: plugin {config.command!r} returned an unreadable status.expirationTimestamp {str(stamp)[:40]!r}",
                hint="the plugin must write RFC 3339 time (2030-01-02T03:04:05Z); update it",
            ) from None
        expires_at = (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()
    return (
        token,
        cert.encode() if isinstance(cert, str) else None,
        key.encode() if isinstance(key, str) else None,
        expires_at,
    )


# --- private files for *-data fields -----------------------------------------------------------

_private_lock = threading.Lock()
_private_dir: str | None = None
_private_pid = 0
_private_files: dict[str, str] = {}
"""sha256 of the content -> its file, so loading the same kubeconfig again writes nothing new."""


def _remove_private_dir(path: str, pid: int) -> None:
    if os.getpid() == pid:  # a forked child inherits atexit handlers but not the right to delete
        shutil.rmtree(path, ignore_errors=True)


def _private_directory() -> str:
    global _private_dir, _private_pid
    if _private_dir is None or _private_pid != os.getpid():
        _private_dir = tempfile.mkdtemp(prefix="envci-kube-")  # mode 0700
        os.chmod(_private_dir, 0o700)
        _private_pid = os.getpid()
        _private_files.clear()
        atexit.register(_remove_private_dir, _private_dir, _private_pid)
    return _private_dir


def _write_private(data: bytes, prefix: str, *, replace: str | None = None) -> str:
    """Write key material to a 0600 file in this process's 0700 temporary directory (removed at exit).

    With `replace`, that file's content is swapped atomically, so a reader sees old or new, never half."""
    with _private_lock:
        directory = _private_directory()
        digest = hashlib.sha256(prefix.encode() + b"\0" + data).hexdigest()
        known = _private_files.get(digest)
        if replace is None and known is not None and os.path.exists(known):
            return known
        fd, path = tempfile.mkstemp(dir=directory, prefix=prefix)  # mode 0600
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if replace is not None and os.path.dirname(replace) == directory:
            os.replace(path, replace)
            return replace
        _private_files[digest] = path
        return path


# --- kubeconfig files --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Named:
    """One cluster, user or context, with the file that defined it (relative paths resolve against it)."""

    name: str
    body: dict[str, Any]
    file: str
    where: str
    """e.g. 'kubeconfig /home/ci/.kube/config: users[name=ci].user'"""

    def field(self, key: str) -> str:
        return f"{self.where}.{key}"


@dataclass
class _Merged:
    files: list[str]
    current_context: str | None = None
    clusters: dict[str, _Named] = field(default_factory=dict)
    users: dict[str, _Named] = field(default_factory=dict)
    contexts: dict[str, _Named] = field(default_factory=dict)

    def describe(self) -> str:
        return "kubeconfig " + os.pathsep.join(self.files)


def _config_files(path: str | None) -> list[str] | None:
    """The kubeconfig files to merge, in order; None when there are none and in-cluster applies."""
    if path:
        named, origin = path, "the kubeconfig path"
    elif os.environ.get("KUBECONFIG"):
        named, origin = os.environ["KUBECONFIG"], "$KUBECONFIG"
    else:
        default = os.path.expanduser("~/.kube/config")
        return [default] if os.path.exists(default) else None
    listed = [os.path.expanduser(p) for p in named.split(os.pathsep) if p]
    if len(listed) == 1 and not os.path.exists(listed[0]):
        raise KubeconfigError(
            f"kubeconfig {listed[0]} (from {origin}) does not exist",
            hint="fix the path, or unset it to use ~/.kube/config or the pod's service account",
        )
    present = [p for p in listed if os.path.exists(p)]  # kubectl skips missing files in a list
    if not present:
        raise KubeconfigError(
            f"none of the kubeconfig files in {origin} exists: {', '.join(listed)}",
            hint="fix the list, or unset it to use ~/.kube/config or the pod's service account",
        )
    return present


def _read_file(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise KubeconfigError(f"cannot read kubeconfig {path}: {reason}", hint="check the file's permissions and encoding (UTF-8)") from None
    try:
        data = yaml.load(text, Loader=_YamlLoader)
    except yaml.YAMLError as e:
        # Position and problem only: the default rendering quotes the offending line, which may hold a token.
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or "syntax error"
        raise KubeconfigError(f"kubeconfig {path} is not valid YAML{at}: {problem}", hint="fix the file, or regenerate it") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise KubeconfigError(f"kubeconfig {path} is not a mapping (found {type(data).__name__})", hint="a kubeconfig starts with `apiVersion: v1` and `kind: Config`")
    return data


def _merge(files: list[str]) -> _Merged:
    """Merge as kubectl does: for each name the first file that defines it wins, whole (no field
    merging), and current-context comes from the first file that sets one."""
    merged = _Merged(files=files)
    for path in files:
        data = _read_file(path)
        if merged.current_context is None and data.get("current-context"):
            merged.current_context = str(data["current-context"])
        for section, inner, into in (
            ("clusters", "cluster", merged.clusters),
            ("users", "user", merged.users),
            ("contexts", "context", merged.contexts),
        ):
            entries = data.get(section) or []
            if not isinstance(entries, list):
                raise KubeconfigError(f"kubeconfig {path}: {section} must be a list", hint=f"write {section} as a list of {{name, {inner}}} entries")
            for i, entry in enumerate(entries):
                body = entry.get(inner) if isinstance(entry, dict) else None
                if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not isinstance(body or {}, dict):
                    raise KubeconfigError(
                        f"kubeconfig {path}: {section}[{i}] must be a mapping with a name and a {inner} mapping",
                        hint="fix the entry, or regenerate the kubeconfig",
                    )
                name = entry["name"]
                if name not in into:
                    into[name] = _Named(name, body or {}, path, f"kubeconfig {path}: {section}[name={name}].{inner}")
    return merged


def _pick_context(merged: _Merged, context: str | None) -> _Named:
    name = context or merged.current_context
    known = ", ".join(sorted(merged.contexts)) or "none"
    if not name:
        raise KubeconfigError(
            f"{merged.describe()} sets no current-context (contexts: {known})",
            hint="run `kubectl config use-context NAME`, or pass --context",
        )
    if name not in merged.contexts:
        how = "was requested" if context else "is the current-context"
        raise KubeconfigError(
            f'context "{name}" {how} but {merged.describe()} does not define it (contexts: {known})',
            hint="run `kubectl config get-contexts` and pick one of those (`kubectl config use-context NAME` or --context)",
        )
    return merged.contexts[name]


def _string(entry: _Named, key: str) -> str | None:
    value = entry.body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise KubeconfigError(f"{entry.field(key)} must be a string, not {type(value).__name__}", hint="quote the value in the kubeconfig")
    return value


def _flag(entry: _Named, key: str) -> bool:
    value = entry.body.get(key)
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _relative_to(entry: _Named, path: str) -> str:
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(entry.file)), os.path.expanduser(path)))


def _file_or_data(entry: _Named, key: str, prefix: str) -> tuple[str, bytes] | None:
    """`key` (a path) or `key-data` (base64): the path to use and its content. -data wins, as in kubectl."""
    data = _string(entry, f"{key}-data")
    if data is not None:
        try:
            content = base64.b64decode("".join(data.split()), validate=True)
        except (binascii.Error, ValueError):
            raise KubeconfigError(
                f"{entry.field(key + '-data')} is not valid base64",
                hint=f"write `base64 -w0 FILE` there, or name the file with {key} instead",
            ) from None
        return _write_private(content, prefix), content
    named = _string(entry, key)
    if named is None:
        return None
    path = _relative_to(entry, named)
    try:
        with open(path, "rb") as f:
            content = f.read()
    except OSError as e:
        raise KubeconfigError(
            f"{entry.field(key)}: cannot read {path}: {e.strerror or e}",
            hint=f"fix the path (relative paths are relative to {os.path.dirname(os.path.abspath(entry.file))}) or the file's permissions",
        ) from None
    return path, content


def _read_token(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise KubeconfigError(f"{what}: cannot read token file {path}: {reason}", hint="fix the path or the file's permissions") from None


def _exec_config(user: _Named, cluster_info: dict[str, Any]) -> ExecConfig:
    spec = user.body["exec"]
    where = user.field("exec")
    if not isinstance(spec, dict):
        raise KubeconfigError(f"{where} must be a mapping", hint="see `kubectl config set-credentials --help` for the exec fields")
    exec_entry = _Named(user.name, spec, user.file, where)
    command = _string(exec_entry, "command")
    if command is None:
        raise KubeconfigError(f"{where}.command is missing", hint="name the credential plugin to run, e.g. gke-gcloud-auth-plugin")
    if os.sep in command or (os.altsep and os.altsep in command):
        command = _relative_to(exec_entry, command)
    api_version = _string(exec_entry, "apiVersion")
    if api_version is None or api_version not in EXEC_API_VERSIONS:
        raise KubeconfigError(
            f"{where}.apiVersion is {api_version!r}; envci supports {' and '.join(EXEC_API_VERSIONS)}",
            hint="set the version the plugin speaks (v1alpha1 was removed from Kubernetes; update the plugin)",
        )
    args = spec.get("args") or []
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise KubeconfigError(f"{where}.args must be a list of strings", hint="quote each argument")
    env: dict[str, str] = {}
    for i, item in enumerate(spec.get("env") or []):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not isinstance(item.get("value", ""), str):
            raise KubeconfigError(f"{where}.env[{i}] must be a mapping with a name and a string value", hint="write `- {name: VAR, value: \"text\"}`")
        env[item["name"]] = item.get("value") or ""
    # interactiveMode is not read: envci never has a terminal to offer, so every plugin runs as with "Never".
    return ExecConfig(
        command=command,
        args=tuple(args),
        env=env,
        api_version=api_version,
        install_hint=_string(exec_entry, "installHint"),
        cluster=cluster_info if _flag(exec_entry, "provideClusterInfo") else None,
        where=where,
    )


_REMOVED_PROVIDERS = {
    "gcp": "install gke-gcloud-auth-plugin (`gcloud components install gke-gcloud-auth-plugin`) and rerun "
    "`gcloud container clusters get-credentials`, which writes an exec section",
    "azure": "convert the kubeconfig to an exec plugin with `kubelogin convert-kubeconfig`",
}


def _auth_provider(user: _Named) -> str:
    """The Authorization header of an auth-provider section (only oidc's stored id-token remains usable)."""
    provider = user.body["auth-provider"]
    where = user.field("auth-provider")
    name = provider.get("name") if isinstance(provider, dict) else None
    if name != "oidc":
        hint = _REMOVED_PROVIDERS.get(str(name), "use an exec plugin instead (e.g. gke-gcloud-auth-plugin for GKE, kubelogin for AKS)")
        raise KubeconfigError(f"{where}: the {name!r} auth-provider was removed from kubectl and is not supported", hint=hint)
    config = provider.get("config")
    token = config.get("id-token") if isinstance(config, dict) else None
    if not isinstance(token, str) or not token:
        raise KubeconfigError(
            f"{where}.config.id-token is missing; envci does not run OIDC logins or refreshes",
            hint="log in once with your OIDC tool so it stores an id-token, or use an exec plugin such as kubelogin",
        )
    return f"Bearer {token}"


_IMPERSONATION = ("as", "as-uid", "as-groups", "as-user-extra")


def _user_auth(user: _Named | None, cluster_info: dict[str, Any], clock: Clock) -> Auth:
    """The credential a user section describes. Precedence when several are present:
    token/tokenFile, then exec, then auth-provider, then username/password."""
    if user is None:
        return Auth(clock)
    for key in _IMPERSONATION:
        if user.body.get(key):
            # Ignoring it would act as the kubeconfig's own identity, usually a more powerful one.
            raise KubeconfigError(
                f"{user.field(key)}: impersonation is not supported by envci",
                hint="use a context whose user is the identity envci should act as",
            )
    token = _string(user, "token")
    token_file = _string(user, "tokenFile")
    if token_file is not None:
        return TokenFileAuth(_relative_to(user, token_file), user.field("tokenFile"), fallback=token, clock=clock)
    if token is not None:
        return StaticAuth(f"Bearer {token}", clock)
    if user.body.get("exec"):
        return ExecAuth(_exec_config(user, cluster_info), clock)
    if user.body.get("auth-provider"):
        return StaticAuth(_auth_provider(user), clock)
    username, password = _string(user, "username"), _string(user, "password")
    if username is not None or password is not None:
        pair = f"{username or ''}:{password or ''}".encode()
        return StaticAuth("Basic " + base64.b64encode(pair).decode("ascii"), clock)
    return Auth(clock)


def _from_kubeconfig(merged: _Merged, context: str | None, clock: Clock) -> Endpoint:
    ctx = _pick_context(merged, context)
    cluster_name = _string(ctx, "cluster")
    if cluster_name is None:
        raise KubeconfigError(f"{ctx.field('cluster')} is missing", hint=f'name a cluster: `kubectl config set-context {ctx.name} --cluster=NAME`')
    cluster = merged.clusters.get(cluster_name)
    if cluster is None:
        raise KubeconfigError(
            f'{ctx.field("cluster")} names cluster "{cluster_name}", which no file of {merged.describe()} defines '
            f"(clusters: {', '.join(sorted(merged.clusters)) or 'none'})",
            hint="fix the context, or add the file that defines the cluster to KUBECONFIG",
        )
    user_name = _string(ctx, "user")
    user = merged.users.get(user_name) if user_name is not None else None
    if user_name is not None and user is None:
        raise KubeconfigError(
            f'{ctx.field("user")} names user "{user_name}", which no file of {merged.describe()} defines '
            f"(users: {', '.join(sorted(merged.users)) or 'none'})",
            hint="fix the context, or add the file that defines the user to KUBECONFIG",
        )

    server = _string(cluster, "server")
    if server is None:
        raise KubeconfigError(f"{cluster.field('server')} is missing", hint="set the API server's URL, e.g. https://127.0.0.1:6443")
    server = (server if "://" in server else "https://" + server).rstrip("/")  # kubectl reads host:port as https
    ca = _file_or_data(cluster, "certificate-authority", "ca-")
    tls_server_name = _string(cluster, "tls-server-name")
    proxy_url = _string(cluster, "proxy-url")
    insecure = _flag(cluster, "insecure-skip-tls-verify")

    cluster_info: dict[str, Any] = {"server": server}  # spec.cluster for exec plugins; empty fields omitted as in Go
    if tls_server_name:
        cluster_info["tls-server-name"] = tls_server_name
    if insecure:
        cluster_info["insecure-skip-tls-verify"] = True
    if ca is not None:
        cluster_info["certificate-authority-data"] = base64.b64encode(ca[1]).decode("ascii")
    if proxy_url:
        cluster_info["proxy-url"] = proxy_url
    for extension in cluster.body.get("extensions") or []:
        if isinstance(extension, dict) and extension.get("name") == _EXEC_CLUSTER_EXTENSION:
            cluster_info["config"] = extension.get("extension")

    cert_file = key_file = None
    if user is not None:
        cert = _file_or_data(user, "client-certificate", "cert-")
        key = _file_or_data(user, "client-key", "key-")
        if (cert is None) != (key is None):
            missing = "client-key" if key is None else "client-certificate"
            raise KubeconfigError(f"{user.field(missing)} (or {missing}-data) is missing", hint="a client certificate needs its key, and the other way round")
        cert_file, key_file = (cert[0] if cert else None), (key[0] if key else None)

    auth = _user_auth(user, cluster_info, clock)
    if isinstance(auth, ExecAuth):
        # Run now: a plugin may hand out a client certificate, which the TLS context needs before any request.
        auth.ensure()
        if auth.cert_file is not None:
            cert_file, key_file = auth.cert_file, auth.key_file

    return Endpoint(
        server=server,
        ca_file=ca[0] if ca else None,
        cert_file=cert_file,
        key_file=key_file,
        insecure=insecure,
        tls_server_name=tls_server_name,
        proxy_url=proxy_url,
        namespace=_string(ctx, "namespace") or "default",
        auth=auth,
        source=f'kubeconfig {ctx.file} (context "{ctx.name}")',
    )


def _incluster(incluster_dir: str, clock: Clock) -> Endpoint:
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise KubeconfigError(
            "no Kubernetes credentials: $KUBECONFIG is not set, ~/.kube/config does not exist, and this is not a pod "
            "(KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are unset)",
            hint="set KUBECONFIG (or --kubeconfig), or run `envci cluster up` for the local cluster",
        )
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    ca_file = os.path.join(incluster_dir, "ca.crt")
    try:
        with open(os.path.join(incluster_dir, "namespace"), encoding="utf-8") as f:
            namespace = f.read().strip() or "default"
    except (OSError, UnicodeDecodeError):
        namespace = "default"
    auth = TokenFileAuth(os.path.join(incluster_dir, "token"), "in-cluster service account (is automountServiceAccountToken off?)", clock=clock)
    return Endpoint(
        server=f"https://{host}:{port}",
        ca_file=ca_file if os.path.exists(ca_file) else None,
        cert_file=None,
        key_file=None,
        insecure=False,
        tls_server_name=None,
        proxy_url=None,
        namespace=namespace,
        auth=auth,
        source="in-cluster service account",
    )


def load(path: str | None = None, context: str | None = None, *, incluster_dir: str = INCLUSTER_DIR, clock: Clock = time.time) -> Endpoint:
    """Connection settings as kubectl would find them.

    `path` (one file, or an os.pathsep-separated list like KUBECONFIG), else $KUBECONFIG, else
    ~/.kube/config if it exists, else the pod's service account. `context` defaults to the
    current-context. Raises KubeconfigError with the file, the field and the fix.
    """
    files = _config_files(path)
    if files is None:
        if context:
            raise KubeconfigError(
                f'context "{context}" was requested but there is no kubeconfig ($KUBECONFIG unset, no ~/.kube/config)',
                hint="set KUBECONFIG (or --kubeconfig) to the file that defines the context",
            )
        return _incluster(incluster_dir, clock)
    return _from_kubeconfig(_merge(files), context, clock)


def current_namespace(path: str | None = None) -> str:
    """The current context's namespace (in a pod: the service account's), "default" on any problem.

    Reads files only: no credential is loaded and no plugin runs."""
    try:
        files = _config_files(path)
        if files is None:
            with open(os.path.join(INCLUSTER_DIR, "namespace"), encoding="utf-8") as f:
                return f.read().strip() or "default"
        ctx = _pick_context(_merge(files), None)
        return _string(ctx, "namespace") or "default"
    except Exception:  # noqa: BLE001 - by contract this never fails: a namespace is a default, not a requirement
        return "default"
