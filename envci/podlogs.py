"""Pure rules of `envci logs`: which pods a component has, which container instances to read, and
how a line is printed.

A container *instance* is one run of a container: a restart makes a new one with a new container
ID, and the kubelet keeps the one before it as the "previous" instance. Following a component
(`-f`) means reading every instance as it appears, new pods and restarts alike, each from its
first line, and none twice. `plan` decides that from the pods as they are listed and what has been
read so far; the stage only carries the plan out.

Nothing here does I/O or reads the clock.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

Obj = dict[str, Any]


# --- which pods and containers ------------------------------------------------------------------


def select_pods(pods: list[Obj], component_of: Callable[[Obj], str], component: str | None) -> list[tuple[str, Obj]]:
    """(component, pod) for the pods of one component (all when None), by component, then pod name."""
    chosen = [(component_of(p), p) for p in pods]
    if component is not None:
        chosen = [(c, p) for c, p in chosen if c == component]
    return sorted(chosen, key=lambda cp: (cp[0], cp[1]["metadata"]["name"]))


def unknown_component(component: str, known: Iterable[str]) -> str:
    """The message for a component the environment does not have, naming those it has."""
    names = sorted(set(known))
    return f"no component named {component!r}; the environment has: {', '.join(names) if names else 'no components'}"


@dataclass(frozen=True)
class Instance:
    """One run of one container of a pod."""

    pod: str
    container: str
    id: str
    """The container ID the kubelet reports (`containerd://...`): a restart changes it."""
    running: bool = False
    """Still running: its log may grow, so it is followed."""
    previous: bool = False
    """The instance before the current one, read with `previous=true` (`kubectl logs --previous`)."""
    init: bool = False


def _statuses(pod: Obj) -> list[tuple[bool, Obj]]:
    status = pod.get("status") or {}
    return [(True, cs) for cs in status.get("initContainerStatuses") or []] + [
        (False, cs) for cs in status.get("containerStatuses") or []
    ]


def instances(pod: Obj) -> list[Instance]:
    """The instances of a pod's containers whose logs can be read, init containers first.

    The current instance has an ID once it has started (running, or terminated: a recent kubelet
    shows a crashed container as terminated until it restarts it). A container waiting to start
    again (CrashLoopBackOff on older kubelets) has no current instance: its last run is the
    previous one."""
    name = str((pod.get("metadata") or {}).get("name") or "")
    out: list[Instance] = []
    for init, cs in _statuses(pod):
        container = str(cs.get("name") or "")
        state = cs.get("state") or {}
        last = (cs.get("lastState") or {}).get("terminated") or {}
        current_id = ""
        running = "running" in state
        if running:
            current_id = str(cs.get("containerID") or "")
        elif "terminated" in state:
            current_id = str((state.get("terminated") or {}).get("containerID") or cs.get("containerID") or "")
        last_id = str(last.get("containerID") or "")
        if last_id and last_id != current_id:
            out.append(Instance(name, container, last_id, previous=True, init=init))
        if current_id:
            out.append(Instance(name, container, current_id, running=running, init=init))
    return out


def pick(found: Iterable[Instance], container: str, *, previous: bool) -> Instance | None:
    """The instance one read of a container shows, as `kubectl logs [--previous]` does.

    Without `previous`, the current instance; a container waiting to start again has none, and
    then its last run is what there is to read (the API serves it as the current log)."""
    mine = [i for i in found if i.container == container]
    if previous:
        return next((i for i in mine if i.previous), None)
    return next((i for i in mine if not i.previous), None) or next((i for i in mine if i.previous), None)


def container_names(pod: Obj) -> list[str]:
    """Every container of the pod's spec, init containers first (those that never started too)."""
    spec = pod.get("spec") or {}
    return [str(c.get("name")) for key in ("initContainers", "containers") for c in spec.get(key) or []]


def waiting_reason(pod: Obj, container: str) -> str:
    """Why a container has nothing to read yet, in the kubelet's word (ContainerCreating, ...)."""
    for _, cs in _statuses(pod):
        if cs.get("name") == container:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            return str(waiting.get("reason") or "waiting to start")
    return str((pod.get("status") or {}).get("phase") or "Pending")


# --- what to read next --------------------------------------------------------------------------


@dataclass
class Progress:
    """What has been read of one instance."""

    last_ns: int | None = None
    """Timestamp (nanoseconds since the epoch) of the last line shown; a resumed read skips up to it."""
    reading: bool = False
    done: bool = False


@dataclass(frozen=True)
class Read:
    """One request for an instance's log."""

    instance: Instance
    follow: bool
    tail_lines: int | None = None
    since_seconds: int | None = None
    after_ns: int | None = None
    """Skip lines at or before this time: they were shown by an earlier read of the same instance."""
    skip: bool = False
    """Not to be read at all (an instance that ended before `logs -f` started): only remembered."""


def plan(
    found: Iterable[Instance],
    progress: dict[str, Progress],
    *,
    first: bool,
    now_ns: int,
    tail_lines: int | None = None,
    since_seconds: int | None = None,
) -> list[Read]:
    """The reads that keep a follower complete, given the instances listed now.

    - On the first look, the current instances are read with the user's --tail/--since and
      followed; previous instances are history from before the command started, so skipped,
      unless a container has no current one (waiting to restart): then its last run is read.
    - Later, an instance not seen before (a new pod, a restart) is read from its first line; one
      that came and went between two looks is read as the previous instance.
    - An instance whose read ended while it was still running (a dropped connection) is read again
      from just before its last line, and lines already shown are skipped.
    """
    found = list(found)
    has_current = {(i.pod, i.container) for i in found if not i.previous}
    reads: list[Read] = []
    for inst in found:
        seen = progress.get(inst.id)
        if seen is None:
            if first and inst.previous and (inst.pod, inst.container) in has_current:
                reads.append(Read(inst, follow=False, skip=True))
            elif inst.previous and not first:
                reads.append(Read(inst, follow=False))
            elif first:
                reads.append(Read(inst, follow=inst.running, tail_lines=tail_lines, since_seconds=since_seconds))
            else:
                reads.append(Read(inst, follow=inst.running))
            continue
        if seen.reading or seen.done:
            continue
        since = None
        if seen.last_ns is not None:
            # Whole seconds, and one more: the lines at the edge are dropped by `after_ns`.
            since = max(1, (now_ns - seen.last_ns) // 1_000_000_000 + 2)
        reads.append(Read(inst, follow=inst.running, since_seconds=since, after_ns=seen.last_ns))
    return reads


# --- lines --------------------------------------------------------------------------------------


_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")


def stamp_ns(text: str) -> int | None:
    """An RFC 3339 time with up to nine fraction digits (as the kubelet writes them) in nanoseconds."""
    m = _STAMP.match(text)
    if not m:
        return None
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    try:
        whole = datetime.fromisoformat(m.group(1) + zone)
    except ValueError:
        return None
    fraction = int((m.group(2) or "").ljust(9, "0"))
    return int(whole.astimezone(timezone.utc).timestamp()) * 1_000_000_000 + fraction


def split_stamp(line: str) -> tuple[str, int | None, str]:
    """`2026-01-01T10:00:00.123456789Z message` -> (time text, nanoseconds, message).

    Logs are always read with timestamps (they make resuming exact); a line without one (an
    error text the kubelet sent instead of a log) is all message."""
    head, sep, rest = line.partition(" ")
    ns = stamp_ns(head) if sep else None
    if ns is None:
        return "", None, line
    return head, ns, rest


@dataclass(frozen=True)
class Line:
    component: str
    pod: str
    container: str
    message: str
    time: str = ""
    """RFC 3339 with nanoseconds, as the kubelet stamped the line."""
    previous: bool = False
    namespace: str = ""


class Shown:
    """The lines a follower has shown, so a line read twice is shown once.

    A log is requested by pod and container name, not by instance: a read meant for an instance that
    has just ended is served the next instance's log when the kubelet has already restarted it, and
    that instance is read again once it is seen. The kubelet stamps each line with nanoseconds, so a
    line with the same stamp and text in the same container is the same line. Only the newest
    `keep` stamps of each container are remembered."""

    def __init__(self, keep: int = 10_000) -> None:
        self.keep = keep
        self._seen: dict[tuple[str, str], dict[tuple[str, str], None]] = {}

    def first_time(self, line: Line) -> bool:
        if not line.time:
            return True  # nothing to tell two reads of it apart by
        seen = self._seen.setdefault((line.pod, line.container), {})
        key = (line.time, line.message)
        if key in seen:
            return False
        seen[key] = None
        if len(seen) > self.keep:
            del seen[next(iter(seen))]  # dicts keep insertion order: the oldest goes
        return True


# Foreground colours that read on dark and light terminals alike (no black, white or blue).
PALETTE = (31, 32, 33, 35, 36, 91, 92, 93, 95, 96)


def colour_of(name: str) -> int:
    """A stable colour for a name: the same pod has the same colour in every run (crc32, not hash())."""
    return PALETTE[zlib.crc32(name.encode("utf-8")) % len(PALETTE)]


def _paint(text: str, colour: int) -> str:
    return f"\x1b[{colour}m{text}\x1b[0m"


def prefix(line: Line, *, colour: bool) -> str:
    """`[pod/NAME/CONTAINER]`, as `kubectl logs --prefix` writes it; `previous` marks an earlier instance."""
    pod, container = line.pod, line.container
    if colour:
        pod, container = _paint(pod, colour_of(line.pod)), _paint(container, colour_of(f"{line.pod}/{line.container}"))
    return f"[pod/{pod}/{container}{' previous' if line.previous else ''}]"


def format_text(line: Line, *, colour: bool) -> str:
    return f"{prefix(line, colour=colour)} {line.message}"


def json_record(line: Line) -> Obj:
    """The `--output json` object of one line (one object per output line)."""
    return {
        "namespace": line.namespace,
        "component": line.component,
        "pod": line.pod,
        "container": line.container,
        "previous": line.previous,
        "time": line.time,
        "message": line.message,
    }


def format_json(line: Line) -> str:
    return json.dumps(json_record(line), sort_keys=True, ensure_ascii=False)


Mode = Literal["text", "json"]


@dataclass
class Style:
    """How lines are printed: text (coloured on a terminal only) or JSON."""

    mode: Mode = "text"
    colour: bool = False

    def render(self, line: Line) -> str:
        return format_json(line) if self.mode == "json" else format_text(line, colour=self.colour)


def use_colour(*, is_tty: bool, env: dict[str, str] | Any, mode: str) -> bool:
    """Colours only for people: text on a terminal, and not when NO_COLOR is set (no-color.org)."""
    return mode == "text" and is_tty and not env.get("NO_COLOR") and env.get("TERM") != "dumb"
