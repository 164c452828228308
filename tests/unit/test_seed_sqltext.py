"""The SQL splitter and error-line mapping the sql seeder relies on."""

from __future__ import annotations

from envci.seeders.sqltext import Statement, checksum, split_statements


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
