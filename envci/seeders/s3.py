"""`s3:` seed steps: give the environment its own bucket and fill it with fixtures.

The bucket (default: named after the environment) is recorded in the environment's state as an
external resource *before* it is created, so a crash between the two still leaves it findable by
teardown and the janitor, which delete it through the deleter registered here. Uploads skip
objects whose size and ETag (the MD5 of a single-part upload) already match, so a re-run uploads
nothing; `copy_from: s3://bucket/prefix` copies server-side instead, skipping the same way.

Credentials: the step's `access_key`/`secret_key` name secrets in `secrets:`; without them boto3's
usual chain applies (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profiles, instance roles). Teardown
and the janitor run without envci.yaml, so the deleter reads ENVCI_S3_ACCESS_KEY_ID and
ENVCI_S3_SECRET_ACCESS_KEY, falling back to the same boto3 chain.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from envci import external
from envci.config.model import S3Seed
from envci.errors import InfrastructureError
from envci.redact import redact, register
from envci.s3names import bucket_name, parse_s3_url
from envci.seeders.base import SeedContext, StepResult

ACCESS_KEY_ENV = "ENVCI_S3_ACCESS_KEY_ID"
SECRET_KEY_ENV = "ENVCI_S3_SECRET_ACCESS_KEY"


# --- pure ---------------------------------------------------------------------------------------


def object_key(prefix: str, rel: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/{rel}" if prefix else rel


def md5_etag(data: bytes) -> str:
    return '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"'


@dataclass(frozen=True)
class Remote:
    size: int
    etag: str


def needs_upload(size: int, etag: str, remote: Remote | None) -> bool:
    """Upload unless the same bytes are there already (same size and single-part ETag)."""
    return remote is None or remote.size != size or remote.etag.strip('"') != etag.strip('"')


def local_files(folder: Path) -> list[tuple[str, Path]]:
    """(relative posix path, path) of every file under `folder`, sorted; hidden files included."""
    return sorted((p.relative_to(folder).as_posix(), p) for p in folder.rglob("*") if p.is_file())


# --- I/O ----------------------------------------------------------------------------------------


def make_client(endpoint: str | None, region: str, access_key: str | None, secret_key: str | None) -> Any:
    # Path-style addressing for custom endpoints: S3-compatible servers rarely have wildcard DNS.
    style = {"s3": {"addressing_style": "path"}} if endpoint else {}
    kw: dict[str, Any] = {"region_name": region, "config": Config(retries={"max_attempts": 5, "mode": "standard"}, **style)}
    if endpoint:
        kw["endpoint_url"] = endpoint
    if access_key and secret_key:
        kw["aws_access_key_id"] = access_key
        kw["aws_secret_access_key"] = secret_key
    return boto3.session.Session().client("s3", **kw)


def _s3_error(e: Exception, doing: str) -> InfrastructureError:
    if isinstance(e, ClientError):
        err = e.response.get("Error", {})
        text = f"{err.get('Code', '?')}: {err.get('Message', '')}".strip()
    else:
        text = type(e).__name__ + (f": {e}" if str(e) else "")
    return InfrastructureError(f"S3 refused to {doing}: {redact(text)[:500]}", hint="check the endpoint, region and credentials of the s3 step")


def listing(s3: Any, bucket: str, prefix: str) -> dict[str, Remote]:
    out: dict[str, Remote] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents") or []:
            out[o["Key"]] = Remote(int(o["Size"]), str(o["ETag"]))
    return out


def ensure_bucket(s3: Any, bucket: str, region: str) -> bool:
    """Create the bucket if needed; True if it was created now."""
    try:
        s3.head_bucket(Bucket=bucket)
        return False
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
    kw: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":  # us-east-1 refuses an explicit LocationConstraint
        kw["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kw)
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
            raise
        return False
    return True


def delete_bucket(item: dict[str, str]) -> None:
    """The deleter teardown and the janitor call: empty the bucket (every version) and delete it.

    Idempotent: a bucket that is already gone is success.
    """
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
        raise _s3_error(e, f"delete bucket {bucket}") from None
    except BotoCoreError as e:
        raise _s3_error(e, f"delete bucket {bucket}") from None


external.register("s3", delete_bucket)


def _record(ctx: SeedContext, item: dict[str, str]) -> None:
    if ctx.state is None:
        return
    before = list(ctx.state.external)
    ctx.state.add_external(item)
    if ctx.state.external != before:
        ctx.save_state()


def run(step: S3Seed, ctx: SeedContext) -> StepResult:
    # The bucket name, the key pair and copy_from's form were checked when envci.yaml loaded.
    bucket = step.bucket or bucket_name(ctx.env_name)
    access = ctx.secret(step.access_key, "access_key") if step.access_key else None
    secret = ctx.secret(step.secret_key, "secret_key") if step.secret_key else None
    source: tuple[str, str] | None = None
    if step.copy_from:
        source = parse_s3_url(step.copy_from)
    else:
        folder = ctx.path(step.s3)
        if not folder.is_dir():
            raise ctx.config_error(f"fixtures folder {step.s3!r} does not exist", "s3", hint="the path is relative to envci.yaml")

    # Recorded before it exists: teardown must be able to find a bucket a crash left behind.
    _record(ctx, {"type": "s3", "bucket": bucket, "endpoint": step.endpoint or "", "region": step.region})
    s3 = make_client(step.endpoint, step.region, access, secret)
    try:
        created = ensure_bucket(s3, bucket, step.region)
        ctx.progress(f"bucket {bucket} {'created' if created else 'exists'}")
        prefix = step.prefix.strip("/")
        have = listing(s3, bucket, prefix)
        sent = kept = 0
        if source is not None:
            src_bucket, src_prefix = source
            for key, obj in listing(s3, src_bucket, src_prefix).items():
                rel = key[len(src_prefix):].lstrip("/") if src_prefix else key
                dest = object_key(prefix, rel)
                if not needs_upload(obj.size, obj.etag, have.get(dest)):
                    kept += 1
                    continue
                s3.copy_object(Bucket=bucket, Key=dest, CopySource={"Bucket": src_bucket, "Key": key})
                sent += 1
        else:
            for rel, path in local_files(folder):
                data = path.read_bytes()
                key = object_key(prefix, rel)
                if not needs_upload(len(data), md5_etag(data), have.get(key)):
                    kept += 1
                    continue
                s3.put_object(Bucket=bucket, Key=key, Body=data)
                sent += 1
    except ClientError as e:
        raise _s3_error(e, f"seed bucket {bucket}") from None
    except BotoCoreError as e:
        raise _s3_error(e, f"seed bucket {bucket}") from None
    verb = "copied" if source else "uploaded"
    summary = f"bucket {bucket}: {sent} object(s) {verb}" + (f", {kept} already there" if kept else "")
    return StepResult("s3", summary, changed=bool(sent or created), details={"bucket": bucket, "endpoint": step.endpoint or "", verb: sent, "unchanged": kept})

