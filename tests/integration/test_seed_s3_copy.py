"""`s3:` steps with `copy_from:` against a real S3-compatible server (moto's server mode): the
allow-list, and re-runs that copy nothing, a multipart source included.

The environment is a record in the in-memory cluster of tests/fakekube.py: copying needs no pod.
test_seed_s3.py covers the same step on the local cluster, with teardown.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from fakekube import FakeKube  # tests/ is on sys.path
from seedapp import load, reporter, write_app  # tests/integration is on sys.path

from envci.buckets import delete_bucket
from envci.config.loader import LoadedConfig
from envci.errors import ConfigError, ConfigErrors, ExitCode
from envci.stages.seed import seed

ACCESS, SECRET = "AKIDCOPYTEST", "s3-copy-secret-for-tests"
PART = 5 * 1024 * 1024
"""The smallest part S3 takes in a multipart upload, but the last."""


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in (("AWS_ACCESS_KEY_ID", ACCESS), ("AWS_SECRET_ACCESS_KEY", SECRET),
                        ("ENVCI_S3_ACCESS_KEY_ID", ACCESS), ("ENVCI_S3_SECRET_ACCESS_KEY", SECRET)):
        monkeypatch.setenv(name, value)
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")


@pytest.fixture
def golden(s3: Any, s3_endpoint: str) -> Iterator[str]:
    """A bucket to copy from: two objects under v1/ (one uploaded in two parts), one under v2/."""
    name = f"golden-{secrets.token_hex(4)}"
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="v1/a.json", Body=b'{"a": 1}')
    s3.put_object(Bucket=name, Key="v2/ignored.json", Body=b"{}")
    up = s3.create_multipart_upload(Bucket=name, Key="v1/big/blob.bin")
    parts = [s3.upload_part(Bucket=name, Key="v1/big/blob.bin", UploadId=up["UploadId"], PartNumber=n, Body=body)
             for n, body in ((1, b"x" * PART), (2, b"tail"))]
    s3.complete_multipart_upload(Bucket=name, Key="v1/big/blob.bin", UploadId=up["UploadId"],
                                 MultipartUpload={"Parts": [{"PartNumber": n, "ETag": p["ETag"]} for n, p in enumerate(parts, 1)]})
    # S3 keeps times to the second, and a copy made in the second its source was written is made
    # again on the next run (envci.seeders.s3.needs_copy): let that second pass.
    time.sleep(1.1)
    yield name
    delete_bucket({"type": "s3", "bucket": name, "endpoint": s3_endpoint, "region": "us-east-1"})


def environment(kube: FakeKube) -> str:
    name = f"cp-{secrets.token_hex(3)}"
    kube.add({"apiVersion": "v1", "kind": "Namespace",
              "metadata": {"name": f"envci-{name}", "labels": {"envci.io/managed": "true", "envci.io/env": name}}})
    return name


def config(tmp_path: Path, name: str, step: dict[str, Any]) -> LoadedConfig:
    return load(write_app(tmp_path, [{"s3": "fixtures", **step}]), name)


def keys(s3: Any, bucket: str) -> dict[str, int]:
    return {o["Key"]: o["Size"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents") or []}


def bucket_exists(s3: Any, bucket: str) -> bool:
    return any(b["Name"] == bucket for b in s3.list_buckets().get("Buckets") or [])


def test_copy_from_an_allowed_bucket_copies_once_a_multipart_object_included(
    s3: Any, s3_endpoint: str, golden: str, tmp_path: Path,
) -> None:
    kube = FakeKube()
    name = environment(kube)
    dest = f"copy-{name}"
    cfg = config(tmp_path, name, {"copy_from": f"s3://{golden}/v1", "endpoint": s3_endpoint, "bucket": dest, "allow": [f"s3://{golden}"]})
    try:
        first = seed(cfg, kube, reporter()[0])["steps"][0]
        assert (first["copied"], first["copy_from"]) == (2, f"s3://{golden}/v1")
        assert keys(s3, dest) == {"a.json": 8, "big/blob.bin": PART + 4}
        big = s3.head_object(Bucket=dest, Key="big/blob.bin")["ETag"]
        assert big != s3.head_object(Bucket=golden, Key="v1/big/blob.bin")["ETag"]  # why ETags alone cannot tell

        again = seed(cfg, kube, reporter()[0])["steps"][0]
        assert (again["copied"], again["unchanged"], again["changed"]) == (0, 2, False)
        assert s3.head_object(Bucket=dest, Key="big/blob.bin")["ETag"] == big

        # A source object changed since it was copied is copied again.
        s3.put_object(Bucket=golden, Key="v1/a.json", Body=b'{"a": 2}')
        assert seed(cfg, kube, reporter()[0])["steps"][0]["copied"] == 1
        assert s3.get_object(Bucket=dest, Key="a.json")["Body"].read() == b'{"a": 2}'
    finally:
        delete_bucket({"type": "s3", "bucket": dest, "endpoint": s3_endpoint, "region": "us-east-1"})


def test_a_bucket_off_the_list_is_refused_before_anything_is_read(s3: Any, s3_endpoint: str, golden: str, tmp_path: Path) -> None:
    kube = FakeKube()
    name = environment(kube)
    dest = f"copy-{name}"
    step = {"copy_from": f"s3://{golden}/v1", "endpoint": s3_endpoint, "bucket": dest, "allow": ["s3://golden-fixtures/v1"]}
    with pytest.raises(ConfigErrors) as info:
        config(tmp_path, name, step)
    (e,) = info.value.errors
    assert e.exit_code == ExitCode.BAD_INPUT and e.field == "seed[0].allow"
    assert e.detail == f"copying from s3://{golden}/v1 is not allowed: no entry of `allow` covers it (allowed: s3://golden-fixtures/v1)"
    assert f'add "s3://{golden}/v1"' in (e.hint or "")

    # The seeder checks again, for a spec that did not come through the loader's checks.
    cfg = config(tmp_path, name, {**step, "allow": [f"s3://{golden}/v1"]})
    cfg.spec.seed[0].allow = ["s3://golden-fixtures/v1"]  # type: ignore[union-attr]
    with pytest.raises(ConfigError) as at_run:
        seed(cfg, kube, reporter()[0])
    assert at_run.value.field == "seed[0].allow" and f"copying from s3://{golden}/v1 is not allowed" in at_run.value.message
    assert f'add "s3://{golden}/v1" to seed[0].allow' in (at_run.value.hint or "")
    assert not bucket_exists(s3, dest)
