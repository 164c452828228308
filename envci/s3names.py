"""Pure rules for S3 names, shared by the config model (checked at validate) and the S3 seeder."""

from __future__ import annotations

import hashlib
import re

_BUCKET_BAD = re.compile(r"[^a-z0-9-]+")
_IP_LIKE = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


def bucket_name(env_name: str) -> str:
    """A valid S3 bucket name (3-63 of a-z 0-9 -, starting and ending alphanumeric) from the
    environment name; a long name is cut and given a hash suffix so it stays unique."""
    name = _BUCKET_BAD.sub("-", env_name.lower()).strip("-")
    if len(name) > 63:
        digest = hashlib.sha256(env_name.encode()).hexdigest()[:8]
        name = f"{name[:54].rstrip('-')}-{digest}"
    if len(name) < 3:
        name = f"envci-{name}".strip("-")
    return name


def check_bucket_name(name: str) -> str | None:
    """Why `name` is not a valid bucket name, or None."""
    if not 3 <= len(name) <= 63:
        return "must be 3 to 63 characters long"
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]*[a-z0-9]", name):
        return "may only hold a-z, 0-9, '.' and '-', and must start and end with a letter or digit"
    if ".." in name or _IP_LIKE.match(name):
        return "must not contain '..' or look like an IP address"
    return None


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> ("bucket", "some/prefix")."""
    if not url.startswith("s3://") or len(url) <= 5:
        raise ValueError(f"{url!r} is not an s3://bucket/prefix URL")
    bucket, _, prefix = url[5:].partition("/")
    return bucket, prefix
