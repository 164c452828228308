"""From a CI context to an environment's name, namespace and labels.

Names must be valid DNS-1123 labels (at most 63 characters), stable for the same build, and
distinct for different PRs or branches, even when two branch names slug to the same text
("feature/A" and "feature-a"): whenever slugging loses information, a short hash of the original
is appended.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

MAX_NAME = 63
_HASH_LEN = 6


@dataclass(frozen=True)
class CiContext:
    """What envci knows about the build it runs for."""

    system: str  # github | gitlab | jenkins | local
    repo: str = ""
    branch: str = ""
    sha: str = ""
    pr: str = ""  # PR / MR number, empty when the build is not for one
    build: str = ""  # a build id unique within the repository
    build_url: str = ""
    actor: str = ""

    def as_template_context(self) -> dict[str, str]:
        return {
            "system": self.system,
            "repo": self.repo,
            "branch": self.branch,
            "sha": self.sha,
            "short_sha": self.sha[:8],
            "pr": self.pr,
            "build": self.build,
            "build_url": self.build_url,
            "actor": self.actor,
        }


@dataclass(frozen=True)
class Identity:
    name: str
    namespace: str
    app: str
    ctx: CiContext

    def labels(self) -> dict[str, str]:
        """Labels on the namespace: all the janitor and `list` need to find an environment."""
        out = {
            "envci.io/managed": "true",
            "envci.io/app": label_value(self.app),
            "envci.io/env": label_value(self.name),
            "app.kubernetes.io/managed-by": "envci",
        }
        if self.ctx.pr:
            out["envci.io/pr"] = label_value(self.ctx.pr)
        if self.ctx.branch:
            out["envci.io/branch"] = label_value(self.ctx.branch)
        if self.ctx.build:
            out["envci.io/build"] = label_value(self.ctx.build)
        return out


def _digest(text: str, n: int = _HASH_LEN) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def slugify(text: str) -> str:
    """Lowercase ASCII letters, digits and single dashes; accents folded, everything else a dash."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", folded.lower())).strip("-")


def dns_label(text: str, *, max_len: int = MAX_NAME) -> str:
    """A DNS-1123 label for `text`: its slug when that is exact, else the slug plus a hash of `text`."""
    slug = slugify(text)
    if slug == text and 0 < len(slug) <= max_len:
        return slug
    h = _digest(text)
    room = max_len - _HASH_LEN - 1
    head = slug[:room].rstrip("-")
    return f"{head}-{h}" if head else f"x-{h}"


def label_value(text: str) -> str:
    """A valid label value (<=63, alphanumeric at both ends) that stays distinct for distinct input."""
    ok = re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", text)
    return text if ok else dns_label(text)


def environment_name(app: str, ctx: CiContext) -> str:
    """One environment per PR (a newer build supersedes it), else per branch, else per build."""
    if ctx.pr:
        key = f"pr-{ctx.pr}"
    elif ctx.branch:
        key = ctx.branch
    elif ctx.build:
        key = f"build-{ctx.build}"
    else:
        key = "local"
    return join_name(app, key)


def join_name(app: str, key: str, *, max_len: int = MAX_NAME) -> str:
    """`<app>-<key>`; the app part (a validated label of <=30 characters) stays readable."""
    whole = f"{app}-{key}"
    if slugify(whole) == whole and len(whole) <= max_len:
        return whole
    return f"{app}-{dns_label(key, max_len=max_len - len(app) - 1)}"


def namespace_for(name: str, prefix: str) -> str:
    whole = f"{prefix}{name}"
    return whole if len(whole) <= MAX_NAME else dns_label(whole)


def identify(app: str, ctx: CiContext, *, prefix: str = "envci-", override: str | None = None) -> Identity:
    name = dns_label(override) if override else environment_name(app, ctx)
    return Identity(name=name, namespace=namespace_for(name, prefix), app=app, ctx=ctx)


def build_key(build: str) -> tuple[int, ...] | None:
    """`1234-2` -> (1234, 2); None when the id is not made of numbers (then order is unknown)."""
    parts = re.split(r"[^0-9]+", build.strip())
    if not build or not all(parts):
        return None
    return tuple(int(p) for p in parts)


def is_older_build(mine: str, theirs: str) -> bool:
    """True only when both ids are numeric and `mine` is strictly older; unknown order is not older."""
    a, b = build_key(mine), build_key(theirs)
    return a is not None and b is not None and a < b
