"""Which environment a command that needs no envci.yaml means (teardown, status, extend, logs).

A stop job may run with no checkout, or after its branch is gone, so these commands find the
environment three ways, in this order:

- `--env NAME` (or ENVCI_ENV) and no envci.yaml: that environment, whoever owns it.
- envci.yaml: the name its `name:` and the CI context give, as provision derived it.
- neither: the environment provision made for this CI context, found by its labels.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from envci.config.loader import LoadedConfig
    from envci.kube.client import Kube


@dataclass(frozen=True)
class Located:
    name: str | None
    namespace: str | None
    """None when only the name is known: the stage looks the namespace up by its label."""
    build: str = ""
    """The build that must own the environment; empty for "this one, whoever owns it"."""
    missing: str | None = None
    """Set when no environment of this CI context exists: the context, as a person reads it."""


def locate(
    *,
    config: str,
    env_name: str | None,
    load: Callable[[], LoadedConfig],
    kube: Callable[[], Kube],
    progress: Callable[[str], None],
    env: Mapping[str, str] | None = None,
) -> Located:
    """`load` and `kube` are called only when needed: `--env` alone touches neither file nor cluster."""
    env = os.environ if env is None else env
    if env_name and not os.path.exists(config):
        from envci.identity import dns_label

        return Located(dns_label(env_name), None)
    if os.path.exists(config):
        cfg = load()
        return Located(cfg.identity.name, cfg.identity.namespace, "" if env_name else cfg.identity.ctx.build)
    from envci.ci import detect_context
    from envci.stages.teardown import describe_context, find_for_context

    ctx = detect_context(env)
    context = describe_context(ctx)
    progress(f"no {config} here: looking for the environment of this build's {context} by its labels")
    ns = find_for_context(kube(), ctx, prefer=env.get("ENVCI_NAME", ""))
    if ns is None:
        return Located(None, None, missing=context)
    meta = ns["metadata"]
    return Located((meta.get("labels") or {}).get("envci.io/env") or meta["name"], meta["name"], ctx.build)
