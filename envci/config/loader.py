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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from envci import redact
from envci.config.model import Spec
from envci.config.overrides import merge as merge_values
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

    def resolve_path(self, rel: str) -> Path:
        return (self.base_dir / rel).resolve()

    def line(self, *path: str | int) -> int | None:
        return line_for(self.lines, tuple(path))


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
) -> LoadedConfig:
    file = Path(path)
    fname = str(file)
    raw, lines = parse_with_lines(read_text(file), fname)
    if not isinstance(raw, dict):
        raise ConfigError("the top level must be a mapping (name:, components:, ...)", file=fname, line=1)
    if values_override:
        raw["values"] = merge_values(raw.get("values") if isinstance(raw.get("values"), dict) else {}, values_override)

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
    try:
        rendered, problems = render_tree(raw, context)
    except ConfigError as e:
        raise ConfigError(e.detail, file=fname, field=e.field, hint=e.hint) from None
    if problems:
        raise ConfigErrors(
            [ConfigError(p.message, file=fname, line=line_for(lines, p.path), field=dotted(p.path), hint=p.hint) for p in problems]
        )
    spec = _validate(rendered, fname, lines)
    base = file.resolve().parent
    root = repository_root(base)
    errors = _check_references(spec, lines, fname)
    if check_files:
        errors += _check_files(spec, lines, fname, base, root)
    if errors:
        raise ConfigErrors(errors)
    digest = hashlib.sha256(
        json.dumps(redact_secrets(rendered, cache), sort_keys=True, default=str).encode()
    ).hexdigest()[:16]
    return LoadedConfig(spec=spec, identity=ident, file=file, base_dir=base, root=root, digest=digest, lines=lines, context=context)


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
        raise ConfigErrors([_to_config_error(err, fname, lines) for err in e.errors()]) from None


def _to_config_error(err: Any, fname: str, lines: dict[Path_, int]) -> ConfigError:
    # Pydantic puts union tags in the location ("components", 0, "helm"...) plus discriminator tags
    # such as "sql"; drop the tags that are not real keys so the dotted path matches the file.
    loc: tuple[str | int, ...] = tuple(err["loc"])
    real = _real_path(loc, lines)
    kind = err["type"]
    if kind == "extra_forbidden":
        msg, hint = "unknown key", "remove it or check its spelling against `envci schema`"
    elif kind == "missing":
        msg, hint = "required field is missing", "add it (see the envci.yaml reference in README)"
    else:
        msg = err["msg"].removeprefix("Value error, ")
        hint = _hint_for(kind)
    return ConfigError(msg, file=fname, line=line_for(lines, real), field=dotted(real), hint=hint)


def _real_path(loc: tuple[str | int, ...], lines: dict[Path_, int]) -> Path_:
    out: list[str | int] = []
    for part in loc:
        candidate = (*out, part)
        if candidate in lines or isinstance(part, int) or not any(k[: len(candidate)] == candidate for k in lines):
            # keep keys that exist in the file, indexes, and keys that are simply missing from it
            if isinstance(part, str) and candidate not in lines and _is_tag(part):
                continue
            out.append(part)
    return tuple(out)


_TAGS = {"sql", "s3", "job", "http", "exec", "command", "helm_test", "function-after", "function-before"}


def _is_tag(part: str) -> bool:
    return part in _TAGS or "[" in part


def _hint_for(kind: str) -> str | None:
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return "check the value's type against the envci.yaml reference"
    if kind in ("seed_kind", "test_kind"):
        return "see the seed/test reference in README"
    return None


def _check_references(spec: Spec, lines: dict[Path_, int], fname: str) -> list[ConfigError]:
    errors: list[ConfigError] = []
    names = [c.name for c in spec.components]
    seen: set[str] = set()
    for i, c in enumerate(spec.components):
        if c.name in seen:
            errors.append(_err(f"duplicate component name {c.name!r}", fname, lines, ("components", i, "name"), "names must be unique"))
        seen.add(c.name)
        for j, dep in enumerate(c.depends_on):
            if dep not in names:
                errors.append(
                    _err(f"depends on unknown component {dep!r}", fname, lines, ("components", i, "depends_on", j), f"known: {', '.join(names)}")
                )
    from envci.plan import CycleError, install_order

    try:
        install_order(spec.components)
    except CycleError as e:
        errors.append(_err(str(e), fname, lines, ("components",), "remove one depends_on from the cycle"))
    return errors


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
    return errors
