"""The Markdown summary: what a reviewer reads in a step summary or a pull-request comment.

Totals first, then a table of suites, then each failure with its message and the start of its
detail, then the environment's URLs. Long reports are cut by failure count and by characters, since
GitHub refuses comments over 65,536 characters and nobody reads the hundredth failure anyway.
"""

from __future__ import annotations

from envci.durations import format_duration
from envci.redact import redact
from envci.report.model import RunResult

COMMENT_LIMIT = 60_000
"""Characters of a comment body: GitHub's limit is 65,536, GitLab's larger; room for the marker."""

ICONS = {"passed": "✅", "failed": "❌", "error": "⚠️"}
HEADLINES = {"passed": "passed", "failed": "failed", "error": "could not finish"}


def _seconds(s: float) -> str:
    from datetime import timedelta

    return f"{s:.1f}s" if s < 60 else format_duration(timedelta(seconds=round(s)))


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: one line, no column breaks."""
    return " ".join(text.split()).replace("|", "\\|")


def _fence(text: str) -> str:
    """A code fence longer than any backtick run inside `text`, so test output cannot close it."""
    run = 3
    while "`" * run in text:
        run += 1
    return "`" * run


def render(run: RunResult, *, max_failures: int = 20, detail_lines: int = 15, build_url: str = "") -> str:
    c = run.counts
    outcome = run.outcome
    lines = [f"### {ICONS[outcome]} envci tests {HEADLINES[outcome]}: `{run.name}`", ""]
    parts = [f"**{c.tests}** tests", f"**{c.passed}** passed", f"**{c.failed}** failed"]
    if c.errors:
        parts.append(f"**{c.errors}** errors")
    if c.skipped:
        parts.append(f"**{c.skipped}** skipped")
    lines.append(", ".join(parts) + f" in {_seconds(run.seconds)} (namespace `{run.namespace}`)")
    if build_url:
        lines.append(f"[build]({build_url})")
    lines.append("")

    if run.suites:
        lines += ["| Suite | Kind | Result | Tests | Failed | Skipped | Duration |", "|---|---|---|---:|---:|---:|---:|"]
        for s in run.suites:
            sc = s.counts
            result = f"{ICONS[s.outcome]} {s.outcome}"
            lines.append(
                f"| {_cell(s.name)} | {s.kind} | {result} | {sc.tests} | {sc.failed + sc.errors} | {sc.skipped} | {_seconds(s.seconds)} |"
            )
        lines.append("")

    errors = [s for s in run.suites if s.error]
    if errors:
        lines += ["#### Suites that could not finish", ""]
        lines += [f"- **{_cell(s.name)}**: {_cell(s.error)}" for s in errors]
        lines.append("")

    failures = run.failures()
    if failures:
        lines += [f"#### Failures ({len(failures)})", ""]
        for suite, case in failures[:max_failures]:
            msg = f": {_cell(case.message)}" if case.message else ""
            lines.append(f"<details><summary><b>{_html(suite.name)}</b> › {_html(case.title)}{_html(msg)}</summary>")
            lines.append("")
            if case.detail and detail_lines > 0:
                detail = "\n".join(case.detail.rstrip().splitlines()[-detail_lines:])
                fence = _fence(detail)
                lines += [f"{fence}text", detail, fence]
            else:
                lines.append(f"{case.status} after {_seconds(case.seconds)}; no further detail")
            lines += ["", "</details>", ""]
        if len(failures) > max_failures:
            lines += [f"…and {len(failures) - max_failures} more failures: see `junit.xml` in the build's artifacts.", ""]

    if run.urls:
        lines += ["#### Environment", ""]
        lines += [f"- **{_cell(comp)}**: {url}" for comp, url in run.urls.items()]
        lines.append("")
    return redact("\n".join(lines).rstrip() + "\n")


def _html(text: str) -> str:
    """Escaped for the inside of <summary>, where Markdown is not rendered."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_within(run: RunResult, limit: int = COMMENT_LIMIT, *, build_url: str = "") -> str:
    """The fullest summary that fits in `limit` characters: fewer failures and shorter details
    first, a hard cut only as a last resort (a Markdown cut mid-fence would garble the rest)."""
    for max_failures, detail_lines in ((20, 15), (10, 8), (5, 5), (3, 0), (0, 0)):
        text = render(run, max_failures=max_failures, detail_lines=detail_lines, build_url=build_url)
        if len(text) <= limit:
            return text
    note = "\n…(summary cut; the full report is in the build's artifacts)\n"
    return text[: limit - len(note)] + note
