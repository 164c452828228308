"""Which forge `envci reap --closed-prs` asks whether a pull or merge request is still open.

The janitor runs in one place (a CronJob, a scheduled pipeline) with at most one token to hand,
so one is chosen: GitHub's when it is set, else GitLab's, which needs its API address as well
(a GitLab CI job has it in CI_API_V4_URL; GitHub's has a public default).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from envci.errors import ConfigError

if TYPE_CHECKING:
    from envci.stages.reap import PrIsOpen

GITHUB_API = "https://api.github.com"


@dataclass(frozen=True)
class ForgeToken:
    system: Literal["github", "gitlab"]
    api: str
    token: str = field(repr=False)  # never in a log line or a traceback


def forge_token(env: Mapping[str, str]) -> ForgeToken | None:
    """Pure: the token the closed-PR check uses, None when there is none it can use."""
    if env.get("ENVCI_GITHUB_TOKEN"):
        return ForgeToken("github", env.get("GITHUB_API_URL", GITHUB_API), env["ENVCI_GITHUB_TOKEN"])
    if env.get("ENVCI_GITLAB_TOKEN") and env.get("CI_API_V4_URL"):
        return ForgeToken("gitlab", env["CI_API_V4_URL"], env["ENVCI_GITLAB_TOKEN"])
    return None


def pr_state_check(env: Mapping[str, str]) -> PrIsOpen:
    """The closed-PR check for `reap`; bad input when no token is set, so the sweep does not
    silently keep every environment whose PR was closed."""
    from envci.stages.reap import github_pr_open, gitlab_mr_open

    t = forge_token(env)
    if t is None:
        raise ConfigError("--closed-prs needs ENVCI_GITHUB_TOKEN, or ENVCI_GITLAB_TOKEN with CI_API_V4_URL", field="--closed-prs")
    return github_pr_open(t.token, t.api) if t.system == "github" else gitlab_mr_open(t.token, t.api)
