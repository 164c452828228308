"""`exec:` seed steps: run a command in a running pod of a component (like `kubectl exec`).

Useful for tools that live in the application image (`manage.py loaddata`, `rails db:seed`).
A non-zero exit code stops the stage with the command's last output lines.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream

from envci.config.model import ExecSeed
from envci.durations import parse_duration
from envci.errors import InfrastructureError
from envci.kube.client import api_error
from envci.kube.portforward import STREAM_LOCK, stream_core
from envci.redact import redact, truncate
from envci.seeders.base import SeedContext, SeedError, StepResult, ready_pod

ERROR_CHANNEL = 3
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
    core = stream_core(ctx.kube)
    try:
        with STREAM_LOCK:
            resp = stream(
                core.connect_get_namespaced_pod_exec, name, ctx.namespace, command=list(step.exec), container=container,
                stdin=False, stdout=True, stderr=True, tty=False, _preload_content=False,
            )
        resp.run_forever(timeout=timeout)
        still_running = resp.is_open()
        if still_running:
            resp.close()
            code: int | None = None
        else:
            raw = resp.read_channel(ERROR_CHANNEL, timeout=0)
            code = exit_code(yaml.safe_load(raw) if raw else None)
            if code is None:  # the stream closed without a Status: treat as a lost connection
                raise InfrastructureError(f"exec in pod {ctx.namespace}/{name}: the connection closed before the command's exit status arrived")
        output = resp.read_all()
    except ApiException as e:
        raise api_error(e, f"exec in pod {ctx.namespace}/{name}") from None
    except Exception as e:  # noqa: BLE001 - websocket failures have many types
        if isinstance(e, InfrastructureError):
            raise
        raise InfrastructureError(f"exec in pod {ctx.namespace}/{name} failed: {truncate(redact(str(e)), 300)}") from None
    text = redact(output if isinstance(output, str) else output.decode(errors="replace"))
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
