"""One malformed timestamp annotation must not break status, list, the janitor or the lock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from envci.kube.lease import expired
from envci.stages.reap import expiry_of, reap_reason
from envci.stages.status import list_environments, summarize_namespace
from envci.timestamps import parse_time

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
BAD = ["tomorrow", "2026-13-45T99:00:00Z", "", "Z"]


def namespace(name: str, expires: str | None) -> dict[str, Any]:
    ann = {"envci.io/expires-at": expires} if expires is not None else {}
    return {"metadata": {"name": name, "labels": {"envci.io/managed": "true", "envci.io/env": name}, "annotations": ann}}


class Namespaces:
    """Just enough of Kube for list_environments."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def namespaces(self, label_selector: str) -> list[dict[str, Any]]:
        return self.items


@pytest.mark.parametrize("text", BAD)
def test_unreadable_text_is_unknown_not_an_error(text: str) -> None:
    assert parse_time(text) is None


def test_offsets_fractions_and_naive_times_all_come_back_aware() -> None:
    assert parse_time("2026-01-01T14:00:00+02:00") == NOW
    assert parse_time("2026-01-01T12:00:00.000000001Z") == NOW
    assert parse_time("2026-01-01T12:00:00") == NOW


@pytest.mark.parametrize("text", BAD)
def test_status_shows_a_malformed_expiry_as_written_and_not_expired(text: str) -> None:
    out = summarize_namespace(namespace("shop-pr-1", text), NOW)
    assert out["expires_at"] == text and out["expired"] is False


def test_list_survives_one_malformed_expiry_among_good_ones() -> None:
    kube = Namespaces([namespace("a", "2026-01-01T11:00:00Z"), namespace("b", "next week"), namespace("c", None)])
    envs = list_environments(kube, now=NOW)  # type: ignore[arg-type]
    assert [(e["name"], e["expired"]) for e in envs] == [("a", True), ("b", False), ("c", False)]


def test_janitor_keeps_an_environment_whose_expiry_it_cannot_read() -> None:
    assert expiry_of(namespace("b", "next week")) is None
    assert reap_reason(namespace("b", "next week"), NOW) is None


def test_a_lease_with_an_unreadable_renew_time_falls_back_to_its_acquire_time() -> None:
    lease = {"spec": {"holderIdentity": "h", "leaseDurationSeconds": 30, "renewTime": "garbage",
                      "acquireTime": (NOW - timedelta(seconds=10)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}}
    assert expired(lease, NOW) is False
    lease["spec"]["acquireTime"] = "garbage"
    assert expired(lease, NOW) is True  # nothing readable: no valid claim on the environment
