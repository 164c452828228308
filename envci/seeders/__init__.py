"""Seeders: one module per kind of `seed:` step, each with `run(step, ctx) -> StepResult`.

Modules are imported when a step of their kind runs, so a pipeline that seeds only S3 does not
need psycopg to import cleanly.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from envci.seeders.base import SeedContext, SeedError, StepResult

KINDS: tuple[str, ...] = ("sql", "restore", "s3", "job", "http", "exec")

Seeder = Callable[[Any, SeedContext], StepResult]


def kind_of(step: Any) -> str:
    """Which kind a parsed step is: the identifying key it has (as the config model picks it)."""
    for kind in KINDS:
        if getattr(step, kind, None) is not None:
            return kind
    raise ValueError(f"not a seed step: {step!r}")


def seeder(kind: str) -> Seeder:
    module = importlib.import_module(f"envci.seeders.{kind}")
    run: Seeder = module.run
    return run


__all__ = ["KINDS", "SeedContext", "SeedError", "StepResult", "kind_of", "seeder"]
