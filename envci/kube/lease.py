"""One stage at a time per environment: a coordination.k8s.io Lease held for the stage's duration.

The holder renews it from a background thread; a holder that died (SIGKILL, lost runner) stops
renewing, and the lease can be taken over once `duration` has passed without renewal.

A holder can lose its lease while alive: the API server is unreachable for longer than `duration`,
or another process took the lease over. The renewal thread logs every failed renewal and sets
`Lease.lost`; the stage calls `Lease.check()` between steps and stops with LeaseLostError rather
than change an environment another stage now works on.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from envci.errors import InfrastructureError, LeaseLostError, LockedError
from envci.kube.client import NO_RETRIES, Kube
from envci.redact import redact
from envci.timestamps import parse_time

LEASE_NAME = "envci-lock"
log = logging.getLogger("envci.lease")


@dataclass(frozen=True)
class LeaseSettings:
    duration: timedelta = timedelta(seconds=30)
    """How long a lease stays valid without renewal: long enough to ride out a slow API call,
    short enough that a crashed holder blocks the next stage for at most this long."""
    renew_every: timedelta = timedelta(seconds=10)
    """Renewal period; a third of `duration` tolerates two missed renewals."""
    wait: timedelta = timedelta(minutes=10)
    """How long to wait for another holder before giving up."""


def settings_from_env(env: dict[str, str] | None = None) -> LeaseSettings:
    """`ENVCI_LOCK_SECONDS` shortens or lengthens the lease (tests, very slow API servers)."""
    env = dict(os.environ) if env is None else env
    raw = env.get("ENVCI_LOCK_SECONDS")
    if not raw:
        return LeaseSettings()
    secs = max(3, int(raw))
    return LeaseSettings(duration=timedelta(seconds=secs), renew_every=timedelta(seconds=secs / 3))


def holder_identity(stage: str) -> str:
    return f"{socket.gethostname()}/{os.getpid()}/{stage}"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _fmt(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def holder_of(lease: dict[str, Any]) -> str:
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def unrenewed_too_long(last_renewed: datetime, now: datetime, duration: timedelta) -> bool:
    """Pure: has our last successful renewal aged past the lease's duration? From then on
    another stage may take the lease over, so the holder must assume it is lost."""
    return last_renewed + duration <= now


def expired(lease: dict[str, Any], now: datetime) -> bool:
    """Pure: has the holder stopped renewing for longer than the lease's duration?"""
    spec = lease.get("spec") or {}
    if not spec.get("holderIdentity"):
        return True
    renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
    duration = timedelta(seconds=int(spec.get("leaseDurationSeconds") or 0))
    return renewed is None or renewed + duration <= now


class Lease:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        stage: str,
        *,
        settings: LeaseSettings | None = None,
        progress: Callable[[str], None] = lambda m: None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.kube = kube
        self._once = kube.with_retry(NO_RETRIES)
        """For renewal and release, which have a clock of their own: a retry would outlast it."""
        self.ns = namespace
        self.identity = holder_identity(stage)
        self.settings = settings or settings_from_env()
        self.progress = progress
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = threading.Event()
        """Set by the renewal thread once the lease can no longer be counted on."""
        self.lost_reason = ""
        self._renewed = clock()

    def _body(self, now: datetime, transitions: int = 0) -> dict[str, Any]:
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": LEASE_NAME, "namespace": self.ns, "labels": {"envci.io/managed": "true"}},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": int(self.settings.duration.total_seconds()),
                "acquireTime": _fmt(now),
                "renewTime": _fmt(now),
                "leaseTransitions": transitions,
            },
        }

    def _try_acquire(self) -> str | None:
        """Take the lease if free; return the current holder if not."""
        now = self.clock()
        if self.kube.create_lease(self.ns, self._body(now)):
            return None
        cur = self.kube.get_lease(self.ns, LEASE_NAME)
        if cur is None:
            return "(released just now)"
        holder = (cur.get("spec") or {}).get("holderIdentity")
        if holder != self.identity and not expired(cur, now):
            return holder
        body = self._body(now, int((cur.get("spec") or {}).get("leaseTransitions") or 0) + 1)
        body["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
        if not self.kube.replace_lease(self.ns, body):
            return holder or "(another process)"  # someone else won the race; re-read next round
        if holder and holder != self.identity:
            self.progress(f"took over the lock from {holder}, which stopped renewing it")
        return None

    def acquire(self, sleep: Callable[[float], None] = time.sleep) -> None:
        end = time.monotonic() + self.settings.wait.total_seconds()
        announced = None
        while True:
            holder = self._try_acquire()
            if holder is None:
                break
            if time.monotonic() >= end:
                raise LockedError(
                    f"environment in {self.ns} is locked by {holder}",
                    hint="another stage of this environment is running; wait for it, or for its lock to expire "
                    f"({int(self.settings.duration.total_seconds())}s after its holder died)",
                )
            if holder != announced:
                self.progress(f"waiting for {holder} to finish with this environment")
                announced = holder
            sleep(1.0)
        self._renewed = self.clock()
        self._thread = threading.Thread(target=self._renew_loop, name="envci-lease", daemon=True)
        self._thread.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.settings.renew_every.total_seconds()):
            self.renew_once()
            if self.lost.is_set():
                return  # renewing a lease someone else may hold would only fight over it

    def renew_once(self) -> None:
        """One renewal: ours only while we still hold it (optimistic, by resourceVersion)."""
        timeout = max(1.0, self.settings.renew_every.total_seconds())  # never block past the next round
        try:
            cur = self._once.get_lease(self.ns, LEASE_NAME, timeout=timeout)
            if cur is None:
                self._lose("it was deleted")
                return
            holder = holder_of(cur)
            if holder != self.identity:
                self._lose(f"{holder or 'nobody'} holds it now")
                return
            now = self.clock()
            cur["spec"]["renewTime"] = _fmt(now)
            if not self._once.replace_lease(self.ns, cur, timeout=timeout):
                self._failed("it changed since it was read")  # the next round reads who holds it
                return
            self._renewed = now
        except InfrastructureError as e:
            self._failed(e.message)

    def _failed(self, why: str) -> None:
        # The lease tolerates a missed renewal or two; say so each time, and give it up once it has
        # gone unrenewed for as long as it lasts, since another stage may then take it.
        log.warning("could not renew the lock of %s (%s); renewed last at %s", self.ns, redact(why), _fmt(self._renewed))
        if unrenewed_too_long(self._renewed, self.clock(), self.settings.duration):
            self._lose(f"not renewed for {int(self.settings.duration.total_seconds())}s")

    def _lose(self, why: str) -> None:
        self.lost_reason = why
        self.lost.set()
        log.warning("lost the lock of %s: %s", self.ns, why)

    def check(self) -> None:
        """Raise LeaseLostError if the lease was lost: call it between steps that change things."""
        if self.lost.is_set():
            raise LeaseLostError(
                f"this stage lost the lock of {self.ns} ({self.lost_reason}); it stopped before its next step",
                hint="another stage may be working on the environment; run this stage again once it is done",
            )

    def release(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        try:
            cur = self._once.get_lease(self.ns, LEASE_NAME)  # None: the namespace is gone (teardown)
            if cur is not None and holder_of(cur) == self.identity:  # else taken over: not ours to delete
                self._once.delete_lease(self.ns, LEASE_NAME)
        except InfrastructureError as e:
            # Never hide the stage's own outcome; the lease expires by itself after `duration`.
            log.warning("could not release the lock of %s (%s); it expires by itself", self.ns, redact(e.message))

    def __enter__(self) -> "Lease":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
