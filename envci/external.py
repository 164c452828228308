"""External resources an environment owns outside the cluster (S3 buckets), deleted with it.

Each kind registers a deleter; teardown and the janitor call `delete` with the record kept in the
cluster, so they need no envci.yaml to clean up.
"""

from __future__ import annotations

from collections.abc import Callable

from envci.errors import InfrastructureError

Deleter = Callable[[dict[str, str]], None]
_deleters: dict[str, Deleter] = {}


def register(kind: str, deleter: Deleter) -> None:
    _deleters[kind] = deleter


def delete(item: dict[str, str]) -> None:
    kind = item.get("type", "")
    if kind not in _deleters:
        _load_builtin(kind)
    if kind not in _deleters:
        raise InfrastructureError(f"do not know how to delete external resource of type {kind!r}: {item}")
    _deleters[kind](item)


def _load_builtin(kind: str) -> None:
    if kind == "s3":
        import envci.seeders.s3  # noqa: F401  (registers itself)
