"""Keep a local copy of one kind of object: list, then watch, and start over when the watch breaks.

The node agent decides from whole snapshots (all pods, all policies), so what it needs from the API
server is a current copy, not a stream of events. A `Mirror` lists the objects, watches from the
list's resourceVersion, applies each event to its copy and calls back; when the server says the
resourceVersion is too old (410 Gone, after compaction or a long disconnection) it lists again at
once; on any other failure (API server restarting, connection refused) it waits, longer each time
(`BACKOFF`), and lists again. Objects stay plain dicts in API JSON shape, as the pure cores expect.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

Obj = dict[str, Any]
ListFn = Callable[..., Any]
"""A kubernetes client `list_*` method (e.g. `CoreV1Api.list_pod_for_all_namespaces`)."""

BACKOFF: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
"""Seconds to wait before listing again after the n-th failure in a row; the last repeats. Short
first steps because the usual cause is the API server restarting with the cluster."""

WATCH_SECONDS = 240
"""Ask the server to end each watch after this long, so a half-open connection cannot hang forever."""

READ_TIMEOUT = WATCH_SECONDS + 30
"""Socket read timeout for a watch: bookmarks and events arrive well within it on a live connection."""

log = logging.getLogger(__name__)


class Gone(Exception):
    """The watch's resourceVersion is no longer available: list again."""


def object_key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name')}"


def apply_event(objects: dict[str, Obj], event: Mapping[str, Any]) -> str | None:
    """Apply one watch event to a copy; returns the new resourceVersion (None for no change to it).

    Raises Gone for the 410 ERROR event and RuntimeError for any other ERROR event.
    """
    kind, obj = event.get("type"), event.get("object") or {}
    if kind == "ERROR":
        code = obj.get("code")
        if code == 410:
            raise Gone(str(obj.get("message") or "resourceVersion too old"))
        raise RuntimeError(f"watch error {code}: {str(obj.get('message') or '')[:200]}")
    if kind in ("ADDED", "MODIFIED"):
        objects[object_key(obj)] = obj
    elif kind == "DELETED":
        objects.pop(object_key(obj), None)
    return (obj.get("metadata") or {}).get("resourceVersion")


def _lines(resp: Any) -> Iterator[str]:
    buf = b""
    for chunk in resp.stream(amt=65536, decode_content=True):
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip():
                yield line.decode()
    if buf.strip():
        yield buf.decode()


class Mirror:
    """A thread-safe copy of every object one `list_*` call returns, kept current by a watch."""

    def __init__(self, kind: str, list_fn: ListFn, on_change: Callable[[], None], stop: threading.Event,
                 *, sleep: Callable[[float], bool] | None = None) -> None:
        self.kind = kind
        self._list_fn = list_fn
        self._on_change = on_change
        self._stop = stop
        self._sleep = sleep or stop.wait
        self._lock = threading.Lock()
        self._objects: dict[str, Obj] = {}
        self.synced = False
        """True once the first list has arrived: deciding before it would act on a partial picture."""

    def snapshot(self) -> list[Obj]:
        with self._lock:
            return list(self._objects.values())

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name=f"watch-{self.kind}", daemon=True)
        thread.start()
        return thread

    def run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                version = self._list()
                failures = 0
                while not self._stop.is_set():
                    version = self._watch(version)
            except Gone as e:
                log.info("%s: watch expired (%s); listing again", self.kind, e)
            except Exception as e:  # noqa: BLE001 - any failure: wait, then list again
                delay = BACKOFF[min(failures, len(BACKOFF) - 1)]
                failures += 1
                log.warning("%s: %s: %s; listing again in %.1fs (failure %d in a row)",
                            self.kind, type(e).__name__, str(e)[:200], delay, failures)
                self._sleep(delay)

    def _list(self) -> str:
        resp = self._list_fn(_preload_content=False, _request_timeout=30)
        body = json.loads(resp.data)
        with self._lock:
            self._objects = {object_key(o): o for o in body.get("items") or []}
            self.synced = True
        self._on_change()
        return str((body.get("metadata") or {}).get("resourceVersion") or "")

    def _watch(self, version: str) -> str:
        resp = self._list_fn(watch=True, resource_version=version, allow_watch_bookmarks=True, timeout_seconds=WATCH_SECONDS,
                             _preload_content=False, _request_timeout=(10, READ_TIMEOUT))
        try:
            for line in _lines(resp):
                if self._stop.is_set():
                    break
                event = json.loads(line)
                with self._lock:
                    new_version = apply_event(self._objects, event)
                if new_version:
                    version = new_version
                if event.get("type") != "BOOKMARK":
                    self._on_change()
        finally:
            resp.release_conn()
        return version
