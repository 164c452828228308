from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from envci.config.model import NamespaceSettings, Quota
from envci.identity import CiContext, identify, is_older_build
from envci.kube.lease import expired
from envci.namespace import guard_objects, namespace_object
from envci.stages.reap import reap_reason

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


def ns(expires: str | None, *, pr: str | None = None, deleting: bool = False) -> dict:
    meta: dict = {"name": "envci-x", "labels": {"envci.io/managed": "true"}, "annotations": {"envci.io/repo": "o/r", "envci.io/ci-system": "github"}}
    if expires:
        meta["annotations"]["envci.io/expires-at"] = expires
    if pr:
        meta["labels"]["envci.io/pr"] = pr
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T11:00:00Z"
    return {"metadata": meta}


def test_expired_is_reaped_and_fresh_kept() -> None:
    assert reap_reason(ns("2026-01-01T11:59:59Z"), NOW) == "expired at 2026-01-01T11:59:59Z"
    assert reap_reason(ns("2026-01-01T12:00:01Z"), NOW) is None


def test_no_expiry_or_already_deleting_is_left_alone() -> None:
    assert reap_reason(ns(None), NOW) is None
    assert reap_reason(ns("2020-01-01T00:00:00Z", deleting=True), NOW) is None


def test_closed_pr_reaped_only_when_known_closed() -> None:
    fresh = "2026-01-02T00:00:00Z"
    assert reap_reason(ns(fresh, pr="4"), NOW, lambda info: False) == "pull request 4 is closed"
    assert reap_reason(ns(fresh, pr="4"), NOW, lambda info: True) is None
    assert reap_reason(ns(fresh, pr="4"), NOW, lambda info: None) is None  # API unreachable: keep


def lease(holder: str | None, renewed: str, seconds: int = 30) -> dict:
    return {"spec": {"holderIdentity": holder, "renewTime": renewed, "leaseDurationSeconds": seconds}}


def test_lease_expiry() -> None:
    assert not expired(lease("a", "2026-01-01T11:59:45.000000Z"), NOW)
    assert expired(lease("a", "2026-01-01T11:59:29.000000Z"), NOW)
    assert expired(lease(None, "2026-01-01T11:59:59.000000Z"), NOW)


@pytest.mark.parametrize("mine, theirs, older", [("5", "7", True), ("7", "5", False), ("10-1", "10-2", True), ("abc", "7", False), ("", "7", False)])
def test_build_order(mine: str, theirs: str, older: bool) -> None:
    assert is_older_build(mine, theirs) is older


def test_namespace_labels_cannot_be_overridden_and_expiry_is_ttl() -> None:
    ident = identify("shop", CiContext(system="github", pr="3", build="9", repo="o/r"))
    settings = NamespaceSettings.model_construct(
        labels={"envci.io/managed": "false", "team": "a"}, annotations={}, prefix="envci-",
        quota=Quota(), limits=None, network=NamespaceSettings().network,
    )
    obj = namespace_object(ident, settings, now=NOW, ttl=timedelta(hours=2), digest="d")
    assert obj["metadata"]["labels"]["envci.io/managed"] == "true"
    assert obj["metadata"]["labels"]["team"] == "a"
    assert obj["metadata"]["annotations"]["envci.io/expires-at"] == "2026-01-01T14:00:00Z"


def test_guard_objects_default_deny_with_same_namespace_allowed() -> None:
    objs = {o["metadata"]["name"]: o for o in guard_objects(NamespaceSettings())}
    assert objs["envci-default-deny"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    sources = objs["envci-allow-same-namespace"]["spec"]["ingress"][0]["from"]
    assert {"podSelector": {}} in sources
    assert objs["envci-quota"]["spec"]["hard"]["pods"] == "100"
    assert objs["envci-limits"]["spec"]["limits"][0]["default"] == {"cpu": "500m", "memory": "512Mi"}
