"""Pure: turn a component's manifest files into the objects envci applies.

Files are Jinja2 templates with the same sandboxed context as envci.yaml. Every object is forced
into the environment's namespace and labelled with its component; an object that names another
namespace is refused, since teardown could not find it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jinja2
import yaml

from envci.config.render import render_string
from envci.errors import ConfigError

COMPONENT_LABEL = "envci.io/component"
HELM_RELEASE_ANNOTATION = "meta.helm.sh/release-name"
OTHER = "(other)"


def component_of(obj: dict[str, Any], release_to_component: dict[str, str]) -> str:
    """Which component an object belongs to: envci's label on manifests, the Helm release on charts."""
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    if COMPONENT_LABEL in labels:
        return str(labels[COMPONENT_LABEL])
    rel = (meta.get("annotations") or {}).get(HELM_RELEASE_ANNOTATION) or labels.get("app.kubernetes.io/instance")
    return release_to_component.get(rel or "", OTHER)


def load_manifest_file(path: Path, context: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        text = render_string(path.read_text(encoding="utf-8"), context)
    except jinja2.TemplateError as e:
        raise ConfigError(f"template error: {e}", file=str(path), line=getattr(e, "lineno", None)) from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d]
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else None
        raise ConfigError(f"not valid YAML: {e.problem}", file=str(path), line=line) from None
    out: list[dict[str, Any]] = []
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind", "").endswith("List") and "items" in doc:
            out.extend(doc["items"])
        else:
            out.append(doc)
    for i, obj in enumerate(out):
        if not isinstance(obj, dict) or not obj.get("apiVersion") or not obj.get("kind") or not (obj.get("metadata") or {}).get("name"):
            raise ConfigError(
                f"document {i + 1} is not a Kubernetes object (needs apiVersion, kind and metadata.name)", file=str(path)
            )
    return out


def prepare(obj: dict[str, Any], *, namespace: str, component: str, source: str) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    meta = obj.setdefault("metadata", {})
    ns = meta.get("namespace")
    if ns and ns != namespace:
        raise ConfigError(
            f"{obj['kind']} {meta['name']} sets namespace {ns!r}; environments own one namespace",
            file=source,
            field="metadata.namespace",
            hint="remove metadata.namespace: envci puts every object into the environment's namespace",
        )
    meta["namespace"] = namespace
    labels = meta.setdefault("labels", {}) or {}
    for key in list(labels):
        if key.startswith("envci.io/"):
            raise ConfigError(
                f"{obj['kind']} {meta['name']} sets the reserved label {key}",
                file=source,
                field="metadata.labels",
                hint="envci.io/ labels are set by envci; use another key",
            )
    labels[COMPONENT_LABEL] = component
    meta["labels"] = labels
    return obj
