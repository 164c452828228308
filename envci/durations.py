"""Durations as people write them in CI configs: `90s`, `30m`, `4h`, `1d`, `2h30m`."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)(d|h|m|s)")
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def _seconds(text: object, seconds: float) -> timedelta:
    """A timedelta, or the ValueError every caller handles for a number no timedelta holds (1e300, inf, nan)."""
    try:
        return timedelta(seconds=seconds)
    except (OverflowError, ValueError):
        raise ValueError(f"{text!r} is not a duration envci can use: at most {timedelta.max.days} days") from None


def parse_duration(text: str | int | float) -> timedelta:
    """Parse a duration; a bare number means seconds. Raises ValueError with the accepted forms."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text < 0:
            raise ValueError("a duration cannot be negative")
        return _seconds(text, text)
    s = str(text).strip().lower()
    if s.isdigit():
        return _seconds(text, int(s))
    pos, total = 0, 0
    for m in _PART.finditer(s):
        if m.start() != pos:
            break
        total += int(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise ValueError(f"{text!r} is not a duration; write it like 90s, 30m, 4h, 1d or 2h30m")
    return _seconds(text, total)


def format_duration(td: timedelta) -> str:
    """The inverse of parse_duration, shortest form first (`4h`, `2h30m`, `45s`)."""
    secs = int(td.total_seconds())
    if secs <= 0:
        return "0s"
    out = ""
    for unit, size in _UNITS.items():
        if secs >= size:
            out += f"{secs // size}{unit}"
            secs %= size
    return out
