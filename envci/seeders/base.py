"""What every seeder gets (`SeedContext`) and returns (`StepResult`), and how a seed step fails.

A seeder is one module with `run(step, ctx) -> StepResult`. It talks to the cluster only through
`ctx.kube` and the helpers in envci.kube, reads secrets only through `ctx.secret` (which
registers the value with the redactor before anyone can print it), and reports progress only
through `ctx.progress`, which redacts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envci import state as st
from envci.config.loader import LoadedConfig
from envci.errors import ConfigError, EnvciError, ExitCode, NotReadyError
from envci.kube import readiness
from envci.kube.client import Kube
from envci.kube.portforward import pod_is_ready
from envci.manifests import component_of
from envci.output import Reporter
from envci.redact import register

WORKLOADS: tuple[tuple[str, str], ...] = (("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("apps/v1", "DaemonSet"))


class SeedError(EnvciError):
    """A seed step ran and failed: the environment is up but its data is not loaded.

    Exit code 3 (NOT_READY), like a workload that never became ready: the environment is not
    usable for tests, and the cause is in the project (a SQL file, a seed script, a fixture), not
    in the cluster. Failures to reach the cluster or a service stay InfrastructureError (4), and a
    wrong envci.yaml stays ConfigError (2).
    """

    exit_code = ExitCode.NOT_READY

    def __init__(self, message: str, *, step: int | None = None, kind: str = "", hint: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, hint=hint)
        self.step = step
        self.kind = kind
        self.details = details or {}


@dataclass
class StepResult:
    kind: str
    summary: str
    """One line for people: what the step did ("2 files applied, 1 already applied")."""
    changed: bool = True
    """False when a re-run found everything already in place."""
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "summary": self.summary, "changed": self.changed, **self.details}


@dataclass
class SeedContext:
    cfg: LoadedConfig
    kube: Kube
    rep: Reporter
    state: st.EnvState | None
    index: int = 0
    """Position of the step in `seed:`, for messages that point into envci.yaml."""

    @property
    def namespace(self) -> str:
        return self.cfg.identity.namespace

    @property
    def env_name(self) -> str:
        return self.cfg.identity.name

    def progress(self, message: str) -> None:
        self.rep.progress(f"  seed[{self.index}]: {message}")

    def where(self, *path: str | int) -> tuple[str, int | None, str]:
        """(file, line, dotted field) of a key of this step, for ConfigError."""
        full = ("seed", self.index, *path)
        dotted = "seed[%d]" % self.index + "".join(f".{p}" if isinstance(p, str) else f"[{p}]" for p in path)
        return str(self.cfg.file), self.cfg.line(*full), dotted

    def config_error(self, message: str, *path: str | int, hint: str | None = None) -> ConfigError:
        file, line, dotted = self.where(*path)
        return ConfigError(message, file=file, line=line, field=dotted, hint=hint)

    def path(self, rel: str) -> Path:
        return self.cfg.resolve_path(rel)

    def secret(self, name: str, *path: str | int) -> str:
        """The value of the secret called `name` in `secrets:`; registered for redaction first."""
        secrets = self.cfg.context.get("secrets") or {}
        if name not in secrets:
            known = ", ".join(sorted(secrets)) or "none"
            raise self.config_error(f"names the secret {name!r}, which `secrets:` does not define (defined: {known})", *path,
                                    hint="add it under `secrets:` with `from_env:` or `secret:`/`key:`")
        value = str(secrets[name])
        register(value)
        return value

    def save_state(self) -> None:
        if self.state is not None:
            st.save(self.kube, self.state)


# --- finding a component's pods -----------------------------------------------------------------


def component_workloads(workloads: list[dict[str, Any]], component: str, release: str | None) -> list[dict[str, Any]]:
    """Pure: the workloads that belong to `component` (by envci's label, or its Helm release)."""
    owners = {release: component} if release else {}
    return sorted(
        (w for w in workloads if component_of(w, owners) == component),
        key=lambda w: (w.get("kind", ""), w["metadata"]["name"]),
    )


def _release(ctx: SeedContext, component: str) -> str | None:
    try:
        comp = ctx.cfg.spec.component(component)
    except KeyError:
        return None
    return (comp.helm.release or comp.name) if comp.helm else None


def find_workloads(ctx: SeedContext, component: str, *field_path: str | int) -> list[dict[str, Any]]:
    try:
        ctx.cfg.spec.component(component)
    except KeyError:
        known = ", ".join(c.name for c in ctx.cfg.spec.components) or "none"
        raise ctx.config_error(f"unknown component {component!r} (components: {known})", *field_path) from None
    found: list[dict[str, Any]] = []
    for api_version, kind in WORKLOADS:
        found.extend(ctx.kube.list(api_version, kind, ctx.namespace))
    return component_workloads(found, component, _release(ctx, component))


def ready_pod(ctx: SeedContext, component: str, *field_path: str | int) -> dict[str, Any]:
    """A running, ready pod of the component (first by name, so re-runs pick the same one)."""
    workloads = find_workloads(ctx, component, *field_path)
    pods = ctx.kube.pods(ctx.namespace)
    candidates = sorted(
        (p for w in workloads for p in readiness.pods_of(w, pods) if pod_is_ready(p)), key=lambda p: p["metadata"]["name"]
    )
    if not candidates:
        raise NotReadyError(
            f"component {component} has no running, ready pod in {ctx.namespace}",
            hint="run `envci wait-ready` before `envci seed`; `envci status` shows the pods",
        )
    return candidates[0]


def component_image(ctx: SeedContext, component: str, *field_path: str | int) -> str:
    """The image of the first container of the component's first workload."""
    workloads = find_workloads(ctx, component, *field_path)
    for w in workloads:
        containers = (((w.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
        if containers and containers[0].get("image"):
            return str(containers[0]["image"])
    raise ctx.config_error(
        f"component {component!r} has no Deployment, StatefulSet or DaemonSet with a container image in {ctx.namespace}",
        *field_path, hint="name a component that runs a workload, or give `image` instead",
    )
