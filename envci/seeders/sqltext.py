"""Pure SQL text handling for the sql seeder: split a file into statements, map errors to lines.

PostgreSQL reports an error's position inside the statement it was given, and only for some
errors; running one statement at a time means every error, positioned or not, can be pinned to a
file and line. The splitter understands what can hide a `;`: quoted strings ('..', E'..\\'..'),
quoted identifiers, dollar quoting ($$..$$, $tag$..$tag$), line comments and nested block comments.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$")


@dataclass(frozen=True)
class Statement:
    text: str
    """The statement as sent to the server, from its first non-blank character, without the `;`."""
    line: int
    """1-based line in the file where `text` starts (a comment before the statement included)."""

    @property
    def code_start(self) -> int:
        """Index in `text` of the statement's first character that is not blank or a comment."""
        return _code_start(self.text)

    @property
    def first_line(self) -> str:
        """The statement's first line of code, for messages (leading comments skipped)."""
        lines = self.text[self.code_start:].splitlines()
        return lines[0] if lines else ""

    def line_at(self, position: int | None) -> int:
        """The file line of a 1-based character position inside `text` (PostgreSQL's
        statement_position); the line where the statement's code starts when the server gave
        none (many errors have none: a relation that already exists, a unique violation)."""
        if not position or position < 1:
            position = self.code_start + 1
        return self.line + self.text.count("\n", 0, position - 1)


def checksum(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _code_start(text: str) -> int:
    """Index of the first character of `text` that is not whitespace or in a comment; len(text) if none."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif text.startswith("--", i):
            nl = text.find("\n", i)
            i = n if nl < 0 else nl + 1
        elif text.startswith("/*", i):
            i = _skip_block_comment(text, i)
        else:
            return i
    return n


def _has_code(text: str) -> bool:
    """True unless `text` is only whitespace and comments."""
    return _code_start(text) < len(text)


def _skip_block_comment(text: str, i: int) -> int:
    """Index just after the block comment starting at i; PostgreSQL block comments nest."""
    depth, n = 0, len(text)
    while i < n:
        if text.startswith("/*", i):
            depth += 1
            i += 2
        elif text.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return n


def _skip_quoted(text: str, i: int, quote: str, backslash: bool) -> int:
    """Index just after the quoted run starting at i (text[i] == quote); doubled quotes escape."""
    i += 1
    n = len(text)
    while i < n:
        c = text[i]
        if backslash and c == "\\":
            i += 2
            continue
        if c == quote:
            if i + 1 < n and text[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return n


def split_statements(text: str) -> list[Statement]:
    """The statements of a SQL file, in order, each with the line it starts on."""
    out: list[Statement] = []
    start = 0
    i, n = 0, len(text)

    def flush(end: int) -> None:
        chunk = text[start:end]
        if not _has_code(chunk):
            return
        lead = len(chunk) - len(chunk.lstrip())
        body = chunk[lead:].rstrip()
        out.append(Statement(body, text.count("\n", 0, start + lead) + 1))

    while i < n:
        c = text[i]
        if text.startswith("--", i):
            nl = text.find("\n", i)
            i = n if nl < 0 else nl + 1
        elif text.startswith("/*", i):
            i = _skip_block_comment(text, i)
        elif c == "'":
            escaped = i > 0 and text[i - 1] in "eE" and (i < 2 or not (text[i - 2].isalnum() or text[i - 2] == "_"))
            i = _skip_quoted(text, i, "'", escaped)
        elif c == '"':
            i = _skip_quoted(text, i, '"', False)
        elif c == "$" and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = _DOLLAR_TAG.match(text, i)
            if m:
                close = text.find(m.group(0), m.end())
                i = n if close < 0 else close + len(m.group(0))
            else:
                i += 1  # a parameter such as $1
        elif c == ";":
            flush(i)
            i += 1
            start = i
        else:
            i += 1
    flush(n)
    return out
