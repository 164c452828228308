"""Pure rules of the s3 seeder: bucket names, URLs, keys, skip decisions."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from envci.s3names import bucket_name, check_bucket_name, parse_s3_url
from envci.seeders.s3 import Remote, local_files, md5_etag, needs_copy, needs_upload, object_key


@pytest.mark.parametrize("env", ["shop-pr-12", "Shop_PR.12", "a", "x" * 80, "shop-main-" + "a" * 60])
def test_bucket_names_are_always_valid(env: str) -> None:
    name = bucket_name(env)
    assert check_bucket_name(name) is None, name


def test_bucket_name_is_stable_and_long_names_stay_distinct() -> None:
    assert bucket_name("shop-pr-12") == "shop-pr-12"
    assert bucket_name("x" * 80) == bucket_name("x" * 80)
    assert bucket_name("x" * 80) != bucket_name("x" * 81)


def test_check_bucket_name_explains() -> None:
    assert check_bucket_name("ab") and check_bucket_name("Upper") and check_bucket_name("1.2.3.4") and check_bucket_name("a..b")


def test_parse_s3_url() -> None:
    assert parse_s3_url("s3://golden/fixtures/v1") == ("golden", "fixtures/v1")
    assert parse_s3_url("s3://golden") == ("golden", "")
    with pytest.raises(ValueError):
        parse_s3_url("https://golden")


def test_object_key_joins_prefix() -> None:
    assert object_key("", "a/b.json") == "a/b.json"
    assert object_key("/seed/", "a.json") == "seed/a.json"


def test_needs_upload_compares_size_and_etag() -> None:
    data = b"hello"
    etag = md5_etag(data)
    assert not needs_upload(5, etag, Remote(5, etag))
    assert needs_upload(5, etag, None)
    assert needs_upload(5, etag, Remote(6, etag))
    assert needs_upload(5, etag, Remote(5, '"0123"'))


def test_local_files_are_sorted_and_relative(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.json").write_text("{}")
    (tmp_path / "1.csv").write_text("x")
    assert [r for r, _ in local_files(tmp_path)] == ["1.csv", "b/2.json"]


T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def test_needs_copy_knows_a_copy_of_a_multipart_object_by_its_time() -> None:
    single = Remote(5, '"5d41402abc4b2a76b9719d911017c592"', T0)
    assert needs_copy(single, None)
    assert not needs_copy(single, Remote(5, single.etag, T0 - timedelta(days=1)))  # the same bytes, whenever
    assert needs_copy(single, Remote(5, '"0123"', T0 + timedelta(seconds=5)))  # different bytes, however new
    multipart = Remote(5 * 2**20 + 4, '"298c9a5c8205ea8eeef29652993678aa-2"', T0)
    copied = Remote(multipart.size, '"68a3e0d844c8743120a7557537c587b4"', T0 + timedelta(seconds=1))
    assert not needs_copy(multipart, copied)
    assert needs_copy(multipart, Remote(copied.size, copied.etag, T0))  # in the same second: it may have changed since
    assert needs_copy(multipart, Remote(copied.size + 1, copied.etag, T0 + timedelta(days=1)))
    assert needs_copy(multipart, Remote(copied.size, copied.etag, None))
