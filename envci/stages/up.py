"""up: the whole pipeline in one command, with teardown guaranteed.

provision -> wait-ready -> seed -> test -> teardown. Teardown runs after success, failure and
cancellation alike, unless `keep` asks to leave the environment for a person to look at (the
janitor still reaps it when its TTL runs out).
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from envci.config.loader import LoadedConfig
from envci.errors import EnvciError, ExitCode, SupersededError
from envci.kube.client import Kube
from envci.output import Reporter


@contextmanager
def _shielded() -> Iterator[None]:
    """Cleanup must not be cut short by a second Ctrl-C or SIGTERM from an impatient runner."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for s in previous:
            signal.signal(s, signal.SIG_IGN)
    except ValueError:  # not in the main thread: nothing to shield
        previous = {}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def up(
    cfg: LoadedConfig,
    kube: Kube,
    rep: Reporter,
    *,
    out_dir: Path,
    keep: bool = False,
    kubeconfig: str | None = None,
    publish: Callable[[Any, dict[str, str]], Any] | None = None,
) -> tuple[int, dict[str, Any]]:
    from envci.stages.provision import provision
    from envci.stages.seed import seed
    from envci.stages.teardown import teardown
    from envci.stages.test import test
    from envci.stages.wait_ready import wait_ready

    ident = cfg.identity
    result: dict[str, Any] = {"name": ident.name, "namespace": ident.namespace, "stages": {}}
    code = ExitCode.OK
    try:
        result["stages"]["provision"] = provision(cfg, kube, rep, wait_between_waves=lambda names: wait_ready(cfg, kube, rep, components=names))
        result["stages"]["wait-ready"] = wait_ready(cfg, kube, rep)
        result["stages"]["seed"] = seed(cfg, kube, rep)
        run, files = test(cfg, kube, rep, out_dir=out_dir, kubeconfig=kubeconfig)
        result["stages"]["test"] = {"outcome": run.outcome, "files": files}
        if publish:
            result["published"] = publish(run, files)
        code = {"passed": ExitCode.OK, "failed": ExitCode.TESTS_FAILED}.get(run.outcome, ExitCode.INFRASTRUCTURE)
    except SupersededError:
        raise  # the newer build owns the environment: never tear it down from here
    except (EnvciError, KeyboardInterrupt) as e:
        result["error"] = getattr(e, "message", "cancelled")
        if not keep:
            rep.progress("tearing down after the failure" if not isinstance(e, KeyboardInterrupt) else "tearing down after cancellation")
            with _shielded():
                _teardown_quietly(kube, rep, ident.namespace, ident.ctx.build, teardown)
        raise
    if keep:
        rep.progress(f"keeping environment {ident.name} (--keep); `envci teardown --env {ident.name}` removes it")
    else:
        with _shielded():
            result["stages"]["teardown"] = teardown(kube, rep, namespace=ident.namespace, build=ident.ctx.build)
    return int(code), result


def _teardown_quietly(kube: Kube, rep: Reporter, namespace: str, build: str, teardown: Callable[..., Any]) -> None:
    try:
        teardown(kube, rep, namespace=namespace, build=build)
    except EnvciError as e:
        rep.warn(f"teardown after the failure did not finish: {e.message}; `envci reap` removes the rest when it expires")
