"""Load envci.yaml: parse, check structure, render templates, check again, check references.

Every problem found is reported at once with file:line, the field and a hint; nothing here talks
to the cluster, so a bad file fails before anything is created.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from envci import redact
from envci.config.checks import problems as cross_problems
from envci.config.model import RestoreSeed, Spec
from envci.config.overrides import merge as merge_values
from envci.config.overrides import split as split_overrides
from envci.config.render import LazySecrets, render_tree
from envci.config.yamlpos import Path_, dotted, line_for, parse_with_lines, read_text
from envci.errors import ConfigError, ConfigErrors
from envci.identity import CiContext, Identity, identify

SecretResolver = Callable[[str, Any], str]


@dataclass(frozen=True)
class LoadedConfig:
    spec: Spec
    identity: Identity
    file: Path
    base_dir: Path  # paths in the file are relative to this
    root: Path  # no path may point outside this (the repository)
    digest: str  # of the rendered spec, secrets excluded: tells provision whether anything changed
    lines: dict[Path_, int]
    context: dict[str, Any]  # the template context, for rendering manifest files the same way
    secret_uses: Mapping[Path_, frozenset[str]] = field(default_factory=dict)
    """Which rendered values read secrets (path -> secret names): such a value is itself a secret."""
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """What --set and --values changed: `values` -> keys of `values:`, a component's name -> its Helm values."""

    def resolve_path(self, rel: str) -> Path:
        return (self.base_dir / rel).resolve()

    def line(self, *path: str | int) -> int | None:
        return line_for(self.lines, tuple(path))

    def secret_keys(self, *path: str | int) -> frozenset[str]:
        """The keys of the mapping at `path` whose values read a secret when rendered, e.g. the
        `env:` names of a Job that must be passed from a Secret."""
        n = len(path)
        return frozenset(str(p[n]) for p, used in self.secret_uses.items() if used and len(p) == n + 1 and p[:n] == path)


def repository_root(start: Path) -> Path:
    try:
        out = subprocess.run(
            ["git", "-C", str(start), "rev-parse", "--show-toplevel"], capture_output=True, text=True, timeout=5
        )
        if out.returncode == 0 and out.stdout.strip():
            return Path(out.stdout.strip()).resolve()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return start.resolve()


def env_secret_resolver(env: Mapping[str, str], from_cluster: SecretResolver | None = None) -> SecretResolver:
    """Environment variables on the runner; Kubernetes Secret references through `from_cluster`."""

    def resolve(name: str, ref: Any) -> str:
        if ref.from_env:
            if ref.from_env not in env:
                raise ConfigError(
                    f"secret {name!r} reads the environment variable {ref.from_env}, which is not set",
                    field=f"secrets.{name}.from_env",
                    hint=f"export {ref.from_env} on the CI runner (from your CI system's secret store)",
                )
            return env[ref.from_env]
        if from_cluster is not None:
            return from_cluster(name, ref)
        raise ConfigError(
            f"secret {name!r} is a Kubernetes Secret reference, which needs the cluster",
            field=f"secrets.{name}",
        )

    return resolve


def placeholder_resolver(name: str, ref: Any) -> str:
    """For `validate`: checks templates without needing secret values."""
    return f"<secret:{name}>"


def load_config(
    path: str | Path,
    ctx: CiContext,
    *,
    env_override: str | None = None,
    resolve_secret: SecretResolver | None = None,
    check_files: bool = True,
    values_override: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> LoadedConfig:
    """`values_override` replaces keys of `values:`; `overrides` (from --set and --values) may also name
    components, whose Helm values they are laid over."""
    file = Path(path)
    fname = str(file)
    raw, lines = parse_with_lines(read_text(file), fname)
    if not isinstance(raw, dict):
        raise ConfigError("the top level must be a mapping (name:, components:, ...)", file=fname, line=1)
    to_values = dict(values_override or {})
    to_components: dict[str, dict[str, Any]] = {}
    if overrides:
        more, to_components = split_overrides(overrides, _component_names(raw), (raw.get("values") or {}) if isinstance(raw.get("values"), dict) else {})
        to_values = merge_values(to_values, more)
        _override_components(raw, to_components, fname)
    if to_values:
        raw["values"] = merge_values(raw.get("values") if isinstance(raw.get("values"), dict) else {}, to_values)

    # Structure first, on the unrendered file: a typo'd key is reported as such, not as a template error.
    refs = _validate(raw, fname, lines).secrets
    app = raw["name"]
    prefix = (raw.get("namespace") or {}).get("prefix", "envci-")
    ident = identify(app, ctx, prefix=prefix, override=env_override)

    resolver = resolve_secret or placeholder_resolver
    cache: dict[str, str] = {}

    def secret(name: str) -> str:
        if name not in cache:
            value = resolver(name, refs[name])
            redact.register(value)
            cache[name] = value
        return cache[name]

    context = {
        "ci": ctx.as_template_context(),
        "env": {"name": ident.name, "namespace": ident.namespace, "app": app},
        "values": raw.get("values") or {},
        "secrets": LazySecrets(list(refs), secret),
    }
    secret_uses: dict[Path_, frozenset[str]] = {}
    try:
        rendered, problems = render_tree(raw, context, secret_uses=secret_uses)
    except ConfigError as e:
        raise ConfigError(e.detail, file=fname, field=e.field, hint=e.hint) from None
    if problems:
        raise ConfigErrors(
            [ConfigError(p.message, file=fname, line=line_for(lines, p.path), field=dotted(p.path), hint=p.hint) for p in problems]
        )
    spec = _validate(rendered, fname, lines)
    base = file.resolve().parent
    root = repository_root(base)
    errors = [_err(p.message, fname, lines, p.path, p.hint) for p in cross_problems(spec, secret_uses)]
    if check_files:
        errors += _check_files(spec, lines, fname, base, root)
    if errors:
        raise ConfigErrors(sorted(errors, key=lambda e: e.line or 0))  # in file order, as a reader fixes them
    digest = hashlib.sha256(
        json.dumps(redact_secrets(rendered, cache), sort_keys=True, default=str).encode()
    ).hexdigest()[:16]
    return LoadedConfig(
        spec=spec, identity=ident, file=file, base_dir=base, root=root, digest=digest, lines=lines, context=context, secret_uses=secret_uses,
        overrides=merge_values({"values": to_values} if to_values else {}, to_components),
    )


def _component_names(raw: Mapping[str, Any]) -> list[str]:
    comps = raw.get("components")
    return [str(c["name"]) for c in comps if isinstance(c, dict) and "name" in c] if isinstance(comps, list) else []


def _override_components(raw: dict[str, Any], overrides: Mapping[str, dict[str, Any]], fname: str) -> None:
    """Lay each component's overrides over its `helm.values`, the last layer Helm merges."""
    for comp in raw.get("components") or []:
        if not isinstance(comp, dict) or comp.get("name") not in overrides:
            continue
        name = comp["name"]
        helm = comp.get("helm")
        if not isinstance(helm, dict):
            raise ConfigError(
                f"component {name} is made from manifests, which have no values to override",
                file=fname, field="--set",
                hint=f"template what should change in its manifest, e.g. image: \"{{{{ values.{name}_image }}}}\", and pass --set {name}_image=REF",
            )
        helm["values"] = merge_values(helm.get("values") if isinstance(helm.get("values"), dict) else {}, overrides[name])


def redact_secrets(data: Any, values: Mapping[str, str]) -> Any:
    """The spec with resolved secret values masked, for digests and JSON output."""
    text = json.dumps(data, default=str)
    for v in sorted(values.values(), key=len, reverse=True):
        if v:
            text = text.replace(json.dumps(v)[1:-1], redact.MASK)
    return json.loads(text)


def _validate(data: dict[str, Any], fname: str, lines: dict[Path_, int]) -> Spec:
    try:
        return Spec.model_validate(data)
    except ValidationError as e:
        raise ConfigErrors(_merge_alternatives([_to_config_error(err, fname, lines) for err in e.errors()])) from None


def _merge_alternatives(errors: list[ConfigError]) -> list[ConfigError]:
    """One error per field: a value that fits no member of a union (`list[str] | str`) gets one
    error per member from pydantic, which reads as several problems where there is one."""
    out: list[ConfigError] = []
    for e in errors:
        last = out[-1] if out else None
        if last is not None and (last.line, last.field) == (e.line, e.field) and e.detail.startswith("Input should be "):
            detail = f"{last.detail} or {e.detail.removeprefix('Input should be ')}"
            out[-1] = ConfigError(detail, file=last.file, line=last.line, field=last.field, hint=last.hint)
        else:
            out.append(e)
    return out


def _to_config_error(err: Any, fname: str, lines: dict[Path_, int]) -> ConfigError:
    # Pydantic puts union tags in the location ("components", 0, "helm"...) plus discriminator tags
    # such as "sql"; drop the tags that are not real keys so the dotted path matches the file.
    loc: tuple[str | int, ...] = tuple(err["loc"])
    ctx = err.get("ctx") or {}
    if ctx.get("at"):  # a check across fields names the one it is about
        loc = (*loc, ctx["at"])
    real = _real_path(loc, lines)
    kind = err["type"]
    if kind == "extra_forbidden":
        msg, hint = "unknown key", "remove it or check its spelling against `envci schema`"
    elif kind == "missing":
        msg, hint = "required field is missing", "add it (see the envci.yaml reference in README)"
    else:
        msg = err["msg"].removeprefix("Value error, ")
        hint = ctx.get("hint") or _hint_for(kind)
    return ConfigError(msg, file=fname, line=line_for(lines, real), field=dotted(real), hint=hint)


_UNIONS = {"seed": {"sql", "restore", "s3", "job", "http", "exec"}, "test": {"command", "job", "helm_test"}}


def _real_path(loc: tuple[str | int, ...], lines: dict[Path_, int]) -> Path_:
    if len(loc) >= 3 and isinstance(loc[1], int) and loc[2] in _UNIONS.get(str(loc[0]), ()):
        loc = (*loc[:2], *loc[3:])  # pydantic names the member a step was read as; the file has no such level
    out: list[str | int] = []
    for part in loc:
        candidate = (*out, part)
        if candidate in lines or isinstance(part, int) or not any(k[: len(candidate)] == candidate for k in lines):
            # keep keys that exist in the file, indexes, and keys that are simply missing from it
            if isinstance(part, str) and candidate not in lines and _is_tag(part):
                continue
            out.append(part)
    return tuple(out)


_TAGS = {"sql", "restore", "s3", "job", "http", "exec", "command", "helm_test", "function-after", "function-before", "RestoreSource"}


_TYPE_TAGS = {"str", "int", "float", "bool", "none"}
"""How pydantic names the members of a plain union (`list[str] | str`) in an error's location."""


def _is_tag(part: str) -> bool:
    return part in _TAGS or part in _TYPE_TAGS or "[" in part


def _hint_for(kind: str) -> str:
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return "check the value's type against the envci.yaml reference"
    if kind in ("seed_kind", "test_kind"):
        return "see the seed/test reference in README"
    return "see the envci.yaml reference in README (`envci schema --format markdown`)"


def _err(msg: str, fname: str, lines: dict[Path_, int], path: Path_, hint: str | None = None) -> ConfigError:
    return ConfigError(msg, file=fname, line=line_for(lines, path), field=dotted(path), hint=hint)


def _inside(p: Path, root: Path) -> bool:
    try:
        p.resolve().relative_to(root)
        return True
    except ValueError:
        return False


def _check_files(spec: Spec, lines: dict[Path_, int], fname: str, base: Path, root: Path) -> list[ConfigError]:
    """Every local path must exist and stay inside the repository (no ../../etc/passwd charts)."""
    errors: list[ConfigError] = []

    def check(rel: str, at: Path_, *, is_glob: bool = False, want_dir: bool = False) -> None:
        p = base / rel
        if not _inside(p if not is_glob else Path(os.path.dirname(str(p)) or base), root):
            errors.append(_err(f"{rel!r} points outside the repository ({root})", fname, lines, at, "use a path inside the repository"))
            return
        if is_glob:
            matches = glob.glob(str(p), recursive=True)
            if not matches:
                errors.append(_err(f"{rel!r} matches no file", fname, lines, at, "check the path; it is relative to envci.yaml"))
            for m in matches:
                if not _inside(Path(m), root):
                    errors.append(_err(f"{m!r} points outside the repository", fname, lines, at))
            return
        if not p.exists():
            what = "chart directory" if want_dir else "file"
            errors.append(_err(f"{what} {rel!r} does not exist", fname, lines, at, "paths are relative to the directory of envci.yaml"))

    for i, c in enumerate(spec.components):
        if c.helm:
            chart = c.helm.chart
            if not c.helm.repo and not chart.startswith("oci://"):
                check(chart, ("components", i, "helm", "chart"), want_dir=True)
            for j, vf in enumerate(c.helm.values_files):
                check(vf, ("components", i, "helm", "values_files", j))
        for j, m in enumerate(c.manifests or []):
            check(m, ("components", i, "manifests", j), is_glob=True)
    for i, step in enumerate(spec.seed):
        for key in ("sql", "files"):
            for j, f in enumerate(getattr(step, key, None) or []):
                check(f, ("seed", i, key, j))
        s3 = getattr(step, "s3", None)
        if s3 and not getattr(step, "copy_from", None):
            check(s3, ("seed", i, "s3"), want_dir=True)
        if isinstance(step, RestoreSeed) and step.source.file:
            check(step.source.file, ("seed", i, "restore") if isinstance(step.restore, str) else ("seed", i, "restore", "file"))
    return errors
