"""`--set NAME=VALUE`, `--values FILE` (and $ENVCI_SET, $ENVCI_VALUES): what one build changes
without editing envci.yaml.

A pipeline sometimes needs one value to differ for one run (a feature flag, a replica count, a
fault to demonstrate, a component pinned to another repository's tag or image digest). An
assignment whose first name is a component's (`api.image.tag=v2`) is laid over that component's
Helm values; any other (`replicas=2`, or explicitly `values.replicas=2`) replaces a key under
`values:` before templates render, so it reaches everything `values.*` reaches. Either way the spec
digest changes with them, so `provision` upgrades what they affect, and the environment's record
keeps them for `envci status`. Every stage must see the same overrides (CI variables ENVCI_SET and
ENVCI_VALUES do that across jobs).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from envci.errors import ConfigError


def parse_assignments(items: Iterable[str]) -> dict[str, Any]:
    """Pure: `a=1`, `b.c=text`, `flag=true` -> {"a": 1, "b": {"c": "text"}, "flag": True}.

    Values are read as YAML scalars (numbers, booleans, null, strings), as they would be in the
    file; a dotted name sets a nested key. Raises ConfigError for an item without `=`.
    """
    out: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        keys = [k.strip() for k in name.split(".")]
        if not sep or not all(keys):
            raise ConfigError(f"{item!r} is not NAME=VALUE", field="--set", hint="e.g. --set replicas=2 or --set db.size=1Gi")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, (dict, list)):
            value = raw  # one scalar per assignment; structures belong in the file
        node = out
        for key in keys[:-1]:
            child = node.get(key)
            node = node.setdefault(key, {}) if isinstance(child, dict) or child is None else _replace(node, key)
        node[keys[-1]] = value
    return out


def _replace(node: dict[str, Any], key: str) -> dict[str, Any]:
    child: dict[str, Any] = {}
    node[key] = child
    return child


def from_environment(env: Mapping[str, str]) -> list[str]:
    """The assignments in $ENVCI_SET: NAME=VALUE items separated by spaces, quoted as in a shell."""
    text = env.get("ENVCI_SET", "")
    try:
        return shlex.split(text)
    except ValueError as e:
        raise ConfigError(f"ENVCI_SET cannot be split into NAME=VALUE items: {e}", field="ENVCI_SET") from None


def merge(values: Mapping[str, Any] | None, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Pure: `values` with `overrides` laid over it, nested mappings merged key by key."""
    out: dict[str, Any] = dict(values or {})
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


VALUES_KEY = "values"


def load_values_file(path: str) -> dict[str, Any]:
    """One `--values` file: a mapping whose keys are component names (their Helm values) or `values`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read the values file: {e.strerror or e}", file=path, field="--values",
                          hint="pass the path of a YAML file, relative to where envci runs") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise ConfigError(f"not valid YAML: {getattr(e, 'problem', None) or e}", file=path, line=mark.line + 1 if mark else None,
                          field="--values") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ConfigError("a values file is a mapping of component names (or `values`) to mappings", file=path, field="--values",
                          hint="e.g.\napi:\n  image: {tag: pr-42}\nvalues:\n  replicas: 2")
    return data


def values_files_from_environment(env: Mapping[str, str]) -> list[str]:
    """The files in $ENVCI_VALUES, separated by spaces, quoted as in a shell."""
    try:
        return shlex.split(env.get("ENVCI_VALUES", ""))
    except ValueError as e:
        raise ConfigError(f"ENVCI_VALUES cannot be split into file names: {e}", field="ENVCI_VALUES") from None


def combine(files: Sequence[Mapping[str, Any]], assignments: Mapping[str, Any]) -> dict[str, Any]:
    """Pure: the files in order, then the `--set` assignments, each laid over the ones before."""
    out: dict[str, Any] = {}
    for layer in [*files, assignments]:
        out = merge(out, layer)
    return out


def split(overrides: Mapping[str, Any], components: Iterable[str], values: Iterable[str], *, file: str = "") -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Pure: (overrides of `values:`, component name -> overrides of its Helm values).

    A first name that is a component's goes to the component; `values` names `values:` explicitly;
    any other name is a key of `values:`, as `--set NAME=VALUE` always meant. A name that is both a
    component and a key of `values:` is refused rather than guessed."""
    comps, keys = set(components), set(values)
    to_values: dict[str, Any] = {}
    to_components: dict[str, dict[str, Any]] = {}
    for name, value in overrides.items():
        if name == VALUES_KEY and isinstance(value, dict):
            to_values = merge(to_values, value)
        elif name in comps:
            if name in keys:
                raise ConfigError(
                    f"{name!r} is both a component and a key of `values:`; envci will not guess which one an override means",
                    file=file or None, field="--set",
                    hint=f"write values.{name}=... for the value, or rename one of them",
                )
            if not isinstance(value, dict):
                raise ConfigError(f"component {name} takes a path of its Helm values, not one value", file=file or None, field="--set",
                                  hint=f"e.g. --set {name}.image.tag=v2 (or values.{name}=... for a key of `values:`)")
            to_components[name] = merge(to_components.get(name, {}), value)
        else:
            to_values = merge(to_values, {name: value})
    return to_values, to_components


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Pure: {"api": {"image": {"tag": "v2"}}} -> {"api.image.tag": "v2"}, as status shows them."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out
