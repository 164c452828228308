"""Jinja2 rendering of every string in envci.yaml.

A sandboxed environment refuses attribute access to Python internals (`''.__class__`), and
StrictUndefined turns a misspelt variable into an error instead of an empty string that would
silently produce a wrong environment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from envci.config.yamlpos import Path_

_env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)


class TemplateProblem(Exception):
    def __init__(self, path: Path_, message: str, hint: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
        self.hint = hint


class LazySecrets(Mapping[str, str]):
    """`secrets.NAME` in templates: resolved only when a template uses it."""

    def __init__(self, names: list[str], resolve: Callable[[str], str]) -> None:
        self._names = names
        self._resolve = resolve
        self.reads: list[str] = []
        """Every secret read, in order: render_tree tells from it which values used which secrets."""

    def __getitem__(self, key: str) -> str:
        if key not in self._names:
            raise KeyError(key)
        self.reads.append(key)
        return self._resolve(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def _cut(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def render_string(text: str, context: Mapping[str, Any]) -> str:
    if "{{" not in text and "{%" not in text:
        return text
    return _env.from_string(text).render(context)


def render_tree(
    data: Any, context: Mapping[str, Any], path: Path_ = (), *, secret_uses: dict[Path_, frozenset[str]] | None = None
) -> tuple[Any, list[TemplateProblem]]:
    """Render every string value (not keys); collect every problem instead of stopping at the first.

    With `secret_uses`, also record which secrets each value read (when `secrets` in the context
    is a LazySecrets): a value holding a secret must be handled as one after rendering, e.g. passed
    to a Job from a Secret rather than written into its spec."""
    problems: list[TemplateProblem] = []
    secrets = context.get("secrets")
    tracked = secrets if isinstance(secrets, LazySecrets) and secret_uses is not None else None

    def render(node: str, at: Path_) -> str:
        before = len(tracked.reads) if tracked is not None else 0
        out = render_string(node, context)
        if tracked is not None and secret_uses is not None and len(tracked.reads) > before:
            secret_uses[at] = frozenset(tracked.reads[before:])
        return out

    def walk(node: Any, at: Path_) -> Any:
        if isinstance(node, str):
            try:
                return render(node, at)
            except SecurityError as e:
                problems.append(
                    TemplateProblem(at, f"template refused by the sandbox: {e}", "templates may only read ci, env, values and secrets")
                )
            except jinja2.UndefinedError as e:
                msg = str(e)
                if "unsafe" in msg:
                    problems.append(
                        TemplateProblem(at, f"template refused by the sandbox: {msg}", "templates may only read ci, env, values and secrets")
                    )
                else:
                    problems.append(
                        TemplateProblem(at, f"undefined template variable: {msg}", "available: ci.*, env.name, env.namespace, values.*, secrets.*")
                    )
            except jinja2.TemplateSyntaxError as e:
                problems.append(TemplateProblem(at, f"template syntax error: {e.message}", "check the {{ }} and {% %} pairs"))
            except jinja2.TemplateError as e:
                problems.append(TemplateProblem(at, f"template error: {e}", "see the Jinja2 template documentation"))
            except (ArithmeticError, TypeError, ValueError, LookupError, AttributeError) as e:
                # An expression that parses but cannot be evaluated: `{{ -env.name }}`, `{{ 1 / 0 }}`.
                problems.append(TemplateProblem(at, f"template cannot be evaluated: {type(e).__name__}: {_cut(str(e))}",
                                                "check the operators and filters used on these values"))
            return node
        if isinstance(node, dict):
            return {k: walk(v, at + (k,)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, at + (i,)) for i, v in enumerate(node)]
        return node

    return walk(data, path), problems
