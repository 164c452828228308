"""The environment's lease: released whatever fails, and a holder that lost it can tell."""

from __future__ import annotations

import copy
import io
import json
import logging
import threading
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from envci.errors import EnvciError, InfrastructureError, LeaseLostError
from envci.kube.lease import Lease, LeaseSettings, unrenewed_too_long
from envci.output import Reporter
from envci.stages.teardown import teardown

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
SETTINGS = LeaseSettings(duration=timedelta(seconds=30), renew_every=timedelta(seconds=10), wait=timedelta(seconds=1))


class Coordination:
    """The four Lease calls, with resourceVersion conflicts, and a failure to inject."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.fail: Exception | None = None

    def _check(self) -> None:
        if self.fail is not None:
            raise self.fail

    def create_namespaced_lease(self, ns: str, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
        self._check()
        if self.lease is not None:
            raise ApiException(status=409)
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = "1"
        return self.lease

    def read_namespaced_lease(self, name: str, ns: str, **kw: Any) -> dict[str, Any]:
        self._check()
        if self.lease is None:
            raise ApiException(status=404)
        return copy.deepcopy(self.lease)

    def replace_namespaced_lease(self, name: str, ns: str, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
        self._check()
        if self.lease is None or body["metadata"]["resourceVersion"] != self.lease["metadata"]["resourceVersion"]:
            raise ApiException(status=409)
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = str(int(body["metadata"]["resourceVersion"]) + 1)
        return self.lease

    def delete_namespaced_lease(self, name: str, ns: str, **kw: Any) -> None:
        self._check()
        self.lease = None


class Cluster:
    """Just enough of Kube for the lease and teardown: one managed namespace, nothing else."""

    def __init__(self, external: list[dict[str, str]] | None = None) -> None:
        self.coordination = Coordination()
        self.api = SimpleNamespace(sanitize_for_serialization=copy.deepcopy)
        self.ns = {"metadata": {"name": "envci-shop-pr-1", "labels": {"envci.io/managed": "true", "envci.io/env": "shop-pr-1"},
                                "annotations": {"envci.io/external": json.dumps(external or [])}}}
        self.deleted: list[str] = []

    def call(self, fn: Any, doing: str) -> Any:
        return fn()

    def namespace(self, name: str) -> dict[str, Any] | None:
        return self.ns

    def get(self, *args: Any, **kwargs: Any) -> None:
        return None

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        self.deleted.append(f"{kind}/{name}")
        return True


def no_helm() -> Any:
    raise EnvciError("helm is not installed")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def held(kube: Cluster, clock: Clock | None = None) -> Lease:
    lease = Lease(kube, "envci-shop-pr-1", "seed", settings=SETTINGS, clock=clock or Clock())  # type: ignore[arg-type]
    assert lease._try_acquire() is None
    return lease


def test_a_renewal_moves_renew_time_and_keeps_the_lease() -> None:
    kube, clock = Cluster(), Clock()
    lease = held(kube, clock)
    clock.now = T0 + timedelta(seconds=10)
    lease.renew_once()
    assert kube.coordination.lease and kube.coordination.lease["spec"]["renewTime"].startswith("2026-01-01T12:00:10")
    assert not lease.lost.is_set()
    lease.check()


def test_failed_renewals_are_logged_and_the_lease_counts_as_lost_once_it_could_have_expired(caplog: pytest.LogCaptureFixture) -> None:
    kube, clock = Cluster(), Clock()
    lease = held(kube, clock)
    kube.coordination.fail = ConnectionRefusedError()
    with caplog.at_level(logging.WARNING, logger="envci.lease"):
        for seconds in (10, 20):
            clock.now = T0 + timedelta(seconds=seconds)
            lease.renew_once()
        assert "could not renew the lock of envci-shop-pr-1 (ConnectionRefusedError)" in caplog.text
        assert not lease.lost.is_set()  # two missed renewals: still within the lease's 30 s
        clock.now = T0 + timedelta(seconds=30)
        lease.renew_once()
    assert lease.lost.is_set() and "lost the lock of envci-shop-pr-1: not renewed for 30s" in caplog.text
    with pytest.raises(LeaseLostError) as ei:
        lease.check()
    assert ei.value.exit_code == 4 and "not renewed for 30s" in ei.value.message and ei.value.hint


def test_a_lease_another_process_took_over_is_lost_and_not_renewed_for_it() -> None:
    kube = Cluster()
    lease = held(kube)
    assert kube.coordination.lease is not None
    kube.coordination.lease["spec"]["holderIdentity"] = "other-runner/42/provision"
    lease.renew_once()
    assert lease.lost.is_set() and "other-runner/42/provision holds it now" in lease.lost_reason
    assert kube.coordination.lease["spec"]["holderIdentity"] == "other-runner/42/provision"


def test_a_deleted_lease_is_lost() -> None:
    kube = Cluster()
    lease = held(kube)
    kube.coordination.lease = None
    lease.renew_once()
    assert lease.lost.is_set()


def test_unrenewed_too_long_is_the_lease_duration() -> None:
    assert not unrenewed_too_long(T0, T0 + timedelta(seconds=29), timedelta(seconds=30))
    assert unrenewed_too_long(T0, T0 + timedelta(seconds=30), timedelta(seconds=30))


def test_release_never_raises_over_the_stages_own_outcome() -> None:
    kube = Cluster()
    lease = held(kube)
    kube.coordination.fail = ConnectionResetError()
    lease.release()


def test_teardown_releases_the_lease_and_stops_renewing_when_an_external_delete_fails() -> None:
    kube = Cluster(external=[{"type": "no-such-kind", "name": "x"}])  # external.delete raises for it
    with pytest.raises(InfrastructureError, match="do not know how to delete external resource"):
        teardown(kube, Reporter(err=io.StringIO()), namespace="envci-shop-pr-1", helm_factory=no_helm)  # type: ignore[arg-type]
    assert kube.coordination.lease is None  # released
    renewers = [t for t in threading.enumerate() if t.name == "envci-lease"]
    assert not any(t.is_alive() for t in renewers)
    assert kube.deleted == []  # the namespace stays for a retry: its record still names the resource


def test_teardown_does_not_delete_a_namespace_another_stage_took_over(monkeypatch: pytest.MonkeyPatch) -> None:
    kube = Cluster()

    def acquire_then_lose(self: Lease, sleep: Any = None) -> None:
        assert self._try_acquire() is None
        self._lose("other-runner/7/provision holds it now")  # as the renewal thread would find

    monkeypatch.setattr(Lease, "acquire", acquire_then_lose)
    with pytest.raises(LeaseLostError):
        teardown(kube, Reporter(err=io.StringIO()), namespace="envci-shop-pr-1", helm_factory=no_helm)  # type: ignore[arg-type]
    assert kube.deleted == []


def test_seed_stops_before_the_next_step_once_the_lease_is_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    from envci.stages import seed as seed_stage

    ran: list[int] = []
    lost = {"now": False}

    def still_held() -> None:
        if lost["now"]:
            raise LeaseLostError("lost")

    def fake_seeder(kind: str) -> Any:
        def run(step: Any, ctx: Any) -> Any:
            ran.append(ctx.index)
            lost["now"] = True  # the renewal thread gives up while this step runs
            return SimpleNamespace(summary="ok", as_dict=lambda: {})

        return run

    monkeypatch.setattr(seed_stage, "seeder", fake_seeder)
    monkeypatch.setattr(seed_stage, "_record", lambda *a: None)
    monkeypatch.setattr(seed_stage.st, "load", lambda kube, ns: None)
    cfg = SimpleNamespace(identity=SimpleNamespace(name="shop-pr-1", namespace="envci-shop-pr-1", app="shop"))
    steps = [(0, SimpleNamespace(job="a")), (1, SimpleNamespace(job="b"))]
    with pytest.raises(LeaseLostError):
        seed_stage._seed_locked(cfg, Cluster(), Reporter(err=io.StringIO()), steps, still_held=still_held)  # type: ignore[arg-type]
    assert ran == [0]
