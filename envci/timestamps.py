"""The one parser for timestamps envci reads back from the cluster.

Annotations (`envci.io/expires-at`), Lease times and object status all hold RFC 3339 text, but
anyone with write access to a namespace can put anything into an annotation. A stage that reads
many objects (status, list, the janitor) must treat one unreadable value as "unknown", never
fail on it, so every reader goes through `parse_time`.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

_NANOSECONDS = re.compile(r"(\.\d{6})\d+")


def aware(t: datetime) -> datetime:
    """A naive time as UTC: comparing naive with aware times raises, and the API speaks UTC."""
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime; None when absent or unreadable.

    Kubernetes writes "2026-01-01T00:00:00Z", MicroTime adds fractions, other writers add offsets
    or nanoseconds (which datetime cannot hold, so they are cut to microseconds).
    """
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    text = _NANOSECONDS.sub(r"\1", text)
    try:
        return aware(datetime.fromisoformat(text))
    except ValueError:
        return None
