"""External resources an environment owns outside the cluster (S3 buckets), deleted with it.

Teardown and the janitor call `delete` with the record kept in the cluster, so they need no
envci.yaml to clean up. Each kind of resource has a deleter, which the module owning that kind
provides in its `DELETERS`; `PLUGINS` is the explicit table of those modules. A module is imported
only when a resource of its kind is deleted, so tearing down an environment without buckets never
imports boto3. Nothing here imports a seeder: plugins depend on this core, never the reverse.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

from envci.errors import InfrastructureError

Deleter = Callable[[dict[str, str]], None]

PLUGINS: Mapping[str, str] = {
    "s3": "envci.buckets",
}
"""Each kind of external resource envci makes, and the module whose `DELETERS` delete it."""

_deleters: dict[str, Deleter] = {}


def register(kind: str, deleter: Deleter) -> None:
    """A deleter for a kind no module in PLUGINS provides (or in place of the one it does)."""
    _deleters[kind] = deleter


def deleter(kind: str) -> Deleter | None:
    """The deleter of `kind`, loading its plugin module on first use; None for an unknown kind."""
    if kind not in _deleters and kind in PLUGINS:
        provided: Mapping[str, Deleter] = getattr(importlib.import_module(PLUGINS[kind]), "DELETERS", {})
        for k, fn in provided.items():
            _deleters.setdefault(k, fn)
    return _deleters.get(kind)


def delete(item: dict[str, str]) -> None:
    kind = item.get("type", "")
    fn = deleter(kind)
    if fn is None:
        raise InfrastructureError(f"do not know how to delete external resource of type {kind!r}: {item}")
    fn(item)
