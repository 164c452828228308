"""A namespace's objects of some kinds as watches keep them: each kind is listed once and then
changed by every event the API server sends, so a wait judges from memory, sees a change the
moment it is made, and asks the server nothing while nothing changes."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from envci.errors import EnvciError

if TYPE_CHECKING:
    from envci.kube.client import Kube, WatchEvent, WatchStream

Obj = dict[str, Any]
log = logging.getLogger("envci.kube")

WATCH_SECONDS = 50
"""How long the server keeps one watch open; the next goes on from the last version seen, unlisted.
Under the adapter's read timeout (60 s by default), so a quiet watch ends cleanly, not as a dropped one."""
PAUSE_SECONDS = 1.0
"""After a watch that ended at once (dropped, expired): the pause before the next, never a busy loop."""
POLL_SECONDS = 2.0
"""How often a kind is listed again when RBAC allows listing it but not watching it."""


def key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return str(meta.get("uid") or meta.get("name"))


def applied(objects: dict[str, Obj], event: WatchEvent) -> dict[str, Obj]:
    """Pure: `objects` (by key) after one watch event."""
    out = dict(objects)
    if event.type == "DELETED":
        out.pop(key(event.object), None)
    else:
        out[key(event.object)] = event.object
    return out


class Mirror:
    """Use as a context manager: closing it ends every watch. An error that a kind's watcher cannot
    get past (the API server gone after retries, access refused) is raised by the next `objects`."""

    def __init__(self, kube: Kube, namespace: str, kinds: Sequence[tuple[str, str]]) -> None:
        self._kube = kube
        self._namespace = namespace
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._objects: dict[str, dict[str, Obj]] = {}
        self._streams: dict[str, WatchStream] = {}
        self._error: EnvciError | None = None
        self._dirty = False
        self._stopped = False
        self._versions: dict[tuple[str, str], str | None] = {}
        for api_version, kind in kinds:  # listed here: what cannot be read fails the caller at once
            items, self._versions[(api_version, kind)] = kube.list_with_version(api_version, kind, namespace)
            self._objects[kind] = {key(o): o for o in items}
        self._watching = False

    def __enter__(self) -> Mirror:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def objects(self) -> dict[str, list[Obj]]:
        """Kind -> the objects of that kind now, as the watches have them."""
        with self._lock:
            if self._error is not None:
                raise self._error
            self._dirty = False
            return {kind: list(objs.values()) for kind, objs in self._objects.items()}

    def wait(self, seconds: float) -> bool:
        """Block until something changed since the last `objects`, or `seconds` pass; whether it did."""
        if not self._watching:
            self._start()
        with self._changed:
            if not self._dirty and self._error is None:
                self._changed.wait(max(seconds, 0.0))
            return self._dirty or self._error is not None

    def _start(self) -> None:
        # Watches open at the first wait, from the versions listed: a wait that is over at its first
        # look opens none, and nothing that changed in between is missed.
        self._watching = True
        for (api_version, kind), version in self._versions.items():
            threading.Thread(target=self._follow, args=(api_version, kind, version), name=f"watch-{kind}", daemon=True).start()

    def close(self) -> None:
        with self._lock:
            self._stopped = True
            streams = list(self._streams.values())
        for s in streams:
            s.close()

    # --- one thread per kind -----------------------------------------------------------------

    def _follow(self, api_version: str, kind: str, version: str | None) -> None:
        from envci.kube.client import WatchRefused

        try:
            while not self._stopped:
                if version is None:
                    version = self._relist(api_version, kind)
                try:
                    stream = self._kube.open_watch(api_version, kind, self._namespace, resource_version=version, seconds=WATCH_SECONDS)
                except WatchRefused:
                    log.info("cannot watch %s in %s: listing it every %.0fs instead", kind, self._namespace, POLL_SECONDS)
                    self._poll(api_version, kind)
                    return
                with self._lock:
                    if self._stopped:
                        stream.close()
                        return
                    self._streams[kind] = stream
                began = time.monotonic()
                for event in stream:
                    self._apply(api_version, kind, event)
                version = None if stream.expired else (stream.version or version)
                if time.monotonic() - began < PAUSE_SECONDS and not self._stopped:
                    time.sleep(PAUSE_SECONDS)
        except EnvciError as e:
            self._fail(e)
        except Exception as e:  # noqa: BLE001 - a watcher must never die silently: the wait would hang on it
            from envci.errors import InfrastructureError

            self._fail(InfrastructureError(f"watching {kind} in {self._namespace} failed: {type(e).__name__}: {e}"))

    def _relist(self, api_version: str, kind: str) -> str | None:
        items, version = self._kube.list_with_version(api_version, kind, self._namespace)
        with self._changed:
            self._objects[kind] = {key(o): o for o in items}
            self._dirty = True
            self._changed.notify_all()
        return version

    def _poll(self, api_version: str, kind: str) -> None:
        while not self._stopped:
            self._relist(api_version, kind)
            time.sleep(POLL_SECONDS)

    def _apply(self, api_version: str, kind: str, event: WatchEvent) -> None:
        # Judged like listed objects, which the rules tell apart by kind.
        event.object.setdefault("kind", kind)
        event.object.setdefault("apiVersion", api_version)
        with self._changed:
            if self._stopped:
                return
            self._objects[kind] = applied(self._objects[kind], event)
            self._dirty = True
            self._changed.notify_all()

    def _fail(self, error: EnvciError) -> None:
        with self._changed:
            if self._error is None and not self._stopped:
                self._error = error
            self._changed.notify_all()
