"""Fixtures for integration tests: real servers, started once per session (see servers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from servers import (  # tests/integration is on sys.path
    Postgres,
    start_postgres,
    start_s3,
)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A password-protected PostgreSQL on 127.0.0.1:<free port>, in a temporary directory."""
    with start_postgres() as pg:
        yield pg


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The URL of an S3-compatible server (moto's server mode) on 127.0.0.1:<free port>."""
    with start_s3() as url:
        yield url
