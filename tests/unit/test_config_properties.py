"""Properties of loading envci.yaml: whatever the file holds, load_config gives a valid model or a
ConfigError (exit code 2) that names the file and a line; never another exception.

Three sources of files: configurations built from envci's own keys with values of every YAML type,
a valid configuration with one value replaced by anything, and the text of a valid configuration
with characters deleted, inserted or lines shuffled (what a bad merge or a stray edit leaves).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from envci.config.loader import LoadedConfig, load_config
from envci.errors import ConfigError, ConfigErrors, ExitCode
from envci.identity import CiContext

KEYS = [
    "name", "ttl", "values", "secrets", "namespace", "components", "seed", "test", "helm", "manifests", "chart",
    "repo", "version", "release", "values_files", "depends_on", "wait", "timeout", "enabled", "expose", "service",
    "port", "host", "path", "scheme", "prefix", "quota", "limits", "network", "isolate", "labels", "annotations",
    "from_env", "secret", "key", "sql", "component", "s3", "job", "image", "image_from", "command", "http", "exec",
    "junit", "parallel", "helm_test", "cpu", "memory", "pods",
]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.text(max_size=12),
    st.sampled_from(["web", "5m", "90s", "0s", "-1s", "1d2h", "{{ values.x }}", "{{", "{% for %}", "{{ env.name }}",
                     "./chart", "k8s/*.yaml", "oci://r/c", "../outside", "/abs", "", "null", "1e400"]),
)
KEY = st.one_of(st.sampled_from(KEYS), st.text(max_size=6), st.integers(-3, 3), st.booleans(), st.none())
TREES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEY, inner, max_size=5)),
    max_leaves=25,
)

VALID: dict[str, Any] = {
    "name": "shop",
    "ttl": "4h",
    "values": {"replicas": 2},
    "secrets": {"db_password": {"from_env": "DB_PASSWORD"}},
    "namespace": {"prefix": "envci-", "quota": {"cpu": "2"}, "network": {"isolate": True}},
    "components": [
        {"name": "db", "manifests": ["k8s/*.yaml"], "wait": {"timeout": "2m"}},
        {"name": "web", "depends_on": ["db"], "helm": {"chart": "./chart", "values": {"replicas": "{{ values.replicas }}"}},
         "expose": {"port": 80, "host": "{{ env.name }}.example.com"}},
    ],
    "seed": [{"sql": ["db/schema.sql"], "component": "db", "password": "db_password"}],
    "test": [{"name": "api", "command": "pytest", "junit": "reports/*.xml"}],
}
VALID_TEXT = yaml.safe_dump(VALID, sort_keys=False)


def paths(tree: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += paths(v, (*prefix, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out += paths(v, (*prefix, i))
    return out


def replaced(tree: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(tree, dict):
        return {k: (replaced(v, rest, value) if k == head else v) for k, v in tree.items()}
    return [replaced(v, rest, value) if i == head else v for i, v in enumerate(tree)]


@st.composite
def one_value_replaced(draw: st.DrawFn) -> str:
    path = draw(st.sampled_from(paths(VALID)))
    return yaml.safe_dump(replaced(VALID, path, draw(TREES)), sort_keys=False)


@st.composite
def mutated_text(draw: st.DrawFn) -> str:
    lines = VALID_TEXT.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "insert", "swap", "indent", "duplicate"]))
        i = draw(st.integers(0, len(lines) - 1))
        if op == "delete":
            line = lines[i]
            j = draw(st.integers(0, max(0, len(line) - 1)))
            lines[i] = line[:j] + line[j + 1:]
        elif op == "insert":
            line = lines[i]
            j = draw(st.integers(0, len(line)))
            lines[i] = line[:j] + draw(st.sampled_from([":", "-", "{", "}", "[", "]", "'", '"', "#", "&a", "*a", "!!",
                                                        "\t", "{{", "}}", "%", "\\", "\x00", "\ufeff", " ", "\n"])) + line[j:]
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "indent":
            lines[i] = draw(st.sampled_from(["  ", " ", ""])) + lines[i].lstrip(" ") if draw(st.booleans()) else "  " + lines[i]
        else:
            lines.insert(i, lines[i])
    return "".join(lines)


def check(text: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "envci.yaml"
        f.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            cfg = load_config(f, CiContext(system="local"), env_override="prop")
        except ConfigError as e:
            assert e.exit_code == ExitCode.BAD_INPUT
            errors = e.errors if isinstance(e, ConfigErrors) else [e]
            assert errors
            for err in errors:
                assert err.file == str(f), err
                assert isinstance(err.line, int) and err.line >= 1, f"no line: {err}"
            assert str(f) in str(e)
        else:
            assert isinstance(cfg, LoadedConfig)


# No example database: nothing is written into the work tree, and CI would not keep it anyway.
SETTINGS = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.dictionaries(st.sampled_from(KEYS), TREES, max_size=6).map(lambda d: yaml.safe_dump(d, sort_keys=False)))
def test_random_configurations_load_or_fail_as_bad_input_with_file_and_line(text: str) -> None:
    check(text)


@SETTINGS
@given(one_value_replaced())
def test_a_valid_configuration_with_any_value_replaced_loads_or_fails_as_bad_input(text: str) -> None:
    check(text)


@SETTINGS
@given(mutated_text())
def test_a_valid_configuration_with_its_text_mutated_loads_or_fails_as_bad_input(text: str) -> None:
    check(text)


@settings(max_examples=100, deadline=None, database=None)
@given(st.text(max_size=200))
@example(VALID_TEXT)
def test_any_text_loads_or_fails_as_bad_input(text: str) -> None:
    check(text)


def test_the_valid_configuration_is_valid() -> None:
    # The seed of the mutations must load, or every mutation tests only the first error.
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "envci.yaml"
        f.write_text(VALID_TEXT)
        assert load_config(f, CiContext(system="local"), env_override="prop", check_files=False).spec.name == "shop"


# --- what the properties found, kept as plain tests -------------------------------------------------


def load_error(text: str) -> ConfigError:
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "envci.yaml"
        f.write_text(text)
        try:
            load_config(f, CiContext(system="local"), env_override="prop", check_files=False)
        except ConfigError as e:
            assert e.exit_code == ExitCode.BAD_INPUT and e.file == str(f)
            return e.errors[0] if isinstance(e, ConfigErrors) else e
    raise AssertionError("loaded")


def test_a_control_character_is_bad_yaml_at_its_line() -> None:
    e = load_error("name: shop\ncomponents: []\nttl: 4h\x1f\n")
    assert (e.line, e.detail) == (3, "not valid YAML: character 0x001f is not allowed in YAML")


def test_a_duration_no_timedelta_holds_is_bad_input_at_its_line() -> None:
    e = load_error("name: shop\nttl: 86400000000000.0\ncomponents: []\n")
    assert e.line == 2 and e.field == "ttl" and "at most 999999999 days" in e.detail


def test_a_template_that_cannot_be_evaluated_is_bad_input_at_its_line() -> None:
    e = load_error("name: shop\ncomponents:\n  - name: web\n    manifests: [k8s/web.yaml]\n    expose: {host: '{{ -env.name }}.example.com'}\n")
    assert e.line == 5 and e.field == "components[0].expose.host"
    assert e.detail == "template cannot be evaluated: TypeError: bad operand type for unary -: 'str'"
