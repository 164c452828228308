"""The environment's record in the cluster: what exists, in which state, and what to clean up.

The namespace's labels and annotations are enough for the janitor to find and reap an
environment; the ConfigMap `envci-state` holds the detail (components, outputs, external
resources such as buckets, stage history) so any later stage, on any runner, can carry on.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from envci.errors import EnvciError
from envci.kube.client import Kube
from envci.namespace import LAST_ACTIVITY, rfc3339
from envci.redact import redact

STATE_CONFIGMAP = "envci-state"
EXTERNAL_ANNOTATION = "envci.io/external"
HISTORY_LIMIT = 50
log = logging.getLogger("envci.state")


@dataclass
class ComponentRecord:
    kind: str  # helm | manifests
    release: str | None = None
    revision: int | None = None
    status: str = "pending"  # pending | installed | failed
    objects: list[str] = field(default_factory=list)  # "Kind/name" for manifests


@dataclass
class EnvState:
    name: str
    namespace: str
    app: str
    ci: dict[str, str] = field(default_factory=dict)
    digest: str = ""
    components: dict[str, ComponentRecord] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    external: list[dict[str, str]] = field(default_factory=list)
    history: list[dict[str, str]] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)
    """What this build's --set and --values changed (`api.image.tag` -> `v2`), as the last provision applied it."""
    external_on_namespace: str | None = field(default=None, repr=False, compare=False)
    """`external` as this process last wrote it on the namespace (None: not yet), never stored: a save
    writes the namespace again only when that changed."""

    def record(self, stage: str, result: str, message: str = "", *, now: datetime | None = None) -> None:
        at = rfc3339(now or datetime.now(timezone.utc))
        self.history.append({"stage": stage, "result": result, "at": at, "message": message[:500]})
        del self.history[:-HISTORY_LIMIT]

    def add_external(self, item: dict[str, str]) -> None:
        if item not in self.external:
            self.external.append(item)

    def to_json(self) -> str:
        raw = asdict(self)
        del raw["external_on_namespace"]
        return json.dumps(raw, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "EnvState":
        raw = json.loads(text)
        comps = {k: ComponentRecord(**v) for k, v in raw.pop("components", {}).items()}
        return cls(components=comps, **raw)


def configmap_object(state: EnvState) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": STATE_CONFIGMAP,
            "namespace": state.namespace,
            "labels": {"envci.io/managed": "true"},
        },
        "data": {"state.json": state.to_json()},
    }


def load(kube: Kube, namespace: str) -> EnvState | None:
    cm = kube.get("v1", "ConfigMap", STATE_CONFIGMAP, namespace)
    if not cm or "state.json" not in (cm.get("data") or {}):
        return None
    return EnvState.from_json(cm["data"]["state.json"])


def save(kube: Kube, state: EnvState) -> None:
    kube.apply(configmap_object(state), state.namespace)
    # External resources also go on the namespace itself: the janitor must find them even if the
    # ConfigMap was never written or is already being deleted. Once per process and then on a
    # change: every write of a namespace wakes each controller that watches namespaces.
    external = json.dumps(state.external)
    if external != state.external_on_namespace:
        kube.patch_merge("v1", "Namespace", state.namespace, {"metadata": {"annotations": {EXTERNAL_ANNOTATION: external}}})
        state.external_on_namespace = external


def external_from_namespace(ns: dict[str, Any]) -> list[dict[str, str]]:
    raw = ((ns.get("metadata") or {}).get("annotations") or {}).get(EXTERNAL_ANNOTATION, "[]")
    try:
        items = json.loads(raw)
        return [i for i in items if isinstance(i, dict)]
    except ValueError:
        return []


def touch(kube: Kube, namespace: str, *, now: datetime | None = None) -> None:
    """Record on the namespace that a stage uses the environment now: the janitor's
    `--suspend-after` leaves it alone for that long. A mark that cannot be written never fails the
    stage (at worst the janitor suspends early, and provision or resume bring it back)."""
    try:
        kube.patch_merge("v1", "Namespace", namespace, {"metadata": {"annotations": {LAST_ACTIVITY: rfc3339(now or datetime.now(timezone.utc))}}})
    except EnvciError as e:
        log.warning("could not record activity on %s: %s", namespace, redact(e.message))
