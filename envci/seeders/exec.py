"""`exec:` seed steps: run a command in a running pod of a component (like `kubectl exec`).

Useful for tools that live in the application image (`manage.py loaddata`, `rails db:seed`).
A non-zero exit code stops the stage with the command's last output lines.
"""

from __future__ import annotations

import re
from typing import Any

from envci.config.model import ExecSeed
from envci.durations import parse_duration
from envci.errors import InfrastructureError
from envci.redact import redact
from envci.seeders.base import SeedContext, SeedError, StepResult, ready_pod

_EXIT_STATUS = re.compile(r"exit (?:status|code) (\d+)")


def exit_code(status: dict[str, Any] | None) -> int | None:
    """Pure: the command's exit code from the exec stream's final Status (None if there was none).

    The kubelet sends `reason: NonZeroExitCode` with the code in `details.causes`; other runtimes
    (kwok among them) send an InternalError whose message ends in "exit status N".
    """
    if not status:
        return None
    if status.get("status") == "Success":
        return 0
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode" and str(cause.get("message", "")).isdigit():
            return int(cause["message"])
    m = _EXIT_STATUS.search(str(status.get("message", "")))
    return int(m.group(1)) if m else 1


def output_tail(text: str, lines: int = 20) -> str:
    kept = text.rstrip().splitlines()[-lines:]
    return "\n".join(f"    | {line}" for line in kept) or "    | (no output)"


def run(step: ExecSeed, ctx: SeedContext) -> StepResult:
    pod = ready_pod(ctx, step.component, "component")
    name = pod["metadata"]["name"]
    containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    container = step.container or (containers[0] if containers else None)
    if step.container and step.container not in containers:
        raise ctx.config_error(f"pod {name} has no container {step.container!r} (containers: {', '.join(containers)})", "container")
    timeout = parse_duration(step.timeout).total_seconds()
    ctx.progress(f"exec in {ctx.namespace}/{name} ({container}): {redact(' '.join(step.exec))[:200]}")
    result = ctx.kube.exec(ctx.namespace, name, step.exec, container=container, timeout=timeout)
    code = exit_code(result.status) if result.finished else None
    if result.finished and code is None:  # the stream closed without a Status: treat as a lost connection
        raise InfrastructureError(f"exec in pod {ctx.namespace}/{name}: the connection closed before the command's exit status arrived")
    text = redact(result.output)
    if code != 0:
        why = f"did not finish within {step.timeout}" if code is None else f"exited with code {code}"
        raise SeedError(
            f"command in pod {ctx.namespace}/{name} ({container}) {why}; last output:\n{output_tail(text)}",
            kind="exec",
            hint="fix the command or the data it loads; run it by hand with `kubectl exec`",
        )
    for line in text.rstrip().splitlines()[-5:]:
        ctx.progress(f"{name} | {line}")
    return StepResult("exec", f"command ran in {name}", details={"pod": name, "container": container})
