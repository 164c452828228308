"""The only place that talks to Helm (through pyhelm3, which drives the real `helm` binary).

Credentials reach helm as a kubeconfig file, never as `--kube-token` on the command line, because
pyhelm3 logs whole command lines; a redacting filter on its logger masks anything else secret.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pyhelm3 import Client
from pyhelm3 import errors as helm_errors

from envci.errors import ConfigError, EnvciError, InfrastructureError, NotReadyError
from envci.redact import RedactingFilter, redact, truncate

if TYPE_CHECKING:
    from envci.kube.client import Kube

# pyhelm3 logs every command at INFO and expected misses ("release not found") at WARNING; envci
# reports Helm failures itself, so only its errors pass, and those redacted.
for _name in ("pyhelm3", "pyhelm3.command", "pyhelm3.client"):
    logging.getLogger(_name).addFilter(RedactingFilter())
logging.getLogger("pyhelm3").setLevel(logging.ERROR)


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
    def __init__(self, kubeconfig: str | None = None, *, timeout: str = "5m") -> None:
        self.executable = helm_executable()
        self.kubeconfig = kubeconfig or os.environ.get("KUBECONFIG")
        try:
            self.client = Client(
                executable=self.executable,
                kubeconfig=Path(self.kubeconfig) if self.kubeconfig else None,
                default_timeout=timeout,
            )
        except (AssertionError, OSError, subprocess.SubprocessError) as e:
            raise InfrastructureError(f"cannot run helm ({self.executable}): {e}") from None

    @classmethod
    def beside(cls, kube: Kube) -> Helm:
        """A Helm for the cluster `kube` talks to: its kubeconfig file, not whatever $KUBECONFIG
        says, which may name another cluster when the client was made from an explicit file."""
        return cls(kube.kubeconfig)

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
    ) -> ReleaseResult:
        """Install, upgrade, or leave alone when chart and values are unchanged.

        A release left pending by an interrupted run is rolled back or removed first, so a re-run
        converges instead of failing with "another operation is in progress".
        """
        try:
            chart = await self.client.get_chart(chart_ref, version=version, repo=repo)
            before = await self._revision(release, namespace)
            rev = await self.client.ensure_release(
                release, chart, *values, namespace=namespace, timeout=timeout, create_namespace=False
            )
        except helm_errors.ChartNotFoundError as e:
            raise ConfigError(f"chart {chart_ref} not found: {_clean(e)}", hint="check chart, repo and version") from None
        except helm_errors.FailedToRenderChartError as e:
            raise ConfigError(f"chart {chart_ref} failed to render: {_clean(e)}", hint="run `helm template` on it with the same values") from None
        except helm_errors.Error as e:
            raise install_error(release, namespace, _clean(e)) from None
        return ReleaseResult(release, rev.revision, str(rev.status.value), before != rev.revision)

    async def _revision(self, release: str, namespace: str) -> int | None:
        try:
            return (await self.client.get_current_revision(release, namespace=namespace)).revision
        except helm_errors.ReleaseNotFoundError:
            return None

    async def uninstall(self, release: str, namespace: str, timeout: str = "2m") -> None:
        try:
            await self.client.uninstall_release(release, namespace=namespace, timeout=timeout, wait=False)
        except helm_errors.Error as e:
            raise InfrastructureError(f"helm uninstall of {release} in {namespace} failed: {_clean(e)}") from None

    async def releases(self, namespace: str) -> list[dict[str, Any]]:
        try:
            return list(
                await self.client.list_release_definitions(
                    namespace=namespace, include_failed=True, include_pending=True, include_deployed=True
                )
            )
        except helm_errors.Error as e:
            raise InfrastructureError(f"helm list in {namespace} failed: {_clean(e)}") from None

    def test(self, release: str, namespace: str, timeout: str = "10m") -> subprocess.CompletedProcess[str]:
        """`helm test`; pyhelm3 has no call for it, so it is the one direct subprocess."""
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


def _clean(e: BaseException) -> str:
    return truncate(redact(str(e).strip()), 1500)


def run(coro: Any) -> Any:
    return asyncio.run(coro)
