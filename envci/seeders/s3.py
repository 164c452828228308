"""`s3:` seed steps: give the environment its own bucket and fill it with fixtures.

The bucket (default: named after the environment) is recorded in the environment's state as an
external resource *before* it is created, so a crash between the two still leaves it findable by
teardown and the janitor, which delete it with envci.buckets, never through this module. Uploads
skip objects whose size and ETag (the MD5 of a single-part upload) already match, so a re-run
uploads nothing.

`copy_from: s3://bucket/prefix` copies server-side instead, from a bucket the step's `allow:` list
covers (envci.sources: a source off the list is refused before anything is read, when envci.yaml
loads and again here). A re-run copies nothing: an object counts as copied when its copy has the
source's size and its ETag, or, for a multipart source, a modification time after the source's:
the copy of a multipart object is made in one part, so it gets an ETag of its own. (A KMS-encrypted
source's ETag is not its MD5 either, and nothing tells it apart: such objects are copied again.)

Credentials: the step's `access_key`/`secret_key` name secrets in `secrets:`; without them boto3's
usual chain applies (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profiles, instance roles).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from envci.buckets import KIND, make_client, s3_error
from envci.config.model import S3Seed
from envci.s3names import bucket_name, parse_s3_url
from envci.seeders.base import SeedContext, StepResult
from envci.sources import allowed, refusal, s3_source


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
    modified: datetime | None = None


def _same_etag(a: str, b: str) -> bool:
    return a.strip('"') == b.strip('"')


def needs_upload(size: int, etag: str, remote: Remote | None) -> bool:
    """Upload unless the same bytes are there already (same size and single-part ETag)."""
    return remote is None or remote.size != size or not _same_etag(remote.etag, etag)


def needs_copy(source: Remote, copy: Remote | None) -> bool:
    """Copy unless `copy` already is one of `source`: the same size, and the same ETag, or for a
    multipart source (whose copy gets an ETag of its own) a copy made after the source last changed.

    After, not at the same time: S3 keeps times to the second, and an object replaced within the
    second of its copy must not pass for copied. The cost is one more copy of an object copied in
    the second it was written."""
    if copy is None or copy.size != source.size:
        return True
    if _same_etag(copy.etag, source.etag):
        return False
    multipart = "-" in source.etag
    return not (multipart and copy.modified is not None and source.modified is not None and copy.modified > source.modified)


def local_files(folder: Path) -> list[tuple[str, Path]]:
    """(relative posix path, path) of every file under `folder`, sorted; hidden files included."""
    return sorted((p.relative_to(folder).as_posix(), p) for p in folder.rglob("*") if p.is_file())


# --- I/O ----------------------------------------------------------------------------------------


def listing(s3: Any, bucket: str, prefix: str) -> dict[str, Remote]:
    out: dict[str, Remote] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents") or []:
            out[o["Key"]] = Remote(int(o["Size"]), str(o["ETag"]), o.get("LastModified"))
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
        where = s3_source(*source)
        if not allowed(where, step.allow):  # refused when envci.yaml loaded; a defence against a spec built otherwise
            message, hint = refusal(where, step.allow, ctx.where("allow")[2])
            raise ctx.config_error(message, "allow", hint=hint)
    else:
        folder = ctx.path(step.s3)
        if not folder.is_dir():
            raise ctx.config_error(f"fixtures folder {step.s3!r} does not exist", "s3", hint="the path is relative to envci.yaml")

    # Recorded before it exists: teardown must be able to find a bucket a crash left behind.
    _record(ctx, {"type": KIND, "bucket": bucket, "endpoint": step.endpoint or "", "region": step.region})
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
                if not needs_copy(obj, have.get(dest)):
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
        raise s3_error(e, f"seed bucket {bucket}") from None
    except BotoCoreError as e:
        raise s3_error(e, f"seed bucket {bucket}") from None
    verb = "copied" if source else "uploaded"
    summary = f"bucket {bucket}: {sent} object(s) {verb}" + (f", {kept} already there" if kept else "")
    details: dict[str, Any] = {"bucket": bucket, "endpoint": step.endpoint or "", verb: sent, "unchanged": kept}
    if source is not None:
        details["copy_from"] = s3_source(*source)
    return StepResult("s3", summary, changed=bool(sent or created), details=details)

