"""Pure planning: in which order, and with what parallelism, components are installed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class HasDeps(Protocol):
    name: str
    depends_on: list[str]


class CycleError(ValueError):
    pass


def install_order(components: Sequence[HasDeps]) -> list[list[str]]:
    """Waves of component names: each wave depends only on earlier ones and installs in parallel."""
    deps = {c.name: set(d for d in c.depends_on if d != c.name) for c in components}
    known = set(deps)
    for name, ds in deps.items():
        deps[name] = ds & known  # unknown names are reported by validation, not here
    done: set[str] = set()
    waves: list[list[str]] = []
    while len(done) < len(deps):
        wave = sorted(n for n, ds in deps.items() if n not in done and ds <= done)
        if not wave:
            stuck = sorted(n for n in deps if n not in done)
            raise CycleError(f"components depend on each other in a cycle: {' -> '.join(stuck)}")
        waves.append(wave)
        done.update(wave)
    return waves


def teardown_order(components: Sequence[HasDeps]) -> list[list[str]]:
    """The reverse of the install order: dependents go first."""
    return list(reversed(install_order(components)))
