"""Keeps secret values out of everything envci prints, logs or writes.

Every secret envci resolves is registered here; all output paths (CLI printing, logging, reports,
captured Helm/kubectl stderr) pass through `redact`. Short values are not registered since masking
"a" or "1" everywhere would garble output without protecting anything.
"""

from __future__ import annotations

import logging
import threading

MASK = "***"
_MIN_LEN = 4
_lock = threading.Lock()
_secrets: set[str] = set()


def register(value: str | None) -> None:
    if value and len(value) >= _MIN_LEN:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    with _lock:
        values = sorted(_secrets, key=len, reverse=True)
    for v in values:
        if v in text:
            text = text.replace(v, MASK)
    return text


def truncate(text: str, limit: int = 2000) -> str:
    """Cut long tool output, keeping the end, where the error usually is."""
    return text if len(text) <= limit else f"...[{len(text) - limit} characters cut]...\n" + text[-limit:]


class RedactingFilter(logging.Filter):
    """Masks registered secrets in log records (a library may log whole command lines)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = ()
        return True
