"""teardown: remove everything an environment made, idempotently.

It works from what the cluster records (the namespace's labels, `helm list`, the state record),
not from envci.yaml, so it also cleans up after a provision that crashed half-way or a config
that has since changed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from envci import external
from envci import state as st
from envci.errors import ConfigError, EnvciError, InfrastructureError, OwnershipError
from envci.helm import Helm
from envci.identity import CiContext, context_selector, environment_key, is_older_build, label_value
from envci.kube.client import Kube
from envci.kube.lease import Lease, settings_from_env
from envci.manifests import HELM_RELEASE_ANNOTATION
from envci.namespace import A, rfc3339
from envci.output import Reporter

Sleep = Callable[[float], None]
Clock = Callable[[], float]

log = logging.getLogger("envci.stages")


def find_namespace(kube: Kube, *, namespace: str | None = None, name: str | None = None) -> dict[str, Any] | None:
    """By namespace name (from the config) or by environment name (`--env`, label envci.io/env)."""
    if namespace:
        ns = kube.namespace(namespace)
        if ns and (ns["metadata"].get("labels") or {}).get("envci.io/managed") == "true":
            return ns
        if ns:
            raise OwnershipError(
                f"namespace {namespace} is not managed by envci; refusing to delete it",
                hint="it was not created by envci; if the environment has another name, pass it with --env",
            )
    if name:
        found = kube.namespaces(f"envci.io/managed=true,envci.io/env={name}")
        if found:
            return found[0]
    return None


def describe_context(ctx: CiContext) -> str:
    """The CI context as a person reads it, for messages: `repository acme/shop, pr-42`."""
    return ", ".join(x for x in (f"repository {ctx.repo}" if ctx.repo else "", environment_key(ctx)) if x)


def pick_environment(found: list[dict[str, Any]], *, context: str, prefer: str = "") -> dict[str, Any] | None:
    """Pure: the one namespace among those matching a CI context, None when there is none.

    Several match when one repository holds several apps (several envci.yaml files): `prefer` (the
    ENVCI_NAME a provision job published) picks one; otherwise envci refuses to guess."""
    if len(found) <= 1:
        return found[0] if found else None
    if prefer:
        chosen = [ns for ns in found if (ns["metadata"].get("labels") or {}).get("envci.io/env") == label_value(prefer)]
        if len(chosen) == 1:
            return chosen[0]
    names = sorted((ns["metadata"].get("labels") or {}).get("envci.io/env") or ns["metadata"]["name"] for ns in found)
    raise ConfigError(
        f"{len(found)} environments belong to this build's {context}: {', '.join(names)}; envci will not guess which one",
        field="--env",
        hint="pass --env NAME (or set ENVCI_ENV), or run where the app's envci.yaml is, so its `name:` tells them apart",
    )


def find_for_context(kube: Kube, ctx: CiContext, *, prefer: str = "") -> dict[str, Any] | None:
    """The environment `provision` made for this CI context, found without envci.yaml: by the labels
    every environment carries (the key its name came from: PR, MR or branch; and the repository)."""
    return pick_environment(kube.namespaces(context_selector(ctx)), context=describe_context(ctx), prefer=prefer)


def stuck_reasons(kube: Kube, ns: dict[str, Any]) -> list[str]:
    """Why a Terminating namespace is not going away: its conditions and objects with finalizers."""
    name = ns["metadata"]["name"]
    reasons = [
        f"{c.get('type')}: {c.get('message')}"
        for c in (ns.get("status") or {}).get("conditions") or []
        if c.get("status") == "True" and c.get("type") in ("NamespaceContentRemaining", "NamespaceFinalizersRemaining", "NamespaceDeletionContentFailure")
    ]
    for obj in objects_with_finalizers(kube, name):
        reasons.append(f"{obj['kind']}/{obj['metadata']['name']} has finalizers {obj['metadata']['finalizers']}")
    return reasons


def objects_with_finalizers(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    out = []
    for api_version, kind in (
        ("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "Pod"), ("v1", "PersistentVolumeClaim"), ("v1", "Service"),
        ("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("batch/v1", "Job"),
    ):
        for obj in kube.list(api_version, kind, namespace):
            if obj["metadata"].get("finalizers"):
                obj.setdefault("kind", kind)
                obj.setdefault("apiVersion", api_version)
                out.append(obj)
    return out


def teardown(
    kube: Kube,
    rep: Reporter,
    *,
    namespace: str | None = None,
    name: str | None = None,
    timeout: float = 300,
    force: bool = False,
    build: str = "",
    wait: bool = True,
    helm_factory: Callable[[], Helm] | None = None,
    sleep: Sleep = time.sleep,
    clock: Clock = time.monotonic,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Remove the environment. With `deadline` (seconds), finish inside it, as a cancelled CI job must
    within its grace period: every deletion starts early and each wait is cut to what is left; a
    namespace still terminating at the deadline is Kubernetes' to finish (`gone` is False)."""
    end = clock() + deadline if deadline is not None else None

    def left(share: float = 1.0) -> float:
        return timeout if end is None else max(1.0, (end - clock()) * share)

    ns = find_namespace(kube, namespace=namespace, name=name)
    label = name or namespace
    if ns is None:
        rep.progress(f"environment {label} does not exist: nothing to tear down")
        return {"name": label, "namespace": namespace, "deleted": False, "existed": False}
    ns_name = ns["metadata"]["name"]
    env_name = (ns["metadata"].get("labels") or {}).get("envci.io/env", label)
    theirs = (ns["metadata"].get("labels") or {}).get("envci.io/build", "")
    if build and theirs and is_older_build(build, theirs):
        rep.progress(f"environment {env_name} now belongs to newer build {theirs}; leaving it to that build")
        return {"name": env_name, "namespace": ns_name, "deleted": False, "existed": True, "superseded_by": theirs}
    rep.progress(f"tearing down environment {env_name} (namespace {ns_name})")
    lease = None
    state = None  # a namespace already Terminating has no record worth reading
    marked = not ns["metadata"].get("deletionTimestamp") and mark_expired(kube, ns, rep)
    try:  # whatever fails below, the lease is released and its renewal thread stopped
        if not ns["metadata"].get("deletionTimestamp"):
            settings = settings_from_env()
            if end is not None:  # waiting out another holder must leave time for the deletions
                settings = dataclasses.replace(settings, wait=min(settings.wait, timedelta(seconds=left(0.3))))
            lease = Lease(kube, ns_name, "teardown", settings=settings, progress=rep.progress)
            lease.acquire()
            state = st.load(kube, ns_name)
            if state:
                state.record("teardown", "started")
                try:
                    st.save(kube, state)
                except EnvciError:
                    pass
            _uninstall_releases(kube, ns_name, rep, helm_factory or (lambda: Helm.beside(kube)), timeout=f"{int(left(0.5))}s" if end is not None else "2m")
        newer = _newer_build(kube, ns_name, build)
        if newer:  # a newer build's provision relabelled it while this teardown ran (a cancelled run's cleanup)
            rep.progress(f"environment {env_name} now belongs to newer build {newer}; leaving it to that build")
            return {"name": env_name, "namespace": ns_name, "deleted": False, "existed": True, "superseded_by": newer}
        _delete_external(ns, state=state, rep=rep, lease=lease)
        if lease:
            lease.check()  # another stage took over meanwhile: do not delete its namespace
        kube.delete("v1", "Namespace", ns_name)
        _stop_pods(kube, ns_name)
    except EnvciError as e:
        if marked:
            e.hint = f"{e.hint + '; ' if e.hint else ''}the environment is marked expired, so the janitor's next sweep (envci reap) removes it"
        raise
    finally:
        if lease:
            lease.release()
    if not wait:
        return {"name": env_name, "namespace": ns_name, "deleted": True, "existed": True}
    gone = _wait_gone(kube, ns_name, left(), rep, sleep, clock, force=force)
    if not gone and end is not None:
        reasons = stuck_reasons(kube, kube.namespace(ns_name) or ns)
        rep.warn(
            f"namespace {ns_name} is still terminating at the {deadline:.0f}s deadline; its deletion is under way and Kubernetes "
            f"finishes it{' (' + '; '.join(reasons) + ')' if reasons else ''}. If it stays, `envci teardown --env {env_name}` says why"
        )
        return {"name": env_name, "namespace": ns_name, "deleted": True, "existed": True, "gone": False}
    if not gone:
        reasons = stuck_reasons(kube, kube.namespace(ns_name) or ns)
        raise InfrastructureError(
            f"namespace {ns_name} is stuck in Terminating:\n" + "\n".join(f"  {r}" for r in reasons or ["(no reason reported)"]),
            hint="an object's finalizer is waiting for a controller that is not running; "
            "fix that controller, or rerun with --force to remove finalizers from envci-owned objects",
        )
    rep.progress(f"environment {env_name} is gone")
    return {"name": env_name, "namespace": ns_name, "deleted": True, "existed": True, "gone": True}


def _stop_pods(kube: Kube, ns_name: str) -> None:
    """Every pod starts terminating now, not when the namespace controller first gets to them: it
    looks at a deleted namespace only after a few seconds, and retries with a growing back-off while
    pods are still stopping, so pods stopped early make the namespace go seconds sooner. After the
    namespace's deletion, so that no controller can start new ones."""
    try:
        kube.delete_all("v1", "Pod", ns_name)
    except EnvciError as e:  # a role without deletecollection on pods: the namespace controller does it
        log.info("could not delete the pods of %s at once (%s); the namespace deletion removes them", ns_name, e.message)


def _newer_build(kube: Kube, ns_name: str, build: str) -> str:
    """The build that owns the namespace now, when it is newer than `build` ("" otherwise)."""
    if not build:
        return ""
    cur = kube.namespace(ns_name)
    theirs = ((cur or {}).get("metadata") or {}).get("labels", {}).get("envci.io/build", "") if cur else ""
    return theirs if theirs and is_older_build(build, theirs) else ""


def mark_expired(kube: Kube, ns: dict[str, Any], rep: Reporter, now: datetime | None = None) -> bool:
    """Set the environment's expiry to now before deleting anything: a teardown cut off half-way (a
    cancelled job's grace period ends, the runner dies) leaves an environment the janitor's next sweep
    takes, not one that waits out its TTL. False when the mark could not be written."""
    now = now or datetime.now(timezone.utc)
    try:
        kube.patch_merge("v1", "Namespace", ns["metadata"]["name"], {"metadata": {"annotations": {A + "expires-at": rfc3339(now)}}})
    except EnvciError as e:
        rep.warn(f"could not mark the environment expired ({e.message}); the janitor takes it at its TTL if teardown stops early")
        return False
    return True


def _uninstall_releases(kube: Kube, namespace: str, rep: Reporter, helm_factory: Callable[[], Helm], *, timeout: str = "2m") -> None:
    """Helm first, for the releases that own something deleting the namespace would leave (cluster-scoped
    objects, objects elsewhere, delete hooks); the namespace deletion removes the rest with their records,
    and a helm process for each would only slow every teardown down."""
    try:
        helm = helm_factory()
    except EnvciError as e:
        rep.warn(f"cannot run helm ({e.message}); deleting the namespace removes the releases' namespaced objects")
        return

    async def go() -> None:
        releases = []
        for r in await helm.releases(namespace):
            if r.get("needs_uninstall", "unknown"):
                releases.append(r)
                rep.progress(f"  uninstalling helm release {r['name']} ({r.get('needs_uninstall', 'unknown')})")
            else:
                rep.progress(f"  helm release {r['name']} goes with the namespace")
        await asyncio.gather(*(helm.uninstall(r["name"], namespace, timeout=timeout) for r in releases))

    try:
        asyncio.run(go())
    except EnvciError as e:
        rep.warn(f"{e.message}; the namespace deletion removes what is left")


def _delete_external(ns: dict[str, Any], *, state: st.EnvState | None, rep: Reporter, lease: Lease | None = None) -> None:
    items = st.external_from_namespace(ns)
    if state:
        items += [i for i in state.external if i not in items]
    for item in items:
        if lease:
            lease.check()
        rep.progress(f"  deleting {item.get('type')} {item.get('bucket') or item.get('name', '')}")
        external.delete(item)


def _wait_gone(kube: Kube, ns_name: str, timeout: float, rep: Reporter, sleep: Sleep, clock: Clock, *, force: bool) -> bool:
    end = clock() + timeout
    forced = False
    next_note = clock() + 10
    while clock() < end:
        cur = kube.namespace(ns_name)
        if cur is None:
            return True
        if force and not forced and clock() > end - timeout + 5:
            forced = True
            for obj in objects_with_finalizers(kube, ns_name):
                if (obj["metadata"].get("labels") or {}).get("envci.io/component") or _owned_by_envci(obj):
                    rep.progress(f"  --force: removing finalizers {obj['metadata']['finalizers']} from {obj['kind']}/{obj['metadata']['name']}")
                    kube.patch_merge(obj["apiVersion"], obj["kind"], obj["metadata"]["name"], {"metadata": {"finalizers": None}}, ns_name)
        if clock() > next_note:
            rep.progress(f"  still terminating: {'; '.join(stuck_reasons(kube, cur)) or 'waiting for the namespace controller'}")
            next_note = clock() + 15
        sleep(0.5)
    return False


def _owned_by_envci(obj: dict[str, Any]) -> bool:
    meta = obj["metadata"]
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    return labels.get("envci.io/managed") == "true" or HELM_RELEASE_ANNOTATION in annotations or labels.get("app.kubernetes.io/managed-by") == "Helm"
