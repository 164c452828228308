"""Pure: turn a component's manifest files into the objects envci applies.

Files are Jinja2 templates with the same sandboxed context as envci.yaml. Every object is forced
into the environment's namespace and labelled with its component; an object that names another
namespace is refused, since teardown could not find it.
"""

from __future__ import annotations

import copy
import glob
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import yaml

from envci.config.render import render_string
from envci.errors import ConfigError, ConfigErrors

if TYPE_CHECKING:
    from envci.config.loader import LoadedConfig
    from envci.config.model import Component

Scope = Callable[[str, str], bool | None]
"""(apiVersion, kind) -> namespaced?; None when the cluster has no such API (yet)."""

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


def component_files(cfg: LoadedConfig, comp: Component) -> list[str]:
    """The files the component's `manifests:` globs match, in a stable order."""
    return [f for pattern in comp.manifests or [] for f in sorted(glob.glob(str(cfg.base_dir / pattern), recursive=True))]


def file_objects(cfg: LoadedConfig, comp: Component, path: str) -> list[dict[str, Any]]:
    """One manifest file rendered, parsed and prepared for the environment; raises its first problem."""
    return [prepare(obj, namespace=cfg.identity.namespace, component=comp.name, source=path) for obj in load_manifest_file(Path(path), cfg.context)]


def component_objects(cfg: LoadedConfig, comp: Component) -> list[dict[str, Any]]:
    return [obj for f in component_files(cfg, comp) for obj in file_objects(cfg, comp, f)]


def check_components(cfg: LoadedConfig, scope: Scope | None = None) -> None:
    """Render every component's manifests and check them, all before anything is changed.

    `validate` runs it without a cluster; provision runs it before creating the namespace, with
    `scope` from API discovery, so a cluster-scoped object is refused while nothing exists yet.
    A kind the cluster does not know is left to apply time: a chart installed earlier in the
    same run may bring its CRD. Raises ConfigErrors with one entry per broken file or object."""
    errors: list[ConfigError] = []
    for comp in cfg.spec.components:
        for f in component_files(cfg, comp):
            try:
                objs = file_objects(cfg, comp, f)
            except ConfigError as e:
                errors.append(e)
                continue
            for obj in objs:
                if scope is not None and scope(obj["apiVersion"], obj["kind"]) is False:
                    errors.append(cluster_scoped(comp.name, obj, f))
    if errors:
        raise ConfigErrors(errors)


def cluster_scoped(component: str, obj: dict[str, Any], source: str | None = None) -> ConfigError:
    return ConfigError(
        f"component {component}: {obj['kind']} {obj['metadata']['name']} is cluster-scoped; an environment owns one namespace",
        file=source,
        hint="create cluster-scoped objects outside envci, or in a chart that installs them once",
    )
