"""YAML parsing that remembers where every value came from, so errors can say file:line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from envci.errors import ConfigError

Path_ = tuple[str | int, ...]


def parse_with_lines(text: str, file: str) -> tuple[Any, dict[Path_, int]]:
    """Parse YAML text; return the data and a map from each value's path to its 1-based line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(
            f"not valid YAML: {e.problem or e}", file=file, line=line, hint="check indentation and quoting"
        ) from None
    except yaml.reader.ReaderError as e:  # a character YAML does not allow (a control character, a stray NUL)
        line = text.count("\n", 0, e.position) + 1
        raise ConfigError(
            f"not valid YAML: character {e.character:#06x} is not allowed in YAML", file=file, line=line,
            hint="remove the control character (an editor or a paste left it)",
        ) from None
    lines: dict[Path_, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return data, lines


def _walk(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            # A key's own line is the useful one for "unknown key" errors.
            lines[path + (key,)] = key_node.start_mark.line + 1
            _walk(value_node, path + (key,), lines)
            lines[path + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, path + (i,), lines)


def line_for(lines: dict[Path_, int], path: Path_) -> int | None:
    """The line of the deepest known prefix of `path` (pydantic may point below what YAML had)."""
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def dotted(path: Path_) -> str:
    """`components[0].helm.chart` style, the way users read a field's name."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            "file not found", file=str(path), hint="pass --config PATH or create envci.yaml (see README)"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read: {e}", file=str(path)) from None
