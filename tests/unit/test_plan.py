from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from envci.durations import format_duration, parse_duration
from envci.plan import CycleError, install_order, teardown_order


@dataclass
class C:
    name: str
    depends_on: list[str] = field(default_factory=list)


def test_waves() -> None:
    comps = [C("api", ["db", "cache"]), C("db"), C("cache"), C("web", ["api"])]
    assert install_order(comps) == [["cache", "db"], ["api"], ["web"]]
    assert teardown_order(comps)[0] == ["web"]


def test_cycle() -> None:
    with pytest.raises(CycleError):
        install_order([C("a", ["b"]), C("b", ["a"])])


@pytest.mark.parametrize("text, secs", [("90s", 90), ("30m", 1800), ("4h", 14400), ("1d", 86400), ("2h30m", 9000), (45, 45), ("10", 10)])
def test_durations(text: str | int, secs: int) -> None:
    assert parse_duration(text).total_seconds() == secs


@pytest.mark.parametrize("bad", ["", "4x", "h4", "-1h", "1h 2m"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_format_duration() -> None:
    assert format_duration(parse_duration("2h30m")) == "2h30m"
