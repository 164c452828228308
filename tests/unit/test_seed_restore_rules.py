"""Pure rules of the restore seeder: run once, dump formats, psql commands, error lines and hints."""

from __future__ import annotations

import pytest

from envci.config.model import RestoreSeed
from envci.seeders.restore import (
    PG_DUMP_OPTIONS,
    PG_RESTORE_OPTIONS,
    Counts,
    Source,
    copy_line,
    decide,
    dump_format,
    hint_for,
    is_setting,
    meta_refusal,
    source_of,
    summary_of,
)
from envci.seeders.sqltext import Statement

FILE = Source("file", "file:snap/shop.dump")
ENV = Source("environment", "env:shop-main")


def test_a_file_restores_once_per_content_and_again_when_it_changes() -> None:
    assert decide(FILE, "aaa", set()) == "restore"
    assert decide(FILE, "aaa", {(FILE.id, "aaa")}) == "skip"
    assert decide(FILE, "bbb", {(FILE.id, "aaa")}) == "again"
    assert decide(FILE, "aaa", {("file:other.sql", "aaa"), ("sql/001_schema.sql", "aaa")}) == "restore"


def test_a_live_source_restores_once_whatever_it_holds_now() -> None:
    assert decide(ENV, "", set()) == "restore"
    assert decide(ENV, "", {(ENV.id, "what it held then")}) == "skip"
    assert decide(ENV, "", {("env:shop-main-2", "x")}) == "restore"


def test_the_dump_format_comes_from_the_first_bytes() -> None:
    assert dump_format(b"PGDMP\x01\x0e\x00") == "archive"
    assert dump_format(b"x" * 257 + b"ustar\x0000") == "archive"
    assert dump_format(b"", is_dir=True) == "archive"
    assert dump_format(b"\x1f\x8b\x08\x00") == "gzip"
    assert dump_format(b"--\n-- PostgreSQL database dump\n") == "plain"
    assert dump_format(b"") == "plain"


def test_psql_commands_pg_dump_writes_are_passed_over_and_others_refused() -> None:
    assert meta_refusal("\\restrict Hk2xq") is None and meta_refusal("\\unrestrict Hk2xq") is None
    assert "switches to another database" in (meta_refusal("\\connect shop") or "")
    assert "switches to another database" in (meta_refusal("\\c shop") or "")
    assert meta_refusal("\\! rm -rf /") == "the psql command `\\!` is not supported (only SQL and COPY data are)"
    assert "`\\i`" in (meta_refusal("\\i other.sql") or "")


@pytest.mark.parametrize(("text", "expected"), [
    ("SET transaction_timeout = 0", True),
    ("SET default_table_access_method = heap", True),
    ("-- preamble\nset session statement_timeout TO 0", True),
    ("SELECT pg_catalog.set_config('search_path', '', false)", False),
    ("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", False),
    ("SETTINGS", False),
    ("CREATE TABLE settings (x int)", False),
])
def test_which_statements_set_a_parameter(text: str, expected: bool) -> None:
    assert is_setting(Statement(text, 1)) is expected


def test_a_copy_error_is_pinned_to_the_row() -> None:
    assert copy_line('COPY products, line 2, column price_cents: "lots"', first_row_line=80) == 81
    assert copy_line("COPY products, line 1", first_row_line=80) == 80
    assert copy_line(None, 80) is None and copy_line("SQL function", 80) is None


def test_hints_say_why_and_that_nothing_was_kept() -> None:
    assert "restore into an empty database" in hint_for("42P07", 'relation "products" already exists')
    assert "--clean --if-exists" in hint_for("42723", 'function "f" already exists')
    assert "--exclude-table='*.envci_seed_history'" in hint_for("42P07", 'relation "envci_seed_history" already exists')
    assert "--no-owner --no-privileges" in hint_for("42704", 'role "alice" does not exist')
    for hint in (hint_for("22P02", "invalid input"), hint_for(None, "")):
        assert hint.startswith("nothing of the restore was kept")


def test_every_dump_envci_takes_leaves_out_what_cannot_or_must_not_come_along() -> None:
    for options in (PG_DUMP_OPTIONS, PG_RESTORE_OPTIONS):
        assert {"--no-owner", "--no-privileges", "--no-subscriptions", "--no-publications"} <= set(options)
    assert "--exclude-table=*.envci_seed_history" in PG_DUMP_OPTIONS and "--format=plain" in PG_DUMP_OPTIONS
    assert "--no-password" in PG_DUMP_OPTIONS  # a prompt would hang a CI job


def test_sources_as_steps_name_them() -> None:
    def step(restore: object, **more: object) -> RestoreSeed:
        return RestoreSeed.model_validate({"restore": restore, "component": "db", **more})

    assert source_of(step("snap/shop.dump")) == FILE
    assert source_of(step({"file": "snap/shop.dump"})) == FILE
    assert source_of(step({"environment": "shop-main"}, allow=["env:shop-main"])) == ENV
    assert source_of(step({"url_secret": "snap"}, allow=["postgresql://db"])).id == "url_secret:snap"


def test_summaries() -> None:
    assert summary_of(ENV, "shop", None) == "env:shop-main already restored into shop"
    assert summary_of(ENV, "shop", Counts(statements=12, rows=1203, tables=3)) == (
        "restored env:shop-main into shop: 12 statement(s), 1203 row(s) in 3 table(s)"
    )
    assert summary_of(FILE, "shop", Counts(statements=2)) == "restored file:snap/shop.dump into shop: 2 statement(s), 0 row(s)"
