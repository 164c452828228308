from __future__ import annotations

import logging

import pytest
import urllib3
from envci.kube.transport import ApiError

from envci.errors import InfrastructureError
from envci.kube.client import RetryPolicy, with_retries


class Flaky:
    def __init__(self, errors: list[BaseException]) -> None:
        self.errors = errors
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_5xx_and_connection_errors_are_retried(caplog: pytest.LogCaptureFixture) -> None:
    fn = Flaky([ApiError(503), urllib3.exceptions.ProtocolError("reset"), ApiError(429)])
    sleeps: list[float] = []
    with caplog.at_level(logging.WARNING, logger="envci.kube"):
        assert with_retries(fn, "list pods", RetryPolicy(backoffs=(1, 2, 3, 4)), sleeps.append) == "ok"
    assert fn.calls == 4 and sleeps == [1, 2, 3]
    assert "attempt #1/5 to list pods failed (ApiError); retrying in 1.0s" in caplog.text


def test_4xx_is_not_retried() -> None:
    fn = Flaky([ApiError(403)])
    with pytest.raises(ApiError):
        with_retries(fn, "list pods", RetryPolicy(backoffs=(1,)), lambda s: None)
    assert fn.calls == 1


def test_gives_up_with_a_clear_error() -> None:
    fn = Flaky([ConnectionRefusedError()] * 3)
    with pytest.raises(InfrastructureError) as ei:
        with_retries(fn, "list pods", RetryPolicy(backoffs=(0, 0)), lambda s: None)
    assert fn.calls == 3 and "after 3 attempts" in str(ei.value)


def test_a_local_file_error_is_not_retried_nor_called_unreachable() -> None:
    # e.g. no writable temporary directory for the discovery cache, in a read-only container
    fn = Flaky([FileNotFoundError("No usable temporary directory found in ['/tmp']")])
    with pytest.raises(FileNotFoundError):
        with_retries(fn, "discover the API", RetryPolicy(backoffs=(0, 0)), lambda s: None)
    assert fn.calls == 1
