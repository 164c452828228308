from __future__ import annotations

from pathlib import Path

import pytest
from test_config import CTX, GOOD, write

from envci.config.loader import load_config
from envci.config.overrides import combine, flatten, from_environment, load_values_file, merge, parse_assignments, split, values_files_from_environment
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


def test_a_components_name_first_overrides_its_helm_values_and_anything_else_is_a_value(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD)
    plain = load_config(p, CTX)
    cfg = load_config(p, CTX, overrides=parse_assignments(["web.image.tag=pr-42", "web.replicas=3", "replicas=4", "values.colour=blue"]))
    web = cfg.spec.component("web").helm
    assert web is not None
    assert web.values["image"] == {"tag": "pr-42"} and web.values["replicas"] == 3  # laid over the file's helm values
    assert web.values["host"] == "shop-pr-5.example.com"  # the rest of them stay
    assert cfg.overrides == {"values": {"replicas": 4, "colour": "blue"}, "web": {"image": {"tag": "pr-42"}, "replicas": 3}}
    assert cfg.digest != plain.digest and plain.overrides == {}


def test_values_files_apply_in_order_then_set(tmp_path: Path) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("web:\n  image: {tag: one, pullPolicy: Never}\nvalues:\n  replicas: 1\n")
    second.write_text("web:\n  image: {tag: two}\n")
    tree = combine([load_values_file(str(first)), load_values_file(str(second))], parse_assignments(["replicas=9"]))
    assert split(tree, ["web"], ["replicas"]) == ({"replicas": 9}, {"web": {"image": {"tag": "two", "pullPolicy": "Never"}}})
    assert values_files_from_environment({"ENVCI_VALUES": "a.yaml 'b c.yaml'"}) == ["a.yaml", "b c.yaml"]


@pytest.mark.parametrize(
    "text, words",
    [("web: [1, 2]\n", "a mapping of component names"), ("web: {a: [\n", "not valid YAML"), ("- 1\n", "a mapping of component names")],
)
def test_a_bad_values_file_names_the_file(tmp_path: Path, text: str, words: str) -> None:
    f = tmp_path / "pins.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=words) as ei:
        load_values_file(str(f))
    assert ei.value.file == str(f) and ei.value.field == "--values"
    with pytest.raises(ConfigError, match="cannot read the values file") as missing:
        load_values_file(str(tmp_path / "nope.yaml"))
    assert missing.value.file == str(tmp_path / "nope.yaml")


def test_a_manifests_component_or_an_ambiguous_name_is_refused_with_a_way_out(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD)
    with pytest.raises(ConfigError, match="component api is made from manifests") as ei:
        load_config(p, CTX, overrides=parse_assignments(["api.image=x:1"]))
    assert "--set api_image=REF" in (ei.value.hint or "")
    (tmp_path / "other").mkdir()
    both = write(tmp_path / "other", GOOD.replace("values: {replicas: 2}", "values: {replicas: 2, web: 1}"))
    with pytest.raises(ConfigError, match="'web' is both a component and a key of `values:`") as amb:
        load_config(both, CTX, overrides=parse_assignments(["web.replicas=2"]))
    assert "values.web=" in (amb.value.hint or "")
    assert load_config(both, CTX, overrides=parse_assignments(["values.web=7"])).overrides == {"values": {"web": 7}}
    with pytest.raises(ConfigError, match="takes a path of its Helm values"):
        split({"web": 3}, ["web"], [])


def test_the_record_keeps_one_dotted_path_each_with_secrets_masked() -> None:
    from envci import redact
    from envci.stages.provision import recorded_overrides

    redact.register("s3cr3t-value")
    tree = {"values": {"replicas": 4}, "web": {"image": {"tag": "pr-42"}, "password": "s3cr3t-value"}}
    assert flatten(tree) == {"values.replicas": 4, "web.image.tag": "pr-42", "web.password": "s3cr3t-value"}
    assert recorded_overrides(tree) == {"values.replicas": 4, "web.image.tag": "pr-42", "web.password": redact.MASK}
