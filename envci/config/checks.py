"""Checks across envci.yaml: a name given in one place that another place must find.

The model checks each part on its own (types, one-of rules, formats); these need the whole
spec: a seed step's `component:`, a `helm_test:` suite, a step's secret names, unique names,
the dependency graph, and where secrets were templated. All are pure and need no cluster, so
`envci validate` reports them, and no stage starts with a file that would fail half-way.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from envci.config.model import ExecSeed, HelmTestSuite, HttpSeed, JobSeed, JobSuite, RestoreSeed, S3Seed, Spec, SqlSeed, suite_slug
from envci.config.yamlpos import Path_


@dataclass(frozen=True)
class Problem:
    path: Path_
    message: str
    hint: str


SecretUses = Mapping[Path_, frozenset[str]]
"""Where templates read secrets: path of the rendered value -> names of the secrets it read."""


def problems(spec: Spec, secret_uses: SecretUses | None = None) -> list[Problem]:
    """Every cross-reference problem in the spec."""
    return [
        *_components(spec),
        *_seed(spec),
        *_tests(spec),
        *secrets_on_command_lines(spec, secret_uses or {}),
    ]


def _names(spec: Spec) -> str:
    return ", ".join(c.name for c in spec.components) or "none"


def _components(spec: Spec) -> Iterator[Problem]:
    from envci.plan import CycleError, install_order

    names = {c.name for c in spec.components}
    seen: set[str] = set()
    for i, c in enumerate(spec.components):
        if c.name in seen:
            yield Problem(("components", i, "name"), f"duplicate component name {c.name!r}", "names must be unique")
        seen.add(c.name)
        for j, dep in enumerate(c.depends_on):
            if dep not in names:
                yield Problem(("components", i, "depends_on", j), f"depends on unknown component {dep!r}", f"known: {_names(spec)}")
    try:
        install_order(spec.components)
    except CycleError as e:
        yield Problem(("components",), str(e), "remove one depends_on from the cycle")


def _seed(spec: Spec) -> Iterator[Problem]:
    names = {c.name for c in spec.components}
    defined = ", ".join(sorted(spec.secrets)) or "none"
    for i, step in enumerate(spec.seed):
        refs: list[tuple[str, str | None]] = []
        if isinstance(step, (SqlSeed, RestoreSeed, HttpSeed, ExecSeed)):
            refs.append(("component", step.component))
        if isinstance(step, JobSeed):
            refs.append(("image_from", step.image_from))
        for key, name in refs:
            if name is not None and name not in names:
                yield Problem(("seed", i, key), f"unknown component {name!r}", f"name one of the components: {_names(spec)}")
        secrets: list[tuple[tuple[str, ...], str | None]] = []
        if isinstance(step, (SqlSeed, RestoreSeed)):
            secrets.append((("password",), step.password))
        if isinstance(step, RestoreSeed) and not isinstance(step.restore, str):
            # The source's `component` names a component of the other environment, which this file
            # need not define: it is not checked here.
            secrets += [(("restore", "password"), step.restore.password), (("restore", "url_secret"), step.restore.url_secret)]
        if isinstance(step, S3Seed):
            secrets += [(("access_key",), step.access_key), (("secret_key",), step.secret_key)]
        for at, name in secrets:
            if name is not None and name not in spec.secrets:
                yield Problem(("seed", i, *at), f"names the secret {name!r}, which `secrets:` does not define",
                              f"add it under `secrets:` with `from_env:` or `secret:`/`key:` (defined: {defined})")


def _tests(spec: Spec) -> Iterator[Problem]:
    seen: dict[str, int] = {}
    for i, suite in enumerate(spec.test):
        key = suite_slug(suite.name)
        if key in seen:
            yield Problem(("test", i, "name"), f"suite name {suite.name!r} is used twice (also test[{seen[key]}])",
                          "give each suite its own name: it names the suite's Job and log file")
        seen.setdefault(key, i)
        if isinstance(suite, HelmTestSuite):
            helm = ", ".join(c.name for c in spec.components if c.helm) or "none"
            try:
                comp = spec.component(suite.helm_test)
            except KeyError:
                yield Problem(("test", i, "helm_test"), f"unknown component {suite.helm_test!r}",
                              f"name a component installed with helm (helm components: {helm})")
                continue
            if comp.helm is None:
                yield Problem(("test", i, "helm_test"), f"component {suite.helm_test!r} is installed from manifests, not a Helm chart",
                              "`helm test` needs a Helm release; use a job or command suite for this component")


def secrets_on_command_lines(spec: Spec, uses: SecretUses) -> Iterator[Problem]:
    """A secret templated into the command line of a Job (seed or test) would stand in plain text
    in the Job's spec, readable by anyone who may read Jobs, and in its pods' descriptions. `env:`
    values are passed from a Secret instead, so that is where a secret belongs."""
    for path in sorted(uses, key=str):
        if not uses[path]:
            continue
        where = _job_command_line(spec, path)
        if where is None:
            continue
        used = sorted(uses[path])
        what = f"the secret {used[0]}" if len(used) == 1 else "the secrets " + ", ".join(used)
        yield Problem(
            path, f"puts {what} on a Job's command line, where it would be stored in plain text",
            f"pass it in the Job's `env:` (e.g. TOKEN: \"{{{{ secrets.{used[0]} }}}}\") and read $TOKEN in the command: "
            "envci passes env values that use secrets from a Secret",
        )


def _job_command_line(spec: Spec, path: Path_) -> str | None:
    """Pure: "command" or "args" when `path` lies in a Job's command line, else None."""
    if len(path) >= 3 and path[0] == "seed" and isinstance(path[1], int) and path[1] < len(spec.seed):
        if isinstance(spec.seed[path[1]], JobSeed) and path[2] == "command":
            return "command"
    if len(path) >= 4 and path[0] == "test" and isinstance(path[1], int) and path[1] < len(spec.test):
        if isinstance(spec.test[path[1]], JobSuite) and path[2] == "job" and path[3] in ("command", "args"):
            return str(path[3])
    return None
