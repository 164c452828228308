from __future__ import annotations

from pathlib import Path

import pytest
from test_config import CTX, GOOD, write

from envci.config.loader import load_config
from envci.config.overrides import from_environment, merge, parse_assignments
from envci.errors import ConfigError


def test_assignments_are_yaml_scalars_and_dots_nest() -> None:
    assert parse_assignments(["a=1", "b.c=text", "flag=true", "empty=", "eq=x=y", "list=[1, 2]"]) == {
        "a": 1, "b": {"c": "text"}, "flag": True, "empty": "", "eq": "x=y", "list": "[1, 2]",
    }


@pytest.mark.parametrize("item", ["noequals", "=1", "a..b=1"])
def test_an_item_without_a_name_is_refused(item: str) -> None:
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        parse_assignments([item])


def test_environment_items_split_like_a_shell() -> None:
    assert from_environment({"ENVCI_SET": "a=1 'b=two words'"}) == ["a=1", "b=two words"]
    assert from_environment({}) == []


def test_merge_keeps_sibling_keys() -> None:
    assert merge({"db": {"size": "1Gi", "tier": "x"}, "n": 1}, {"db": {"size": "2Gi"}}) == {"db": {"size": "2Gi", "tier": "x"}, "n": 1}


def test_an_override_reaches_templates_and_the_digest(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD)
    plain = load_config(p, CTX)
    changed = load_config(p, CTX, values_override={"replicas": 5})
    assert changed.spec.component("web").helm.values["replicas"] == "5"  # type: ignore[union-attr]
    assert plain.spec.component("web").helm.values["replicas"] == "2"  # type: ignore[union-attr]
    assert changed.digest != plain.digest
