"""logs: the logs of an environment's pods, of one component or of all, as `kubectl logs -l` and
stern show them: each line prefixed with its pod and container.

Without `follow`, each container's current instance (or, with `previous`, the one before it) is
read once, pod by pod. With `follow`, the command keeps watching the namespace: new pods and
restarted containers are read from their first line as they appear (`podlogs.plan` decides what
to read), each on a thread of its own, until it is stopped or the environment goes away.

Pods belong to components the way wait-ready attributes them (envci's label, the Helm release,
or the object that made the pod), so `envci logs web` finds the pods of web's Deployment.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TextIO

from envci import podlogs
from envci import state as st
from envci.errors import ConfigError, EnvciError, InfrastructureError, NotReadyError
from envci.kube.client import Kube
from envci.manifests import OTHER
from envci.output import Reporter
from envci.redact import redact
from envci.stages.teardown import find_namespace
from envci.stages.wait_ready import attribution, list_workloads

LOOK_AGAIN_SECONDS = 5
"""While following, the longest wait between two looks at the pods when none changed: a pod watch
wakes the loop at once, and this bounds what a dropped watch can delay."""


@dataclass(frozen=True)
class Options:
    component: str | None = None
    follow: bool = False
    previous: bool = False
    tail: int | None = None
    """Lines from the end of each log; None for all."""
    since: timedelta | None = None


class Printer:
    """Prints lines on stdout, whole, from any thread; the message is redacted before it is
    rendered, so JSON escaping cannot hide a secret from the redactor."""

    def __init__(self, style: podlogs.Style, out: TextIO) -> None:
        self.style = style
        self.out = out
        self.lines = 0
        self._lock = threading.Lock()

    def __call__(self, line: podlogs.Line) -> None:
        clean = dataclasses.replace(line, message=redact(line.message))
        text = self.style.render(clean)
        with self._lock:
            print(text, file=self.out, flush=True)
            self.lines += 1


@dataclass
class _View:
    """The environment's pods as listed once, with the component of each."""

    pods: list[dict[str, Any]]
    component_of: Callable[[dict[str, Any]], str]
    known: set[str]


def _look(kube: Kube, namespace: str, releases: dict[str, str], components: Iterable[str]) -> _View:
    pods = kube.pods(namespace)
    workloads = list_workloads(kube, namespace)
    component_of = attribution(workloads + pods, releases)
    known = set(components) | {c for c in map(component_of, workloads + pods) if c != OTHER}
    return _View(pods, component_of, known)


def find_environment(kube: Kube, *, namespace: str | None, name: str) -> dict[str, Any]:
    """The environment's namespace object; NotReadyError (exit 3) when there is none."""
    ns = find_namespace(kube, namespace=namespace, name=name)
    if ns is None:
        where = f" (namespace {namespace})" if namespace else ""
        raise NotReadyError(
            f"environment {name} does not exist{where}",
            hint="`envci list` shows the environments that exist; `envci provision` creates this one",
        )
    return ns


def logs(
    kube: Kube,
    emit: Callable[[podlogs.Line], None],
    rep: Reporter,
    *,
    name: str,
    namespace: str | None = None,
    components: Iterable[str] = (),
    releases: dict[str, str] | None = None,
    opts: Options = Options(),
    stop: Callable[[], bool] = lambda: False,
) -> dict[str, Any]:
    """Print the logs; returns what was read. `components` and `releases` come from envci.yaml
    when there is one; the environment's own record adds its components either way."""
    ns_obj = find_environment(kube, namespace=namespace, name=name)
    ns = ns_obj["metadata"]["name"]
    state = st.load(kube, ns)
    release_map = {(r.release or n): n for n, r in (state.components.items() if state else [])}
    release_map.update(releases or {})
    declared = set(components) | set(state.components if state else ())
    view = _look(kube, ns, release_map, declared)
    if opts.component is not None and opts.component not in view.known:
        raise ConfigError(
            podlogs.unknown_component(opts.component, view.known), field="COMPONENT",
            hint="name one of those components, or none for every pod of the environment",
        )
    if opts.follow:
        return _follow(kube, emit, rep, ns, release_map, declared, view, opts, stop)
    return _read_once(kube, emit, rep, ns, view, opts)


def _emit_text(
    emit: Callable[[podlogs.Line], None], text: str, ns: str, component: str, inst: podlogs.Instance, after_ns: int | None = None,
    *, previous: bool | None = None,
) -> int | None:
    """Split a log read with timestamps into lines; returns the time of the last one."""
    marked = inst.previous if previous is None else previous
    last = None
    for raw in text.splitlines():
        stamp, at, message = podlogs.split_stamp(raw)
        if after_ns is not None and at is not None and at <= after_ns:
            continue
        emit(podlogs.Line(component, inst.pod, inst.container, message, stamp, marked, ns))
        last = at if at is not None else last
    return last


def _read_once(kube: Kube, emit: Callable[[podlogs.Line], None], rep: Reporter, ns: str, view: _View, opts: Options) -> dict[str, Any]:
    since = int(opts.since.total_seconds()) if opts.since else None
    chosen = podlogs.select_pods(view.pods, view.component_of, opts.component)
    if not chosen:
        rep.warn(f"no pods{' of component ' + opts.component if opts.component else ''} in namespace {ns}")
    read, failed = 0, []
    for component, pod in chosen:
        found = podlogs.instances(pod)
        for container in podlogs.container_names(pod):
            inst = podlogs.pick(found, container, previous=opts.previous)
            label = f"pod/{pod['metadata']['name']}/{container}"
            if inst is None:
                rep.progress(f"{label}: no previous instance (the container has not restarted)" if opts.previous
                             else f"{label}: nothing to read yet ({podlogs.waiting_reason(pod, container)})")
                continue
            try:
                # A waiting container's last run is served as its current log (`kubectl logs` shows it so).
                text = kube.read_log(ns, inst.pod, container, previous=opts.previous, tail_lines=opts.tail, since_seconds=since)
            except EnvciError as e:
                rep.warn(f"{label}: {e.message}")
                failed.append(label)
                continue
            if text is None:
                rep.progress(f"{label}: the {'previous' if opts.previous else 'current'} instance's log is gone"
                             + (" (the kubelet keeps one ended instance; the current one may be it: try without --previous)" if opts.previous else ""))
                continue
            _emit_text(emit, text, ns, component, inst, previous=opts.previous)
            read += 1
    if failed:
        raise InfrastructureError(f"could not read {len(failed)} log(s): {', '.join(failed[:5])}", hint="the reasons are printed above; a retry may succeed")
    return {"namespace": ns, "pods": len(chosen), "logs": read}


def _follow(
    kube: Kube,
    emit: Callable[[podlogs.Line], None],
    rep: Reporter,
    ns: str,
    releases: dict[str, str],
    declared: set[str],
    view: _View,
    opts: Options,
    stop: Callable[[], bool],
) -> dict[str, Any]:
    progress: dict[str, podlogs.Progress] = {}
    lock = threading.Lock()
    threads: list[threading.Thread] = []
    since = int(opts.since.total_seconds()) if opts.since else None
    shown = podlogs.Shown()

    def once(line: podlogs.Line) -> None:
        with lock:
            if not shown.first_time(line):
                return
        emit(line)

    def run(read: podlogs.Read, component: str, mark: podlogs.Progress) -> None:
        inst = read.instance
        try:
            if read.follow:
                stream: Iterable[str] = kube.follow_log(
                    ns, inst.pod, inst.container, previous=inst.previous, tail_lines=read.tail_lines, since_seconds=read.since_seconds
                )
            else:
                text = kube.read_log(
                    ns, inst.pod, inst.container, previous=inst.previous, tail_lines=read.tail_lines, since_seconds=read.since_seconds
                )
                stream = (text or "").splitlines()
            for raw in stream:
                last = _emit_text(once, raw, ns, component, inst, read.after_ns)
                if last is not None:
                    with lock:
                        mark.last_ns = max(last, mark.last_ns or last)
        except EnvciError as e:
            rep.warn(f"pod/{inst.pod}/{inst.container}: {e.message}")
        finally:
            with lock:
                mark.reading = False
                # A read of an instance that had ended got all of it; a followed one may have been
                # cut off, so the next look decides (podlogs.plan).
                mark.done = not read.follow

    first = True
    waiting_said = False
    while not stop():
        chosen = podlogs.select_pods(view.pods, view.component_of, opts.component)
        component_of_pod = {p["metadata"]["name"]: c for c, p in chosen}
        found = [i for _, p in chosen for i in podlogs.instances(p)]
        with lock:
            reads = podlogs.plan(found, progress, first=first, now_ns=time.time_ns(), tail_lines=opts.tail, since_seconds=since)
            for r in reads:
                mark = progress.setdefault(r.instance.id, podlogs.Progress())
                if r.skip:
                    mark.done = True
                    continue
                mark.reading = True
                t = threading.Thread(target=run, args=(r, component_of_pod[r.instance.pod], mark), daemon=True,
                                     name=f"envci-logs-{r.instance.pod}-{r.instance.container}")
                threads.append(t)
                t.start()
        if not chosen and not waiting_said:
            rep.progress(f"no pods{' of component ' + opts.component if opts.component else ''} in {ns} yet; waiting for them")
            waiting_said = True
        first = False
        threads = [t for t in threads if t.is_alive()]
        kube.wait_for_pod_change(ns, LOOK_AGAIN_SECONDS)
        if stop():
            break
        ns_obj = kube.namespace(ns)
        if ns_obj is None or (ns_obj.get("metadata") or {}).get("deletionTimestamp"):
            rep.progress(f"namespace {ns} is {'gone' if ns_obj is None else 'being deleted'}; stopping")
            break
        view = _look(kube, ns, releases, declared)
    for t in threads:
        t.join(timeout=2)
    return {"namespace": ns, "instances": len(progress)}
