"""S3 buckets an environment owns: the client both sides use, and the deleter teardown calls.

The `s3:` seed step creates and fills a bucket (envci.seeders.s3); teardown and the janitor delete
it from the record kept in the cluster, through `DELETERS`, which envci.external finds by its
table of plugins. Deleting lives here and not in the seeder so that teardown depends on neither
the seeders nor envci.yaml.

Teardown and the janitor run without envci.yaml, so the deleter reads ENVCI_S3_ACCESS_KEY_ID and
ENVCI_S3_SECRET_ACCESS_KEY, falling back to boto3's usual chain (AWS_ACCESS_KEY_ID/
AWS_SECRET_ACCESS_KEY, profiles, instance roles).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from envci.errors import InfrastructureError
from envci.redact import redact, register

KIND = "s3"
"""The `type` of a bucket's record among the environment's external resources."""
ACCESS_KEY_ENV = "ENVCI_S3_ACCESS_KEY_ID"
SECRET_KEY_ENV = "ENVCI_S3_SECRET_ACCESS_KEY"


def make_client(endpoint: str | None, region: str, access_key: str | None, secret_key: str | None) -> Any:
    # Path-style addressing for custom endpoints: S3-compatible servers rarely have wildcard DNS.
    style: dict[str, Any] = {"s3": {"addressing_style": "path"}} if endpoint else {}
    kw: dict[str, Any] = {"region_name": region, "config": Config(retries={"max_attempts": 5, "mode": "standard"}, **style)}
    if endpoint:
        kw["endpoint_url"] = endpoint
    if access_key and secret_key:
        kw["aws_access_key_id"] = access_key
        kw["aws_secret_access_key"] = secret_key
    return boto3.session.Session().client("s3", **kw)


def s3_error(e: Exception, doing: str) -> InfrastructureError:
    if isinstance(e, ClientError):
        err = e.response.get("Error", {})
        text = f"{err.get('Code', '?')}: {err.get('Message', '')}".strip()
    else:
        text = type(e).__name__ + (f": {e}" if str(e) else "")
    return InfrastructureError(f"S3 refused to {doing}: {redact(text)[:500]}", hint="check the endpoint, region and credentials of the s3 step")


def delete_bucket(item: dict[str, str]) -> None:
    """Empty the bucket (every version) and delete it. Idempotent: a bucket already gone is success."""
    bucket = item["bucket"]
    access, secret = os.environ.get(ACCESS_KEY_ENV), os.environ.get(SECRET_KEY_ENV)
    register(secret)
    s3 = make_client(item.get("endpoint") or None, item.get("region") or "us-east-1", access, secret)
    try:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            doomed = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in (page.get("Versions") or []) + (page.get("DeleteMarkers") or [])]
            for i in range(0, len(doomed), 1000):
                s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed[i : i + 1000], "Quiet": True})
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):  # stores without versioning support
            keys = [{"Key": o["Key"]} for o in page.get("Contents") or []]
            if keys:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        s3.delete_bucket(Bucket=bucket)
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("NoSuchBucket", "404", "NotFound"):
            return
        raise s3_error(e, f"delete bucket {bucket}") from None
    except BotoCoreError as e:
        raise s3_error(e, f"delete bucket {bucket}") from None


DELETERS: dict[str, Callable[[dict[str, str]], None]] = {KIND: delete_bucket}
"""What envci.external loads from this module: the deleter of each kind of record it owns."""
