"""S3 seeding against a real S3-compatible server; teardown removes the bucket it recorded."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from seedapp import (  # tests/integration is on sys.path
    env_name,
    load,
    reporter,
    write_app,
)

from envci import state as st
from envci.buckets import ACCESS_KEY_ENV, SECRET_KEY_ENV, delete_bucket
from envci.kube.client import connect
from envci.s3names import bucket_name
from envci.stages.seed import seed
from envci.stages.teardown import teardown

pytestmark = pytest.mark.cluster
ACCESS, SECRET = "AKIDSEEDTEST", "s3-secret-value-for-tests"


def objects(endpoint: str, bucket: str) -> dict[str, int]:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=ACCESS, aws_secret_access_key=SECRET)
    out: dict[str, int] = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for v in page.get("Versions") or []:
            out[v["Key"]] = out.get(v["Key"], 0) + 1
    return out


def bucket_exists(endpoint: str, bucket: str) -> bool:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=ACCESS, aws_secret_access_key=SECRET)
    return any(b["Name"] == bucket for b in s3.list_buckets().get("Buckets") or [])


def test_s3_seed_fills_the_bucket_once_and_teardown_removes_it(
    kubeconfig: str, s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = {"s3": "fixtures", "prefix": "seed", "endpoint": s3_endpoint, "access_key": "s3_access", "secret_key": "s3_secret"}
    path = write_app(tmp_path, [step], secrets_={"s3_access": "S3_ACCESS", "s3_secret": "S3_SECRET"})
    cfg = load(path, env_name(), {"S3_ACCESS": ACCESS, "S3_SECRET": SECRET})
    kube = connect(kubeconfig)
    rep, _, _ = reporter()
    from envci.stages.provision import provision

    bucket = bucket_name(cfg.identity.name)
    try:
        provision(cfg, kube, rep)  # the namespace and its record; seeding S3 needs no ready pod
        first = seed(cfg, kube, rep)
        assert first["steps"][0]["bucket"] == bucket and first["steps"][0]["uploaded"] == 3
        versions = objects(s3_endpoint, bucket)
        assert versions == {"seed/config.json": 1, "seed/images/logo.bin": 1, "seed/products.csv": 1}

        # Recorded in the cluster, on the namespace too, so teardown needs no envci.yaml.
        record = {"type": "s3", "bucket": bucket, "endpoint": s3_endpoint, "region": "us-east-1"}
        state = st.load(kube, cfg.identity.namespace)
        assert state is not None and state.external == [record]
        assert st.external_from_namespace(kube.namespace(cfg.identity.namespace) or {}) == [record]

        again = seed(cfg, kube, rep)
        assert again["steps"][0]["uploaded"] == 0 and again["steps"][0]["unchanged"] == 3
        assert again["steps"][0]["changed"] is False
        assert objects(s3_endpoint, bucket) == versions  # no second upload of any object
    finally:
        # Teardown finds the bucket from the record and deletes it with ENVCI_S3_* credentials.
        monkeypatch.setenv(ACCESS_KEY_ENV, ACCESS)
        monkeypatch.setenv(SECRET_KEY_ENV, SECRET)
        teardown(kube, rep, namespace=cfg.identity.namespace, name=cfg.identity.name, timeout=60)
    assert not bucket_exists(s3_endpoint, bucket)
    delete_bucket({"type": "s3", "bucket": bucket, "endpoint": s3_endpoint, "region": "us-east-1"})  # idempotent


def test_copy_from_another_bucket(kubeconfig: str, s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS)  # no secrets in the step: boto3's own chain applies
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    src = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    golden = f"golden-{tmp_path.name[-6:].lower().replace('_', '-')}"
    src.create_bucket(Bucket=golden)
    for key in ("v1/a.json", "v1/b/c.json", "v2/ignored.json"):
        src.put_object(Bucket=golden, Key=key, Body=key.encode())
    step = {"s3": "fixtures", "copy_from": f"s3://{golden}/v1", "endpoint": s3_endpoint, "bucket": f"copy-{golden}", "allow": [f"s3://{golden}"]}
    path = write_app(tmp_path, [step])
    cfg = load(path, env_name())
    kube = connect(kubeconfig)
    rep, _, _ = reporter()
    from envci.stages.provision import provision

    try:
        provision(cfg, kube, rep)
        res = seed(cfg, kube, rep)
        assert res["steps"][0]["copied"] == 2
        assert objects(s3_endpoint, f"copy-{golden}") == {"a.json": 1, "b/c.json": 1}
        assert seed(cfg, kube, rep)["steps"][0]["copied"] == 0
    finally:
        teardown(kube, rep, namespace=cfg.identity.namespace, name=cfg.identity.name, timeout=60)
    assert not bucket_exists(s3_endpoint, f"copy-{golden}")
