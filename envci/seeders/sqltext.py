"""Pure SQL text handling for the sql and restore seeders: split a file into statements, read a
psql script (COPY data, meta-commands) as it streams in, map errors to lines.

PostgreSQL reports an error's position inside the statement it was given, and only for some
errors; running one statement at a time means every error, positioned or not, can be pinned to a
file and line. The splitter understands what can hide a `;`: quoted strings ('..', E'..\\'..'),
quoted identifiers, dollar quoting ($$..$$, $tag$..$tag$), line comments and nested block comments.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
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


def _statement_ends(text: str) -> Iterator[int]:
    """Indexes of the `;` that end statements in `text`, in order (never one inside a string,
    an identifier, a comment or a dollar-quoted body). A construct left open at the end of `text`
    hides everything after it: fed more text, a caller scans again from the statement's start."""
    i, n = 0, len(text)
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
            yield i
            i += 1
        else:
            i += 1


def _statement(text: str, start: int, end: int, first_line: int) -> Statement | None:
    """The statement in text[start:end] (None if it holds no code); `first_line` is the line of text[0]."""
    chunk = text[start:end]
    if not _has_code(chunk):
        return None
    lead = len(chunk) - len(chunk.lstrip())
    return Statement(chunk[lead:].rstrip(), first_line + text.count("\n", 0, start + lead))


def split_statements(text: str) -> list[Statement]:
    """The statements of a SQL file, in order, each with the line it starts on."""
    out: list[Statement] = []
    start = 0
    for end in (*_statement_ends(text), len(text)):
        st = _statement(text, start, end, 1)
        if st is not None:
            out.append(st)
        start = end + 1
    return out


class Splitter:
    """`split_statements` for text that arrives a line at a time (a dump streamed from pg_dump),
    with the same rules. Feed it whole lines, newline included."""

    def __init__(self) -> None:
        self._buf = ""
        self._line = 1
        """The line of the input where `_buf` starts."""

    def feed(self, line: str) -> list[Statement]:
        """The statements that this line completes."""
        self._buf += line
        if ";" not in line:
            return []  # a statement ends only at a `;`: no need to scan the whole statement again
        out: list[Statement] = []
        start = 0
        for end in _statement_ends(self._buf):
            st = _statement(self._buf, start, end, self._line)
            if st is not None:
                out.append(st)
            start = end + 1
        if start:
            self._line += self._buf.count("\n", 0, start)
            self._buf = self._buf[start:]
        return out

    @property
    def between_statements(self) -> bool:
        """True when no statement has begun: what was fed since the last `;` is blank or comments."""
        return not _has_code(self._buf)

    def skip(self, lines: int) -> None:
        """Count `lines` lines that are not SQL (COPY data, a psql meta-command) without feeding them;
        only between statements."""
        if not self.between_statements:
            raise ValueError("skip() inside a statement")
        self._line += self._buf.count("\n") + lines
        self._buf = ""

    def finish(self) -> list[Statement]:
        """The last statement, when the input ends without its `;`."""
        st = _statement(self._buf, 0, len(self._buf), self._line)
        self._buf = ""
        return [st] if st is not None else []


# --- psql scripts: statements, COPY data and meta-commands --------------------------------------

_COPY_FROM_STDIN = re.compile(r"COPY\b.*\bFROM\s+STDIN\b", re.IGNORECASE | re.DOTALL)
COPY_END = "\\."
"""The line that ends the data of `COPY ... FROM stdin` in a script."""


class ScriptError(ValueError):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class CopyIn:
    """A `COPY ... FROM stdin` statement and the data lines after it, streamed: read `rows` to the
    end before the next item (read_script drains what is left)."""

    statement: Statement
    first_row_line: int
    rows: Iterator[str]


@dataclass(frozen=True)
class MetaCommand:
    """A psql backslash command on its own line between statements (`\\connect db`, `\\restrict key`)."""

    text: str
    line: int


ScriptItem = Statement | CopyIn | MetaCommand


def is_copy_from_stdin(st: Statement) -> bool:
    return bool(_COPY_FROM_STDIN.match(st.text, st.code_start))


def read_script(lines: Iterable[str]) -> Iterator[ScriptItem]:
    """The items of a psql script (what `pg_dump` writes in plain format), in order, as they arrive.

    Raises ScriptError for COPY data that never ends and for text after `COPY ... FROM stdin;` on
    its line (psql reads the data from the next line on, so such text would be lost)."""
    numbered = enumerate(lines, 1)
    splitter = Splitter()
    for number, line in numbered:
        if splitter.between_statements and line.lstrip().startswith("\\"):
            splitter.skip(1)
            yield MetaCommand(line.strip(), number)
            continue
        statements = splitter.feed(line)
        for k, st in enumerate(statements):
            if not is_copy_from_stdin(st):
                yield st
                continue
            if k != len(statements) - 1 or not splitter.between_statements:
                raise ScriptError("text after `COPY ... FROM stdin;` on the same line: the data must start on the next line", number)
            counted = [0]
            rows = _copy_rows(numbered, counted, st.line)
            yield CopyIn(st, number + 1, rows)
            for _ in rows:  # what the consumer left unread
                pass
            splitter.skip(counted[0])
    yield from splitter.finish()


def _copy_rows(numbered: Iterator[tuple[int, str]], counted: list[int], copy_line: int) -> Iterator[str]:
    for _, line in numbered:
        counted[0] += 1
        if line.rstrip("\r\n") == COPY_END:
            return
        yield line
    raise ScriptError(f"the data of the COPY at line {copy_line} has no end line `{COPY_END}`", copy_line)
