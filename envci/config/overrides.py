"""`--set NAME=VALUE` (and $ENVCI_SET): values given on the command line instead of in envci.yaml.

A pipeline sometimes needs one value to differ for one run (a feature flag, a replica count, a
fault to demonstrate) without editing the file. Overrides replace keys under `values:` before
templates render, so they reach everything `values.*` reaches, and the spec digest changes with
them: `provision` upgrades what they affect. Every stage must see the same overrides (a CI
variable ENVCI_SET does that across jobs).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
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
