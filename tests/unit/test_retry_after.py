"""A 429 is retried no sooner than the server asked; a retry cut short by the deadline is still envci's error."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from email.utils import format_datetime

import pytest
import urllib3
from envci.kube.transport import ApiError

from envci.errors import InfrastructureError
from envci.kube.client import RetryPolicy, retry_after, retry_wait, with_retries

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc).timestamp()


def answer(status: int, retry: str | None = None) -> ApiError:
    e = ApiError(status, "Too Many Requests")
    e.headers = {"Retry-After": retry} if retry is not None else {}
    return e


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    assert retry_after(answer(429, "7")) == 7.0
    assert retry_after(answer(503, "1.5")) == 1.5
    in_ten = format_datetime(datetime.fromtimestamp(NOW + 10, timezone.utc), usegmt=True)
    assert retry_after(answer(429, in_ten), now=lambda: NOW) == 10.0
    e = ApiError(429)
    e.headers = {"retry-after": "3"}  # header names are case-insensitive
    assert retry_after(e) == 3.0


@pytest.mark.parametrize("e", [answer(429), answer(429, "soon"), answer(500, "5"), answer(403, "5"), ConnectionResetError()])
def test_no_readable_request_to_wait(e: BaseException) -> None:
    assert retry_after(e) is None


def test_the_longer_of_backoff_and_request_wins_within_the_cap() -> None:
    policy = RetryPolicy(backoffs=(2, 2), max_retry_after=30)
    assert retry_wait(answer(429, "7"), 1, policy) == (7.0, True)
    assert retry_wait(answer(429, "1"), 1, policy) == (2, False)
    assert retry_wait(answer(429, "3600"), 1, policy) == (30, True)


def test_a_429_waits_as_long_as_the_server_asked(caplog: pytest.LogCaptureFixture) -> None:
    errors = [answer(429, "7")]

    def fn() -> str:
        if errors:
            raise errors.pop()
        return "ok"

    sleeps: list[float] = []
    with caplog.at_level(logging.WARNING, logger="envci.kube"):
        assert with_retries(fn, "list pods", RetryPolicy(backoffs=(0.2,)), sleeps.append) == "ok"
    assert sleeps == [7.0]
    assert "retrying in 7.0s as the server asked (Retry-After)" in caplog.text


@pytest.mark.parametrize("error", [ConnectionResetError("reset by peer"), urllib3.exceptions.ProtocolError("gone"), TimeoutError()])
def test_a_retry_cut_short_by_the_deadline_is_an_infrastructure_error(error: Exception) -> None:
    calls = []

    def fn() -> str:
        calls.append(1)
        raise error

    policy = RetryPolicy(backoffs=(5, 5), deadline=100.0)
    with pytest.raises(InfrastructureError) as ei:
        with_retries(fn, "list pods", policy, lambda s: None, clock=lambda: 98.0)
    assert len(calls) == 1
    assert "cannot reach the Kubernetes API to list pods after 1 attempt(s), as the deadline comes before the next retry" in str(ei.value)
    assert ei.value.hint


def test_an_api_answer_cut_short_by_the_deadline_stays_an_api_answer() -> None:
    def fn() -> str:
        raise answer(429, "30")

    with pytest.raises(ApiError):  # callers turn it into an error with the API's own message
        with_retries(fn, "list pods", RetryPolicy(backoffs=(1,), deadline=10.0), lambda s: None, clock=lambda: 0.0)
