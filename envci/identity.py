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
KEY_LABEL = "envci.io/key"
REPO_LABEL = "envci.io/repo"


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
    key: str = ""
    """What the name was derived from (`pr-42`, a branch, `build-7`); empty for a name given by `--env`."""

    def labels(self) -> dict[str, str]:
        """Labels on the namespace: all the janitor, `list` and a teardown without envci.yaml need to find it."""
        out = {
            "envci.io/managed": "true",
            "envci.io/app": label_value(self.app),
            "envci.io/env": label_value(self.name),
            "app.kubernetes.io/managed-by": "envci",
        }
        if self.key:
            out[KEY_LABEL] = label_value(self.key)
        if self.ctx.repo:
            out[REPO_LABEL] = label_value(self.ctx.repo)
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


def environment_key(ctx: CiContext) -> str:
    """One environment per PR (a newer build supersedes it), else per branch, else per build.

    The same PR, MR or branch gives the same key whichever CI system runs the build."""
    if ctx.pr:
        return f"pr-{ctx.pr}"
    if ctx.branch:
        return ctx.branch
    if ctx.build:
        return f"build-{ctx.build}"
    return "local"


def environment_name(app: str, ctx: CiContext) -> str:
    return join_name(app, environment_key(ctx))


def context_selector(ctx: CiContext) -> str:
    """Label selector of the environments made for this CI context, whatever the app's name.

    It is how teardown finds an environment without envci.yaml (a stop job with no checkout): the
    namespace carries the key its name was derived from and the repository."""
    parts = ["envci.io/managed=true", f"{KEY_LABEL}={label_value(environment_key(ctx))}"]
    if ctx.repo:
        parts.append(f"{REPO_LABEL}={label_value(ctx.repo)}")
    return ",".join(parts)


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
    if override:
        name, key = dns_label(override), ""
    else:
        key = environment_key(ctx)
        name = join_name(app, key)
    return Identity(name=name, namespace=namespace_for(name, prefix), app=app, ctx=ctx, key=key)


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
