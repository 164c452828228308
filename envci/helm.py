"""The only place that talks to Helm: the real `helm` binary for what changes a release, and Helm's
release records (read through the Kubernetes adapter, see helmrecords.py) for what only looks.

One `helm upgrade --install` per changed release and nothing for an unchanged one; `helm uninstall` only
for a release that owns something a namespace deletion would leave. Credentials reach helm as a kubeconfig
file, never on its command line; values go in a private temporary file, never as `--set` arguments.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from envci import helmrecords as hr
from envci.errors import ConfigError, EnvciError, InfrastructureError, NotReadyError
from envci.helmhold import Hold, holds
from envci.redact import redact, truncate

if TYPE_CHECKING:
    from envci.kube.client import Kube


def helm_executable() -> str:
    """`$ENVCI_HELM`, then `helm` on PATH, then the one built for the local cluster."""
    explicit = os.environ.get("ENVCI_HELM")
    if explicit:
        return explicit
    found = shutil.which("helm")
    if found:
        return found
    from envci.localcluster import binaries_dir

    local = binaries_dir() / "helm"
    if local.exists():
        return str(local)
    raise InfrastructureError(
        "the helm binary was not found",
        hint="install Helm 3 and put it on PATH, set ENVCI_HELM, or run `envci cluster up` to build one",
    )


@dataclass(frozen=True)
class ReleaseResult:
    release: str
    revision: int
    status: str
    changed: bool


def load_values_files(paths: list[Path]) -> list[dict[str, Any]]:
    out = []
    for p in paths:
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"cannot read values file: {e}", file=str(p)) from None
        if not isinstance(data, dict):
            raise ConfigError("a values file must hold a mapping", file=str(p))
        out.append(data)
    return out


class Helm:
    def __init__(self, kubeconfig: str | None = None, *, kube: Kube | None = None) -> None:
        self.executable = helm_executable()
        self.kubeconfig = kubeconfig or os.environ.get("KUBECONFIG")
        self._kube = kube
        self._holds: asyncio.Future[bool] | None = None

    @classmethod
    def beside(cls, kube: Kube) -> Helm:
        """A Helm for the cluster `kube` talks to: its kubeconfig file, not whatever $KUBECONFIG
        says, which may name another cluster when the client was made from an explicit file."""
        return cls(kube.kubeconfig, kube=kube)

    def _kube_client(self) -> Kube:
        if self._kube is None:
            from envci.kube.client import connect

            self._kube = connect(self.kubeconfig)
        return self._kube

    # --- records --------------------------------------------------------------------------------

    def _record_kind(self) -> str | None:
        """The kind Helm keeps records in, or None for drivers outside the cluster (sql, memory)."""
        return hr.RECORD_KINDS.get(os.environ.get("HELM_DRIVER", "").lower())

    def _records(self, namespace: str, selector: str) -> list[dict[str, Any]] | None:
        kind = self._record_kind()
        if kind is None:
            return None
        objs = self._kube_client().list("v1", kind, namespace=namespace, label_selector=selector)
        return [rec for obj in objs if (rec := hr.decode_record({**obj, "kind": kind})) is not None]

    async def current(self, release: str, namespace: str) -> dict[str, Any] | None:
        """The release's newest revision as Helm recorded it; None when it was never installed."""
        records = await asyncio.to_thread(self._records, namespace, f"owner=helm,name={release}")
        return hr.latest(records or [])

    # --- changes --------------------------------------------------------------------------------

    async def can_hold(self) -> bool:
        """Whether installs can be held (helmhold.py): asked of `helm version` once, by whoever asks first."""
        if self._holds is None:
            self._holds = asyncio.ensure_future(self._version_holds())
        return await asyncio.shield(self._holds)

    async def _version_holds(self) -> bool:
        known = _HoldsCache.read(self.executable)
        if known is not None:
            return known
        try:
            proc = await asyncio.create_subprocess_exec(self.executable, "version", "--template", "{{.Version}}",
                                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            out, _ = await proc.communicate()
        except OSError:
            return False
        answer = proc.returncode == 0 and holds(out.decode(errors="replace"))
        if proc.returncode == 0:
            _HoldsCache.write(self.executable, answer)
        return answer

    async def ensure(
        self,
        release: str,
        chart_ref: str | Path,
        *,
        namespace: str,
        values: list[dict[str, Any]],
        version: str | None = None,
        repo: str | None = None,
        timeout: str = "5m",
        hold: Hold | None = None,
    ) -> ReleaseResult:
        """Install, upgrade, or leave alone when chart and values are unchanged.

        A release left pending by an interrupted run is rolled back or removed first, so a re-run
        converges instead of failing with "another operation is in progress". With `hold`, helm
        renders at once and applies only once the hold is released."""
        chart = hr.local_chart_id(chart_ref) if isinstance(chart_ref, Path) else hr.remote_chart_id(chart_ref, version)
        merged = hr.merge_values(values)
        current = await self.current(release, namespace)
        step = hr.plan(current, chart, merged)
        if step == "keep" and current is not None:
            return ReleaseResult(release, int(current["version"]), hr.status_of(current), False)
        if step == "uninstall-first":
            await self._helm(["uninstall", release, "--namespace", namespace, "--wait", "--timeout", timeout], release, namespace,
                             doing="removal of the interrupted install")
        elif step == "rollback-first":
            await self._helm(["rollback", release, "--namespace", namespace, "--wait", "--cleanup-on-fail", "--timeout", timeout],
                             release, namespace, doing="rollback of the interrupted upgrade")
        args = ["upgrade", release, str(chart_ref), "--install", "--namespace", namespace, "--timeout", timeout, "--output", "json"]
        args += ["--version", version] if version else []
        args += ["--repo", repo] if repo else []
        with _values_file(merged) as path:
            args += ["--values", path]
            if hold is None:
                out = await self._helm(args, release, namespace, chart_ref=str(chart_ref))
            else:
                out = await self._held(args, hold, release, namespace, str(chart_ref))
        try:
            done = json.loads(out)
            return ReleaseResult(release, int(done["version"]), str((done.get("info") or {}).get("status", "deployed")), True)
        except (ValueError, KeyError, TypeError):
            raise InfrastructureError(f"helm upgrade of {release} in {namespace} printed no release: {truncate(redact(out), 300)}") from None

    async def _held(self, args: list[str], hold: Hold, release: str, namespace: str, chart_ref: str) -> str:
        try:
            return await self._helm([*args, *hold.args()], release, namespace, chart_ref=chart_ref, env=hold.env())
        except EnvciError as e:
            # Helm renders and post-renders before it records or applies anything, so a failure that
            # names the post-renderer (one that cannot run: a temporary directory mounted noexec, say)
            # left nothing behind: install as usual once released, and hold no more.
            if hold.answer is False or not _POST_RENDER_FAILED.search(e.message):
                raise
            self._holds = asyncio.get_running_loop().create_future()
            self._holds.set_result(False)
            if not await hold.answered():
                raise
            return await self._helm(args, release, namespace, chart_ref=chart_ref)

    async def uninstall(self, release: str, namespace: str, timeout: str = "2m") -> None:
        await self._helm(["uninstall", release, "--namespace", namespace, "--timeout", timeout], release, namespace, doing="uninstall")

    async def releases(self, namespace: str) -> list[dict[str, Any]]:
        """Every release in the namespace, newest revision each, with `needs_uninstall`: why deleting the
        namespace would not remove all of it (None: it would)."""
        records = await asyncio.to_thread(self._records, namespace, "owner=helm")
        if records is None:  # records outside the cluster: ask helm, and uninstall everything
            out = await self._helm(["list", "--namespace", namespace, "--all", "--output", "json"], "", namespace, doing="list")
            return [{"name": r["name"], "needs_uninstall": "Helm keeps its records outside the cluster"} for r in json.loads(out or "[]")]
        by_name: dict[str, list[dict[str, Any]]] = {}
        for rec in records:
            by_name.setdefault(str(rec.get("name")), []).append(rec)
        scope = self._scope()
        out_list = []
        for name, recs in sorted(by_name.items()):
            newest = hr.latest(recs)
            if newest is not None:
                reason = await asyncio.to_thread(hr.needs_uninstall, newest, namespace, scope)
                out_list.append({"name": name, "status": hr.status_of(newest), "revision": newest["version"], "needs_uninstall": reason})
        return out_list

    def _scope(self) -> Any:
        kube = self._kube_client()

        def namespaced(api_version: str, kind: str) -> bool | None:
            try:
                return kube.is_namespaced(api_version, kind)
            except ConfigError:
                return None

        return namespaced

    async def _helm(self, args: Sequence[str], release: str, namespace: str, *, chart_ref: str = "", doing: str = "install",
                    env: dict[str, str] | None = None) -> str:
        cmd = [self.executable, *args, *(["--kubeconfig", self.kubeconfig] if self.kubeconfig else [])]
        try:
            proc = await asyncio.create_subprocess_exec(*cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                        env={**os.environ, **env} if env else None)
            stdout, stderr = await proc.communicate()
        except OSError as e:
            raise InfrastructureError(f"cannot run helm ({self.executable}): {e}") from None
        if proc.returncode == 0:
            return stdout.decode(errors="replace")
        text = truncate(redact(stderr.decode(errors="replace").strip()), 1500)
        if doing != "install":
            raise InfrastructureError(f"helm {doing} of {release or 'releases'} in {namespace} failed: {text}")
        raise _install_failure(release, namespace, chart_ref, text)

    def test(self, release: str, namespace: str, timeout: str = "10m") -> subprocess.CompletedProcess[str]:
        """`helm test`, synchronously: a suite runs it in a worker of its own."""
        cmd = [self.executable, "test", release, "--namespace", namespace, "--logs", "--timeout", timeout]
        if self.kubeconfig:
            cmd += ["--kubeconfig", self.kubeconfig]
        return subprocess.run(cmd, capture_output=True, text=True, check=False)


# Helm's words for a hook that failed ("failed pre-install: 1 error occurred: * job x failed: BackoffLimitExceeded")
# and for a template naming a kind the cluster does not serve.
_HOOK_FAILED = re.compile(r"failed (pre-install|post-install|pre-upgrade|post-upgrade|pre-rollback|post-rollback)"
                          r"[^*]*\*\s*(.+)", re.DOTALL)
_HOOK_OBJECT = re.compile(r"\b(job|pod) ([a-z0-9][a-z0-9.-]*)", re.IGNORECASE)
_NO_KIND = re.compile(r'resource mapping not found for name: "([^"]*)".*?no matches for kind "([^"]+)" in version "([^"]+)"', re.DOTALL)


def install_error(release: str, namespace: str, text: str) -> EnvciError:
    """Pure: the error for a failed `helm upgrade --install`, by what Helm says went wrong.

    A failed hook is the application's failure (its Job ran and failed), not the cluster's; a
    custom resource whose CRD is missing is the chart's input; anything else may heal on a retry."""
    hook = _HOOK_FAILED.search(text)
    if hook:
        phase, detail = hook.group(1), hook.group(2).strip().splitlines()[0].strip()
        obj = _HOOK_OBJECT.search(detail)
        see = f"`kubectl -n {namespace} logs {obj.group(1).lower()}/{obj.group(2)}`" if obj else f"`kubectl -n {namespace} get events`"
        return NotReadyError(
            f"release {release} in {namespace}: its {phase} hook failed: {detail}",
            hint=f"the chart's {phase} hook did not succeed: read its logs ({see}, or the diagnostics bundle), fix it and provision again",
        )
    missing = _NO_KIND.search(text)
    if missing:
        name, kind, version = missing.groups()
        return ConfigError(
            f"release {release}: {kind} {name}: the cluster has no API for {kind} ({version})",
            hint=f"install the CustomResourceDefinition of {kind} first (the chart's crds/ folder, or a component "
            f"{release} depends_on), or check apiVersion and kind",
        )
    return InfrastructureError(f"helm failed for release {release} in {namespace}: {text}")


class _HoldsCache:
    """Whether a helm binary takes an executable post-renderer, remembered across processes by its
    path, size and modification time: asking it costs a helm process (30-40 ms of CPU) per provision."""

    @staticmethod
    def _file() -> Path:
        from envci.cachedir import cache_root

        return cache_root() / "helm-post-renderer.json"

    @staticmethod
    def _key(executable: str) -> str | None:
        try:
            path = os.path.realpath(shutil.which(executable) or executable)
            st = os.stat(path)
        except (OSError, TypeError):
            return None
        return f"{path}:{st.st_size}:{st.st_mtime_ns}"

    @classmethod
    def read(cls, executable: str) -> bool | None:
        key = cls._key(executable)
        try:
            known = json.loads(cls._file().read_text(encoding="utf-8")).get(key) if key else None
        except (OSError, ValueError, AttributeError):
            return None
        return known if isinstance(known, bool) else None

    @classmethod
    def write(cls, executable: str, answer: bool) -> None:
        key = cls._key(executable)
        if key is None:
            return
        path = cls._file()
        try:
            known = json.loads(path.read_text(encoding="utf-8"))
            known = known if isinstance(known, dict) else {}
        except (OSError, ValueError):
            known = {}
        known = {k: v for k, v in known.items() if not k.startswith(key.rsplit(":", 2)[0] + ":")}  # one entry per path
        known[key] = answer
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}")
            tmp.write_text(json.dumps(known), encoding="utf-8")
            os.replace(tmp, path)  # concurrent provisions: one whole file wins
        except OSError:
            pass  # a read-only home: ask helm again next time


# Helm's words for a post-renderer that failed ("error while running post render on files").
_POST_RENDER_FAILED = re.compile(r"post[ -]?render", re.IGNORECASE)

# Helm's words for a chart it cannot find or cannot render: the user's input, not the cluster.
_CHART_NOT_FOUND = re.compile(r'chart "[^"]+" (version "[^"]+" )?not found|path "[^"]+" not found|no chart (name|version) found|'
                              r'failed to fetch|not a valid chart repository|repo .* not found', re.IGNORECASE)
_RENDER_FAILED = re.compile(r"failed to render chart|execution error|parse error|error converting YAML to JSON|"
                            r"template: .*: (executing|function)", re.IGNORECASE)


def _install_failure(release: str, namespace: str, chart_ref: str, text: str) -> EnvciError:
    """Pure: the error for a failed `helm upgrade --install`, by what Helm says went wrong."""
    if _CHART_NOT_FOUND.search(text):
        return ConfigError(f"chart {chart_ref} not found: {text}", hint="check chart, repo and version")
    if _RENDER_FAILED.search(text):
        return ConfigError(f"chart {chart_ref} failed to render: {text}", hint="run `helm template` on it with the same values")
    return install_error(release, namespace, text)


@contextlib.contextmanager
def _values_file(values: dict[str, Any]) -> Iterator[str]:
    """The merged values in a file only this user can read, removed afterwards (values may hold secrets)."""
    fd, path = tempfile.mkstemp(prefix="envci-values-", suffix=".yaml")
    try:
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(values, f)
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
