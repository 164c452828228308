"""Publish a test report where the CI system shows it; never fail a build over it.

- GitHub Actions: the summary is appended to `$GITHUB_STEP_SUMMARY`; with a token, a sticky
  pull-request comment is created or updated.
- GitLab CI: the job's `artifacts: reports: junit/dotenv` read `junit.xml` and `test.env`; with
  `ENVCI_GITLAB_TOKEN` in a merge-request pipeline, a sticky MR note is created or updated.
- Jenkins: the `junit` step reads `junit.xml`; `summary.md` can be archived or shown by a plugin.

Every problem becomes a warning (tokens never appear in it) and a line in the returned record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import requests

from envci.ci import github, gitlab
from envci.ci.detect import ci_system, detect_context
from envci.errors import PublishError
from envci.redact import redact
from envci.report import summary
from envci.report.model import RunResult

Warn = Callable[[str], None]


def publish_report(
    run: RunResult,
    files: Mapping[str, str],
    *,
    env: Mapping[str, str],
    warn: Warn,
    comment: bool = True,
    session: requests.Session | None = None,
) -> dict[str, Any]:
    """Publish for the detected CI system; returns what was done (for the result and for tests)."""
    system = ci_system(env)
    done: dict[str, Any] = {"system": system, "comment": "skipped"}
    build_url = run.ci.get("build_url", "")
    if system == "github":
        path = env.get("GITHUB_STEP_SUMMARY")
        if path:
            try:
                github.append_step_summary(path, summary.render_within(run, github.STEP_SUMMARY_LIMIT, build_url=build_url))
                done["step_summary"] = path
            except OSError as e:
                warn(f"could not append to GITHUB_STEP_SUMMARY ({path}): {e.strerror}")
        if comment:
            ctx = detect_context(env)
            done["comment"] = _try(
                "pull-request comment",
                lambda: github.upsert_comment(
                    env, repo=ctx.repo, number=ctx.pr, markdown=summary.render_within(run, build_url=build_url), env_name=run.name, session=session,
                ),
                needs=bool(github.token(env)) and bool(ctx.pr),
                skip_reason="no token or not a pull-request build",
                warn=warn,
            )
    elif system == "gitlab":
        done["reports"] = {"junit": files.get("junit"), "dotenv": files.get("dotenv")}
        if comment:
            done["comment"] = _try(
                "merge-request note",
                lambda: gitlab.upsert_note(env, markdown=summary.render_within(run, build_url=build_url), env_name=run.name, session=session),
                needs=bool(gitlab.token(env)) and bool(env.get("CI_MERGE_REQUEST_IID")),
                skip_reason="no ENVCI_GITLAB_TOKEN or not a merge-request pipeline",
                warn=warn,
            )
    elif system == "jenkins":
        done["reports"] = {"junit": files.get("junit"), "summary": files.get("summary")}
    return done


def _try(what: str, action: Callable[[], str], *, needs: bool, skip_reason: str, warn: Warn) -> str:
    if not needs:
        return f"skipped: {skip_reason}"
    try:
        return action()
    except PublishError as e:
        message = redact(str(e))
    except Exception as e:  # noqa: BLE001 - a comment is never worth failing the build for
        message = redact(f"{type(e).__name__}: {e}")
    warn(f"could not post the {what}: {message} (the build goes on; the report is in the output folder)")
    return f"failed: {message}"
