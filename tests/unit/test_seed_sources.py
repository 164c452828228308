"""The allow-list rule of sources a seed step copies from (envci.sources): canonical names, entries
and what they cover."""

from __future__ import annotations

import pytest

from envci.sources import allowed, covers, entry_problem, env_source, normalize, pg_sources, refusal, s3_source

PG_OR_ENV = ("env:", "postgresql://")


def test_sources_are_named_by_where_the_data_lives_and_nothing_secret() -> None:
    assert env_source("shop-main") == "env:shop-main"
    assert s3_source("golden", "/v1/") == "s3://golden/v1" and s3_source("golden", "") == "s3://golden"
    params = {"host": "DB.Internal", "port": "6432", "dbname": "shop", "user": "admin", "password": "hunter2"}
    assert pg_sources(params) == ["postgresql://db.internal:6432/shop"]
    assert pg_sources({"host": "db", "user": "app"}) == ["postgresql://db:5432/app"]  # libpq's default database: the user's name
    assert pg_sources({"hostaddr": "10.0.0.5", "dbname": "shop"}) == ["postgresql://10.0.0.5:5432/shop"]


def test_a_url_with_several_hosts_is_each_of_them() -> None:
    assert pg_sources({"host": "a,b", "port": "5432,6432", "dbname": "shop"}) == ["postgresql://a:5432/shop", "postgresql://b:6432/shop"]
    assert pg_sources({"host": "a,b", "port": "6000", "dbname": "shop"}) == ["postgresql://a:6000/shop", "postgresql://b:6000/shop"]


@pytest.mark.parametrize("params", [{"dbname": "shop"}, {"host": "/var/run/postgresql", "dbname": "shop"}])
def test_a_url_without_a_host_is_no_source(params: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="names no host"):
        pg_sources(params)


@pytest.mark.parametrize(("entry", "problem"), [
    ("env:shop-main", None),
    ("postgres://staging-db/shop", None),
    ("POSTGRESQL://Staging-DB:6432", None),
    ("", "is empty"),
    ("env:{{ values.base }}", "is a template"),
    ("env:", "names no environment"),
    ("postgresql:///", "names no host"),
    ("postgresql://admin:pw@db/shop", "holds a user, a password or options"),
    ("postgresql://db/shop?sslmode=require", "holds a user, a password or options"),
    ("s3://golden", "is not a source this step reads; use env:NAME or postgresql://HOST[:PORT][/DATABASE]"),
    ("shop-main", "is not a source this step reads"),
])
def test_entries_are_checked(entry: str, problem: str | None) -> None:
    got = entry_problem(entry, PG_OR_ENV)
    assert got == problem if problem is None else problem in (got or ""), got


def test_entries_take_the_form_of_the_sources_they_cover() -> None:
    assert normalize("postgres://Staging-DB/shop") == "postgresql://staging-db:5432/shop"
    assert normalize("postgresql://db:6432/") == "postgresql://db:6432"
    assert normalize("postgresql://db-*") == "postgresql://db-*:5432"
    assert normalize("s3://golden/v1/") == "s3://golden/v1"
    assert normalize("env:shop-main") == "env:shop-main"


@pytest.mark.parametrize(("entry", "source", "expected"), [
    ("env:shop-main", "env:shop-main", True),
    ("env:shop-main", "env:shop-main-2", False),
    ("env:shop-pr-*", "env:shop-pr-12", True),
    ("env:shop-*", "env:shop-prod", True),  # `*` is any text: the list says what it allows
    ("postgresql://staging-db/shop", "postgresql://staging-db:5432/shop", True),
    ("postgresql://staging-db/shop", "postgresql://staging-db:6432/shop", False),
    ("postgresql://staging-db", "postgresql://staging-db:5432/anything", True),
    ("postgresql://staging-db", "postgresql://staging-db.prod:5432/shop", False),
    ("postgresql://127.0.0.1:*/shop_*", "postgresql://127.0.0.1:41234/shop_ab12", True),
    ("s3://golden", "s3://golden/v1", True),
    ("s3://golden/v1", "s3://golden/v1/images", True),
    ("s3://golden/v1", "s3://golden/v10", False),
    ("s3://golden", "s3://golden-prod/v1", False),
    ("s3://golden.v1", "s3://goldenxv1", False),  # only `*` is special, not `.` or `?`
])
def test_what_an_entry_covers(entry: str, source: str, expected: bool) -> None:
    assert covers(entry, source) is expected


def test_allowed_by_any_entry_and_refused_by_none() -> None:
    assert allowed("env:shop-main", ["env:shop-pr-*", "env:shop-main"])
    assert not allowed("env:shop-main", [])
    message, hint = refusal("env:shop-prod", ["env:shop-main"], "seed[2].allow")
    assert message == "copying from env:shop-prod is not allowed: no entry of `allow` covers it (allowed: env:shop-main)"
    assert hint.startswith('add "env:shop-prod" to seed[2].allow if this step is meant to copy from it')
    assert "(allowed: none)" in refusal("s3://x", [], "seed[0].allow")[0]
