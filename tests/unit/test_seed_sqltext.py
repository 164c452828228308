"""The SQL splitter and error-line mapping the sql seeder relies on, and the psql-script reader of
the restore seeder (the same splitter, fed a line at a time)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from envci.seeders.sqltext import CopyIn, MetaCommand, ScriptError, Splitter, Statement, checksum, read_script, split_statements


def texts(sql: str) -> list[str]:
    return [s.text for s in split_statements(sql)]


def test_splits_on_semicolons_and_keeps_start_lines() -> None:
    sql = "CREATE TABLE a (x int);\n\nINSERT INTO a VALUES (1);\n  INSERT INTO a\n  VALUES (2)\n;\n"
    got = split_statements(sql)
    assert [s.line for s in got] == [1, 3, 4]
    assert got[2].text == "INSERT INTO a\n  VALUES (2)"


def test_semicolons_inside_strings_identifiers_and_comments_do_not_split() -> None:
    sql = (
        "INSERT INTO t VALUES ('a;b', 'it''s; fine');\n"
        'SELECT 1 AS "x;y";\n'
        "-- a comment; with a semicolon\n"
        "SELECT /* block; /* nested; */ still; */ 2;\n"
        "SELECT E'back\\'slash;';\n"
    )
    assert texts(sql) == [
        "INSERT INTO t VALUES ('a;b', 'it''s; fine')",
        'SELECT 1 AS "x;y"',
        "-- a comment; with a semicolon\nSELECT /* block; /* nested; */ still; */ 2",
        "SELECT E'back\\'slash;'",
    ]


def test_dollar_quoted_function_bodies_stay_whole() -> None:
    sql = (
        "CREATE FUNCTION f() RETURNS int AS $$\nBEGIN\n  RETURN 1;\nEND;\n$$ LANGUAGE plpgsql;\n"
        "CREATE FUNCTION g() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;\n"
        "PREPARE q AS SELECT $1::int;\n"
    )
    got = split_statements(sql)
    assert len(got) == 3
    assert got[0].text.endswith("$$ LANGUAGE plpgsql") and "RETURN 1;" in got[0].text
    assert got[1].line == 6 and "$body$ SELECT 1; $body$" in got[1].text
    assert got[2].text == "PREPARE q AS SELECT $1::int"


def test_comment_only_and_empty_chunks_are_dropped() -> None:
    assert texts("-- nothing\n;\n/* x */;\n\n") == []
    assert texts("SELECT 1") == ["SELECT 1"]  # no trailing semicolon


def test_error_position_maps_to_the_file_line() -> None:
    st = Statement("INSERT INTO t\n  VALUES (1,\n    oops)", line=10)
    assert st.line_at(None) == 10
    assert st.line_at(1) == 10
    assert st.line_at(st.text.index("oops") + 1) == 12


def test_an_error_without_position_points_at_the_code_not_the_comment_above_it() -> None:
    # "relation already exists" and unique violations come without a position
    (st,) = split_statements("-- Tables of the shop.\n/* v2 */\n\nCREATE TABLE products (\n  id int\n);\n")
    assert st.line == 1  # the text sent to the server keeps its comments (positions count them)
    assert st.line_at(None) == 4 and st.first_line == "CREATE TABLE products ("
    assert st.line_at(st.text.index("id int") + 1) == 5


def test_checksum_is_content_based() -> None:
    assert checksum("a") == checksum("a") != checksum("b")


def fed_by_lines(text: str) -> list[Statement]:
    splitter = Splitter()
    out = [s for line in text.splitlines(keepends=True) for s in splitter.feed(line)]
    return out + splitter.finish()


SAMPLES = [
    "CREATE TABLE a (x int);\n\nINSERT INTO a VALUES (1);\n  INSERT INTO a\n  VALUES (2)\n;\n",
    "INSERT INTO t VALUES ('a;b', 'it''s; fine');\nSELECT 1 AS \"x;y\";\n-- c; d\nSELECT /* b; /* n; */ s; */ 2;\nSELECT E'b\\'s;';\n",
    "CREATE FUNCTION f() RETURNS int AS $$\nBEGIN\n  RETURN 1;\nEND;\n$$ LANGUAGE plpgsql; SELECT 2; SELECT\n3;\n",
    "INSERT INTO t VALUES ('line one;\nline two');\nSELECT 'x'\n",
    "-- nothing\n;\n/* x */;\n\n",
]


@pytest.mark.parametrize("text", SAMPLES)
def test_fed_a_line_at_a_time_the_splitter_finds_what_it_finds_in_the_whole(text: str) -> None:
    assert fed_by_lines(text) == split_statements(text)


@given(st.lists(st.sampled_from(["SELECT 1", ";", "'a;\nb'", '"q;"', "$$x;\n$$", "-- c;\n", "/* c;\n */", "\n", " ", "E'\\';'"]),
                max_size=30))
def test_any_text_splits_the_same_fed_whole_or_in_lines(parts: list[str]) -> None:
    text = "".join(parts)
    assert fed_by_lines(text) == split_statements(text)


DUMP = """\
--
-- PostgreSQL database dump
--

\\restrict abc

SET statement_timeout = 0;
CREATE TABLE public.t (
    x integer,
    note text
);

COPY public.t (x, note) FROM stdin;
1\tsemi; colon
2\t\\N
\\.

SELECT pg_catalog.setval('public.t_x_seq', 2, true);

\\unrestrict abc
"""


def test_a_script_reads_as_statements_copy_data_and_psql_commands_with_their_lines() -> None:
    items = []
    for item in read_script(DUMP.splitlines(keepends=True)):
        if isinstance(item, CopyIn):
            items.append(("copy", item.statement.line, item.first_row_line, list(item.rows)))
        elif isinstance(item, MetaCommand):
            items.append(("meta", item.line, item.text))
        else:
            items.append(("sql", item.line_at(None), item.first_line))
    assert items == [
        ("meta", 5, "\\restrict abc"),
        ("sql", 7, "SET statement_timeout = 0"),
        ("sql", 8, "CREATE TABLE public.t ("),
        ("copy", 13, 14, ["1\tsemi; colon\n", "2\t\\N\n"]),
        ("sql", 18, "SELECT pg_catalog.setval('public.t_x_seq', 2, true)"),
        ("meta", 20, "\\unrestrict abc"),
    ]


def test_copy_rows_left_unread_are_skipped_not_taken_for_sql() -> None:
    items = [i for i in read_script(DUMP.splitlines(keepends=True)) if not isinstance(i, MetaCommand)]
    assert [type(i).__name__ for i in items] == ["Statement", "Statement", "CopyIn", "Statement"]
    assert isinstance(items[3], Statement) and items[3].line == 18


def test_a_backslash_inside_a_statement_is_sql_not_a_psql_command() -> None:
    (st_,) = read_script(["SELECT E'a\n", "\\b';\n"])
    assert isinstance(st_, Statement) and st_.text == "SELECT E'a\n\\b'"


@pytest.mark.parametrize(("script", "line", "words"), [
    ("COPY t FROM stdin;\n1\n2\n", 1, "the data of the COPY at line 1 has no end line `\\.`"),
    ("SELECT 1;\nCOPY t (x) FROM STDIN; SELECT 2;\n1\n\\.\n", 2, "text after `COPY ... FROM stdin;`"),
])
def test_scripts_that_cannot_be_read(script: str, line: int, words: str) -> None:
    with pytest.raises(ScriptError) as info:
        for item in read_script(script.splitlines(keepends=True)):
            if isinstance(item, CopyIn):
                list(item.rows)
    assert info.value.line == line and words in str(info.value)
