"""The environment's lease, on the fake adapter: taken, renewed, fought over, lost, and released
whatever fails."""

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
from fakekube import FakeKube  # tests/ is on sys.path

from envci.errors import EnvciError, InfrastructureError, LeaseLostError, LockedError
from envci.kube.lease import LEASE_NAME, Lease, LeaseSettings, unrenewed_too_long
from envci.output import Reporter
from envci.stages.teardown import teardown

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
NS = "envci-shop-pr-1"
SETTINGS = LeaseSettings(duration=timedelta(seconds=30), renew_every=timedelta(seconds=10), wait=timedelta(seconds=0))
UNREACHABLE = InfrastructureError("cannot reach the Kubernetes API to read lease in envci-shop-pr-1 after 1 attempts: ConnectionRefusedError")


def cluster(external: list[dict[str, str]] | None = None) -> FakeKube:
    """One managed namespace, as provision leaves it, with its external resources on record."""
    kube = FakeKube()
    kube.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": NS, "labels": {"envci.io/managed": "true", "envci.io/env": "shop-pr-1"},
        "annotations": {"envci.io/external": json.dumps(external or [])}}})
    return kube


def no_helm() -> Any:
    raise EnvciError("helm is not installed")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def lease_of(kube: FakeKube) -> dict[str, Any]:
    lease = kube.get_lease(NS, LEASE_NAME)
    assert lease is not None
    return lease


def held(kube: FakeKube, clock: Clock | None = None, stage: str = "seed") -> Lease:
    lease = Lease(kube, NS, stage, settings=SETTINGS, clock=clock or Clock())  # type: ignore[arg-type]
    assert lease._try_acquire() is None
    return lease


def test_a_lease_held_by_a_live_stage_is_not_taken() -> None:
    kube = cluster()
    first = held(kube, stage="provision")
    second = Lease(kube, NS, "teardown", settings=SETTINGS, clock=Clock())  # type: ignore[arg-type]
    assert second._try_acquire() == first.identity
    with pytest.raises(LockedError) as ei:
        second.acquire(sleep=lambda s: None)
    assert first.identity in ei.value.message and ei.value.exit_code == 4
    assert lease_of(kube)["spec"]["holderIdentity"] == first.identity


def test_a_lease_its_holder_stopped_renewing_is_taken_over_and_counted() -> None:
    kube, clock = cluster(), Clock()
    dead = held(kube, clock, stage="provision")
    clock.now = T0 + timedelta(seconds=31)
    said: list[str] = []
    taker = Lease(kube, NS, "teardown", settings=SETTINGS, clock=clock, progress=said.append)  # type: ignore[arg-type]
    assert taker._try_acquire() is None
    spec = lease_of(kube)["spec"]
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == (taker.identity, 1)
    assert said == [f"took over the lock from {dead.identity}, which stopped renewing it"]


def test_of_two_takers_of_an_expired_lease_only_one_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    kube, clock = cluster(), Clock()
    held(kube, clock, stage="provision")
    clock.now = T0 + timedelta(seconds=31)
    read = kube.get_lease

    def and_another_takes_it(namespace: str, name: str, **kw: Any) -> dict[str, Any] | None:
        cur = read(namespace, name, **kw)
        other = copy.deepcopy(cur)
        assert other is not None
        other["spec"]["holderIdentity"] = "other-runner/9/seed"
        assert kube.replace_lease(namespace, other)  # between our read and our replace
        return cur

    monkeypatch.setattr(kube, "get_lease", and_another_takes_it)
    loser = Lease(kube, NS, "teardown", settings=SETTINGS, clock=clock)  # type: ignore[arg-type]
    assert loser._try_acquire() is not None  # the conflict: it waits for the next round
    assert lease_of(kube)["spec"]["holderIdentity"] == "other-runner/9/seed"


def test_a_renewal_moves_renew_time_and_keeps_the_lease() -> None:
    kube, clock = cluster(), Clock()
    lease = held(kube, clock)
    clock.now = T0 + timedelta(seconds=10)
    lease.renew_once()
    assert lease_of(kube)["spec"]["renewTime"].startswith("2026-01-01T12:00:10")
    assert not lease.lost.is_set()
    lease.check()


def test_a_renewal_that_conflicts_keeps_trying_and_then_sees_the_new_holder(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    kube, clock = cluster(), Clock()
    lease = held(kube, clock)
    read = kube.get_lease

    def and_another_takes_it(namespace: str, name: str, **kw: Any) -> dict[str, Any] | None:
        cur = read(namespace, name, **kw)
        other = copy.deepcopy(cur)
        assert other is not None
        other["spec"]["holderIdentity"] = "other-runner/42/provision"
        kube.replace_lease(namespace, other)
        return cur

    monkeypatch.setattr(kube, "get_lease", and_another_takes_it)
    clock.now = T0 + timedelta(seconds=10)
    with caplog.at_level(logging.WARNING, logger="envci.lease"):
        lease.renew_once()
    assert "could not renew the lock of envci-shop-pr-1 (it changed since it was read)" in caplog.text
    assert not lease.lost.is_set()
    monkeypatch.setattr(kube, "get_lease", read)
    lease.renew_once()
    assert lease.lost.is_set() and "other-runner/42/provision holds it now" in lease.lost_reason


def test_failed_renewals_are_logged_and_the_lease_counts_as_lost_once_it_could_have_expired(caplog: pytest.LogCaptureFixture) -> None:
    kube, clock = cluster(), Clock()
    lease = held(kube, clock)
    kube.fail("get_lease", UNREACHABLE)
    with caplog.at_level(logging.WARNING, logger="envci.lease"):
        for seconds in (10, 20):
            clock.now = T0 + timedelta(seconds=seconds)
            lease.renew_once()
        assert "could not renew the lock of envci-shop-pr-1 (cannot reach the Kubernetes API" in caplog.text
        assert "ConnectionRefusedError" in caplog.text
        assert not lease.lost.is_set()  # two missed renewals: still within the lease's 30 s
        clock.now = T0 + timedelta(seconds=30)
        lease.renew_once()
    assert lease.lost.is_set() and "lost the lock of envci-shop-pr-1: not renewed for 30s" in caplog.text
    with pytest.raises(LeaseLostError) as ei:
        lease.check()
    assert ei.value.exit_code == 4 and "not renewed for 30s" in ei.value.message and ei.value.hint


def test_a_lease_another_process_took_over_is_lost_and_not_renewed_for_it() -> None:
    kube = cluster()
    lease = held(kube)
    other = lease_of(kube)
    other["spec"]["holderIdentity"] = "other-runner/42/provision"
    assert kube.replace_lease(NS, other)
    lease.renew_once()
    assert lease.lost.is_set() and "other-runner/42/provision holds it now" in lease.lost_reason
    assert lease_of(kube)["spec"]["holderIdentity"] == "other-runner/42/provision"


def test_a_deleted_lease_is_lost() -> None:
    kube = cluster()
    lease = held(kube)
    kube.delete_lease(NS, LEASE_NAME)
    lease.renew_once()
    assert lease.lost.is_set() and lease.lost_reason == "it was deleted"


def test_unrenewed_too_long_is_the_lease_duration() -> None:
    assert not unrenewed_too_long(T0, T0 + timedelta(seconds=29), timedelta(seconds=30))
    assert unrenewed_too_long(T0, T0 + timedelta(seconds=30), timedelta(seconds=30))


def test_release_deletes_only_a_lease_still_ours() -> None:
    kube = cluster()
    lease = held(kube)
    lease.release()
    assert kube.get_lease(NS, LEASE_NAME) is None
    mine, theirs = held(kube), Lease(kube, NS, "provision", settings=SETTINGS, clock=Clock())  # type: ignore[arg-type]
    other = lease_of(kube)
    other["spec"]["holderIdentity"] = theirs.identity
    kube.replace_lease(NS, other)
    mine.release()
    assert lease_of(kube)["spec"]["holderIdentity"] == theirs.identity


def test_release_never_raises_over_the_stages_own_outcome(caplog: pytest.LogCaptureFixture) -> None:
    kube = cluster()
    lease = held(kube)
    kube.fail("get_lease", UNREACHABLE)
    with caplog.at_level(logging.WARNING, logger="envci.lease"):
        lease.release()
    assert "could not release the lock of envci-shop-pr-1" in caplog.text and "it expires by itself" in caplog.text


def test_teardown_releases_the_lease_and_stops_renewing_when_an_external_delete_fails() -> None:
    kube = cluster(external=[{"type": "no-such-kind", "name": "x"}])  # external.delete raises for it
    with pytest.raises(InfrastructureError, match="do not know how to delete external resource"):
        teardown(kube, Reporter(err=io.StringIO()), namespace=NS, helm_factory=no_helm)  # type: ignore[arg-type]
    assert "create Lease/envci-lock" in kube.calls
    assert kube.get_lease(NS, LEASE_NAME) is None  # released
    renewers = [t for t in threading.enumerate() if t.name == "envci-lease"]
    assert not any(t.is_alive() for t in renewers)
    assert kube.namespace(NS) is not None  # the namespace stays for a retry: its record still names the resource
    assert "delete Namespace/envci-shop-pr-1" not in kube.calls


def test_teardown_does_not_delete_a_namespace_another_stage_took_over(monkeypatch: pytest.MonkeyPatch) -> None:
    kube = cluster()

    def acquire_then_lose(self: Lease, sleep: Any = None) -> None:
        assert self._try_acquire() is None
        self._lose("other-runner/7/provision holds it now")  # as the renewal thread would find

    monkeypatch.setattr(Lease, "acquire", acquire_then_lose)
    with pytest.raises(LeaseLostError):
        teardown(kube, Reporter(err=io.StringIO()), namespace=NS, helm_factory=no_helm)  # type: ignore[arg-type]
    assert kube.namespace(NS) is not None and "delete Namespace/envci-shop-pr-1" not in kube.calls


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
    cfg = SimpleNamespace(identity=SimpleNamespace(name="shop-pr-1", namespace=NS, app="shop"))
    steps = [(0, SimpleNamespace(job="a")), (1, SimpleNamespace(job="b"))]
    with pytest.raises(LeaseLostError):
        seed_stage._seed_locked(cfg, cluster(), Reporter(err=io.StringIO()), steps, still_held=still_held)  # type: ignore[arg-type]
    assert ran == [0]
