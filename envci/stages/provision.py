"""provision: create or update the environment and install its components.

Order matters for cleanup: the namespace (with labels and expiry) and the state record are
written before anything else, so a provision that dies at any later point leaves an environment
that teardown and the janitor can find.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Callable

from envci import state as st
from envci.ci.outputs import first_url, publish, write_outputs
from envci.config.loader import LoadedConfig
from envci.config.overrides import flatten
from envci.config.model import Component
from envci.errors import ConfigError, EnvciError, InfrastructureError, OwnershipError, SupersededError
from envci.identity import is_older_build
from envci.helm import Helm, load_values_files
from envci.helmhold import Hold
from envci.kube.client import Kube
from envci.kube.lease import Lease
from envci.manifests import Scope, check_components, cluster_scoped, component_files, file_objects
from envci.namespace import guard_objects, namespace_object
from envci.output import Reporter
from envci.redact import redact
from envci.plan import install_order
from envci.stages.budgets import make_room, namespace_marks
from envci.stages.suspend import restore
from envci.stages.teardown import teardown
from envci.suspension import suspended_at
from envci.urls import environment_urls

Clock = Callable[[], datetime]
log = logging.getLogger("envci.stages")


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


TERMINATING_WAIT_SECONDS = 180.0
"""How long provision waits for a namespace of the same name that is still being deleted: a cancelled
build's teardown (a newer push cancels the older run, whose cleanup removes the environment) that the
new build would otherwise fail on."""


def ensure_namespace(
    kube: Kube, cfg: LoadedConfig, *, now: datetime, progress: Callable[[str], None] = lambda m: None,
    sleep: Callable[[float], None] = time.sleep, monotonic: Callable[[], float] = time.monotonic,
    terminating_wait: float = TERMINATING_WAIT_SECONDS,
) -> None:
    ident = cfg.identity
    existing = kube.namespace(ident.namespace)
    end = monotonic() + terminating_wait
    announced = False
    while existing and _owned(existing) and _terminating(existing) and monotonic() < end:
        if not announced:
            progress(f"namespace {ident.namespace} is still being deleted (an earlier teardown); waiting for it to go")
            announced = True
        sleep(1.0)
        existing = kube.namespace(ident.namespace)
    if existing:
        meta = existing.get("metadata") or {}
        labels = meta.get("labels") or {}
        if not _owned(existing):
            raise OwnershipError(
                f"namespace {ident.namespace} exists and is not managed by envci",
                hint="choose another name with --env or namespace.prefix; envci never takes over a namespace it did not create",
            )
        theirs = labels.get("envci.io/build", "")
        if ident.ctx.build and theirs and is_older_build(ident.ctx.build, theirs):
            raise SupersededError(
                f"environment {ident.name} belongs to newer build {theirs}; build {ident.ctx.build} stands down",
                hint="nothing to do: the newer build's pipeline owns the environment now",
            )
        if _terminating(existing):
            raise InfrastructureError(
                f"namespace {ident.namespace} is still being deleted after {terminating_wait:.0f}s",
                hint="something holds it (`envci teardown --env NAME` explains what), fix that, then retry",
            )
    labels, annotations = namespace_marks(cfg)
    kube.apply(namespace_object(ident, cfg.spec.namespace, now=now, ttl=cfg.spec.ttl_delta, digest=cfg.digest,
                                labels=labels, annotations=annotations), None)


def recorded_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Pure: the overrides as the environment's record keeps them, one dotted path each, with any
    value that is a known secret masked (the record is a ConfigMap)."""
    return {path: redact(value) if isinstance(value, str) else value for path, value in flatten(overrides).items()}


def _owned(ns: dict[str, Any]) -> bool:
    return ((ns.get("metadata") or {}).get("labels") or {}).get("envci.io/managed") == "true"


def _terminating(ns: dict[str, Any]) -> bool:
    return (ns.get("status") or {}).get("phase") == "Terminating" or bool((ns.get("metadata") or {}).get("deletionTimestamp"))


def api_scope(kube: Kube) -> Scope:
    """Whether a kind is namespaced, from API discovery (reads only)."""

    def scope(api_version: str, kind: str) -> bool | None:
        try:
            return kube.is_namespaced(api_version, kind)
        except ConfigError:
            return None  # not served yet: a chart installed earlier in this run may bring the CRD

    return scope


def apply_manifests(kube: Kube, cfg: LoadedConfig, comp: Component) -> list[str]:
    names = []
    for source in component_files(cfg, comp):
        for obj in file_objects(cfg, comp, source):
            kind, name = obj["kind"], obj["metadata"]["name"]
            try:
                namespaced = kube.is_namespaced(obj["apiVersion"], kind)
            except ConfigError as e:  # no such API: name the object and where it came from
                raise ConfigError(
                    f"component {comp.name}: {kind} {name}: {e.detail}",
                    file=source,
                    hint=f"install the CustomResourceDefinition of {kind} first (in a chart's crds/ folder, or in a component "
                    f"that {comp.name} depends_on), or check apiVersion and kind",
                ) from None
            if not namespaced:  # a CRD installed during this run: unknown to the check before it
                raise cluster_scoped(comp.name, obj, source)
            kube.apply(obj, cfg.identity.namespace)
            names.append(f"{kind}/{name}")
    return names


async def install_component(kube: Kube, helm: Helm | None, cfg: LoadedConfig, comp: Component, rec: st.ComponentRecord,
                            hold: Hold | None = None) -> str:
    ns = cfg.identity.namespace
    if comp.helm:
        assert helm is not None
        h = comp.helm
        chart: Any = h.chart
        if not h.repo and not h.chart.startswith("oci://"):
            chart = cfg.resolve_path(h.chart)
        values = load_values_files([cfg.resolve_path(v) for v in h.values_files]) + [h.values]
        res = await helm.ensure(
            rec.release or comp.name, chart, namespace=ns, values=values, version=h.version, repo=h.repo,
            timeout=comp.wait.timeout, hold=hold,
        )
        rec.revision = res.revision
        rec.status = "installed"
        return f"helm release {res.release} revision {res.revision}" + ("" if res.changed else " (unchanged)")
    names = await asyncio.to_thread(apply_manifests, kube, cfg, comp)
    rec.objects = names
    rec.status = "installed"
    return f"{len(names)} object(s) applied"


def provision(
    cfg: LoadedConfig,
    kube: Kube,
    rep: Reporter,
    *,
    helm_factory: Callable[[], Helm] | None = None,
    wait_for_dependency: Callable[[list[str]], None] | None = None,
    clock: Clock = _utcnow,
    teardown_fn: Callable[..., dict[str, Any]] = teardown,
) -> dict[str, Any]:
    ident = cfg.identity
    rep.progress(f"provisioning environment {ident.name} in namespace {ident.namespace}")
    # The outputs first: a job that runs after a failed provision (GitLab's stop job reads them as a
    # dotenv report) still learns which environment to remove.
    write_outputs(ident.name, ident.namespace, {})
    # Every manifest is rendered and checked before the namespace exists: bad input changes nothing.
    check_components(cfg, api_scope(kube))
    # Budgets too: a refused environment leaves the cluster as it was, and expired environments are torn
    # down to make room only when that makes enough.
    room = make_room(kube, cfg, rep, now=clock(), teardown_fn=teardown_fn)
    # Read before the namespace is applied again: only then are the workloads listed to restore them,
    # so a runner whose role cannot list ReplicaSets or CronJobs still provisions what was never suspended.
    suspended = bool(suspended_at(kube.namespace(ident.namespace) or {}))
    ensure_namespace(kube, cfg, now=clock(), progress=rep.progress)
    with Lease(kube, ident.namespace, "provision", progress=rep.progress) as lease:
        suspended = suspended or bool(suspended_at(kube.namespace(ident.namespace) or {}))  # suspended while this waited for the lock
        out = _provision_locked(cfg, kube, rep, helm_factory=helm_factory or (lambda: Helm.beside(kube)), wait_for_dependency=wait_for_dependency,
                                clock=clock, still_held=lease.check, suspended=suspended)
    out["budgets"] = room["budgets"]
    out["reaped"] = room["reaped"]
    return out


def _provision_locked(
    cfg: LoadedConfig,
    kube: Kube,
    rep: Reporter,
    *,
    helm_factory: Callable[[], Helm],
    wait_for_dependency: Callable[[list[str]], None] | None,
    clock: Clock,
    still_held: Callable[[], None] = lambda: None,
    suspended: bool = False,
) -> dict[str, Any]:
    ident = cfg.identity
    spec = cfg.spec
    state = st.load(kube, ident.namespace) or st.EnvState(name=ident.name, namespace=ident.namespace, app=ident.app)
    previous_digest = state.digest
    state.ci = {k: v for k, v in ident.ctx.as_template_context().items() if v}
    state.overrides = recorded_overrides(cfg.overrides)
    for c in spec.components:
        rec = state.components.get(c.name) or st.ComponentRecord(kind="helm" if c.helm else "manifests")
        if c.helm:
            rec.release = c.helm.release or c.name
        state.components[c.name] = rec
    state.record("provision", "started", now=clock())
    st.save(kube, state)

    try:
        # An environment the janitor suspended comes back first: an unchanged Helm release is not
        # upgraded, and a manifest without `replicas` does not set it, so installing alone would
        # leave its workloads at zero.
        if suspended:
            restore(kube, ident.namespace, rep, check=still_held, now=clock())
            rep.progress(f"environment {ident.name} was suspended: its workloads are back at their recorded replicas")
        for obj in guard_objects(spec.namespace):
            kube.apply(obj, ident.namespace)
        helm = helm_factory() if any(c.helm for c in spec.components) else None
        install_order(spec.components)  # a cycle is bad input before anything is installed
        asyncio.run(_install_graph(kube, helm, cfg, state, rep, wait_for_dependency, still_held))
        state.urls = environment_urls(spec.components, ident.namespace)
        state.digest = cfg.digest
        state.record("provision", "succeeded", "unchanged" if previous_digest == cfg.digest else "", now=clock())
        st.save(kube, state)
    except BaseException as e:
        state.record("provision", "failed", str(e), now=clock())
        try:
            st.save(kube, state)
        except EnvciError:
            pass  # the namespace labels alone still let teardown and the janitor find it
        raise

    out_dir = publish(ident.name, ident.namespace, state.urls)
    return {
        "name": ident.name,
        "namespace": ident.namespace,
        "url": first_url(state.urls),
        "urls": state.urls,
        "components": {n: {"kind": r.kind, "release": r.release, "revision": r.revision, "status": r.status} for n, r in state.components.items()},
        "changed": previous_digest != cfg.digest,
        "outputs": str(out_dir),
    }


async def _install_graph(
    kube: Kube, helm: Helm | None, cfg: LoadedConfig, state: st.EnvState, rep: Reporter,
    wait_for_dependency: Callable[[list[str]], None] | None, still_held: Callable[[], None],
) -> None:
    """Each component as soon as everything it depends on is ready, not wave by wave: one slow
    database holds back only what needs it. After the first failure nothing new starts; what
    runs already finishes (a helm process cut short would leave its release pending), then the
    first error is raised."""
    comps = cfg.spec.components
    needed = {d for c in comps for d in c.depends_on}
    ready: dict[str, asyncio.Future[None]] = {c.name: asyncio.get_running_loop().create_future() for c in comps}
    failed: list[BaseException] = []

    async def one(c: Component) -> None:
        with contextlib.ExitStack() as stack:
            held: tuple[Hold, asyncio.Future[str]] | None = None
            try:
                held = await _held_install(stack, kube, helm, cfg, c, state.components[c.name])
                for dep in c.depends_on:
                    await asyncio.shield(ready[dep])
                if failed:
                    raise _Skipped()
                still_held()  # a stage that lost the lease installs nothing more
                rep.progress(f"installing {c.name}")
                if held:
                    held[0].release()
                msg = await (held[1] if held else install_component(kube, helm, cfg, c, state.components[c.name]))
                rep.progress(f"  {c.name}: {msg}")
                if wait_for_dependency and c.name in needed and not failed:
                    await _in_daemon_thread(wait_for_dependency, [c.name])
                ready[c.name].set_result(None)
            except BaseException as e:
                if not isinstance(e, _Skipped):
                    state.components[c.name].status = "failed"
                    failed.append(e)
                ready[c.name].set_exception(_Skipped())
                ready[c.name].exception()  # retrieved: a component nobody depends on must not warn
                if held and not held[1].done() and not isinstance(e, asyncio.CancelledError):
                    held[0].call_off()  # helm stops before it records or applies anything
                    await asyncio.wait([held[1]])
                if isinstance(e, asyncio.CancelledError):
                    raise
            finally:
                if held and held[1].done() and not held[1].cancelled():
                    held[1].exception()  # called off: its error is expected, and already told if not

    await asyncio.gather(*(one(c) for c in comps))
    if failed:
        raise failed[0]


async def _held_install(
    stack: contextlib.ExitStack, kube: Kube, helm: Helm | None, cfg: LoadedConfig, c: Component, rec: st.ComponentRecord,
) -> tuple[Hold, asyncio.Future[str]] | None:
    """For a chart that waits on dependencies: its helm started now and held before it applies
    (helmhold.py), so starting, fetching and rendering overlap the wait. None where helm cannot hold."""
    if not (c.helm and c.depends_on and helm is not None and await helm.can_hold()):
        return None
    try:
        hold = stack.enter_context(Hold())
    except OSError as e:  # no FIFO here: install as usual
        log.debug("%s: helm not held: %s", c.name, e)
        return None
    return hold, asyncio.ensure_future(install_component(kube, helm, cfg, c, rec, hold=hold))


async def _in_daemon_thread(fn: Callable[[list[str]], None], names: list[str]) -> None:
    """`fn(names)` in a thread of its own that never holds the process: a wait for readiness may run
    for minutes, and a cancelled provision (SIGTERM) must exit at once, not when that wait ends (the
    executor behind asyncio.to_thread is joined at exit)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if not done.done():
            done.set_exception(error) if error else done.set_result(None)

    def work() -> None:
        error: BaseException | None = None
        try:
            fn(names)
        except BaseException as e:  # noqa: BLE001 - handed to the awaiting task, which raises it
            error = e
        with contextlib.suppress(RuntimeError):  # the loop is gone: provision was cancelled meanwhile
            loop.call_soon_threadsafe(settle, error)

    threading.Thread(target=work, name=f"wait-{'-'.join(names)}", daemon=True).start()
    await done


class _Skipped(Exception):
    """A component not started because another failed first."""
