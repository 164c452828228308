"""Start, reuse, inspect and remove the local cluster: the I/O shell around spec.py.

The cluster is kwokctl's binary runtime: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok run as local processes from binaries build.sh compiled, and kwok simulates
the nodes and their pods. Creating one takes seconds once the binaries are cached.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envci.errors import InfrastructureError
from envci.localcluster import spec

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build.sh"
KWOK_CONFIG = HERE / "kwok.yaml"

Progress = Callable[[str], None]


class BinariesUnavailable(InfrastructureError):
    """The binaries are not built and cannot be: there is no Go toolchain on this machine."""


@dataclass(frozen=True)
class Settings:
    """How long the local cluster may take; all in seconds."""

    nodes: int = 2
    """Simulated nodes. Two, so spreading and anti-affinity have somewhere to go; kwok nodes are free."""
    api_timeout: float = 90.0
    """Until /readyz answers after a start; etcd and the API server take 2-5 s on a warm machine."""
    nodes_timeout: float = 30.0
    """Until the nodes report Ready; kwok marks them within a second of their creation."""
    poll_interval: float = 0.25
    """Between two checks while waiting: short, because every check is a cheap local request."""
    command_timeout: float = 180.0
    """For any one kwokctl or kubectl call, so a wedged process cannot hang a CI job."""


def _stderr(message: str) -> None:
    print(f"localcluster: {message}", file=sys.stderr, flush=True)


# --- binaries ----------------------------------------------------------------------------------------

def binaries_dir() -> Path:
    """The directory build.sh builds into, keyed by every pinned version (built or not)."""
    out = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--print-dir"], capture_output=True, text=True, check=True, timeout=30
    )
    return Path(out.stdout.strip())


def _layout() -> spec.Layout:
    return spec.Layout(bin_dir=binaries_dir())


def _present(bin_dir: Path) -> set[str]:
    return {b for b in spec.BINARIES if os.access(bin_dir / b, os.X_OK)}


def ensure_binaries(progress: Progress = _stderr) -> Path:
    """Build the binaries unless cached; build.sh's progress goes straight to stderr.

    A cold build compiles Kubernetes from source (about 10 minutes on 2 cores here), so the output
    is streamed rather than captured: a silent step that long looks hung.
    """
    bin_dir = binaries_dir()
    missing = spec.missing_binaries(_present(bin_dir))
    if not missing:
        return bin_dir
    if shutil.which("go") is None:
        raise BinariesUnavailable(
            f"the local cluster needs {', '.join(missing)} in {bin_dir}, and building them needs Go",
            hint="install Go >= 1.26 (https://go.dev/dl/), or set KUBECONFIG to a real cluster instead",
        )
    progress(f"building {', '.join(missing)} (cold build: about 10-30 minutes)")
    result = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=sys.stderr, stderr=sys.stderr, check=False)
    missing = spec.missing_binaries(_present(bin_dir))
    if result.returncode != 0 or missing:
        raise InfrastructureError(
            f"building the local cluster binaries failed (exit {result.returncode}); still missing: "
            f"{', '.join(missing) or 'none'}",
            hint=f"read the build output above; rerun `bash {BUILD_SCRIPT}` after fixing it (Go module "
            "proxy reachable? disk space for ~3 GiB of Go caches?)",
        )
    return bin_dir


# --- process helpers -----------------------------------------------------------------------------------

def _run(
    args: list[str], env: Mapping[str, str], *, timeout: float, input_text: str | None = None, detach: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run a tool, capturing its output; never raises for a non-zero exit (callers decide)."""
    try:
        return subprocess.run(
            args,
            env=dict(env),
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            # kwokctl leaves etcd and the control plane running after it exits; a session of their own
            # keeps a Ctrl-C in the terminal that started them from killing a cluster others reuse.
            start_new_session=detach,
        )
    except subprocess.TimeoutExpired as e:
        raise InfrastructureError(f"`{' '.join(args[:4])}` did not finish within {timeout:.0f}s") from e


def _kubectl(layout: spec.Layout, env: Mapping[str, str], *args: str, timeout: float = 10, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    return _run([str(layout.bin_dir / "kubectl"), "--kubeconfig", str(layout.kubeconfig), *args], env, timeout=timeout, input_text=input_text)


def _kwokctl(layout: spec.Layout, env: Mapping[str, str], *args: str, timeout: float, detach: bool = False) -> subprocess.CompletedProcess[str]:
    return _run([str(layout.bin_dir / "kwokctl"), "--name", spec.CLUSTER_NAME, *args], env, timeout=timeout, detach=detach)


def _fail(what: str, result: subprocess.CompletedProcess[str], layout: spec.Layout) -> InfrastructureError:
    output = spec.tail(result.stderr + result.stdout)
    return InfrastructureError(
        f"local cluster {spec.CLUSTER_NAME!r}: {what} failed (exit {result.returncode}):\n{output}",
        hint=f"component logs are in {layout.cluster_dir / 'logs'}; `envci cluster down` then `envci cluster up` "
        "starts from scratch",
    )


@contextlib.contextmanager
def _locked(layout: spec.Layout) -> Iterator[None]:
    """One up/down at a time per user: parallel test sessions share the cluster, not its creation."""
    layout.cache_root.mkdir(parents=True, exist_ok=True)
    with open(layout.lock_file, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _wait_until(check: Callable[[], bool], *, timeout: float, interval: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            raise InfrastructureError(
                f"local cluster {spec.CLUSTER_NAME!r}: {what} within {timeout:.0f}s",
                hint="see the component logs under ~/.cache/envci/localcluster/kwok/clusters/envci/logs; "
                "`envci cluster down && envci cluster up` recreates the cluster",
            )
        time.sleep(interval)


# --- cluster state ---------------------------------------------------------------------------------------

def _api_ready(layout: spec.Layout, env: Mapping[str, str]) -> bool:
    if not layout.kubeconfig.is_file():
        return False
    result = _kubectl(layout, env, "get", "--raw", "/readyz", "--request-timeout=3s")
    return result.returncode == 0 and result.stdout.strip() == "ok"


def _nodes(layout: spec.Layout, env: Mapping[str, str]) -> list[dict[str, Any]]:
    result = _kubectl(layout, env, "get", "nodes", "-o", "json", "--request-timeout=5s")
    if result.returncode != 0:
        return []
    return spec.node_summary(json.loads(result.stdout))


def _ready_nodes(layout: spec.Layout, env: Mapping[str, str]) -> int:
    return sum(1 for n in _nodes(layout, env) if n["ready"])


def _create(layout: spec.Layout, env: Mapping[str, str], settings: Settings, progress: Progress) -> None:
    progress(f"creating cluster {spec.CLUSTER_NAME!r} (kube-apiserver, etcd, controller-manager, scheduler, kwok)")
    result = _kwokctl(layout, env, *spec.create_args(layout, KWOK_CONFIG), timeout=settings.command_timeout, detach=True)
    if result.returncode != 0:
        error = _fail("kwokctl create cluster", result, layout)
        _delete(layout, env, settings)  # leave no half-started processes behind
        raise error
    layout.fingerprint_file.write_text(spec.fingerprint(KWOK_CONFIG.read_text(), layout.bin_dir))


def _delete(layout: spec.Layout, env: Mapping[str, str], settings: Settings) -> None:
    if layout.cluster_dir.exists():
        # kwokctl removes the cluster's context from a kubeconfig, ~/.kube/config by default (which it
        # would create), and refuses an empty path: give it the cluster's own file, deleted anyway.
        _kwokctl(layout, env, "delete", "cluster", "--kubeconfig", str(layout.kubeconfig), timeout=settings.command_timeout)
        # kwokctl stops what its pid files name; a component started twice (a failed restart) can be
        # missing from them, so sweep for anything still running from the cluster's directory.
        _stop_processes(layout)
    shutil.rmtree(layout.cluster_dir, ignore_errors=True)


def _stop_processes(layout: spec.Layout, grace: float = 5.0) -> None:
    """Stop the cluster's processes when kwokctl could not: never leave them orphaned."""
    pids = _cluster_processes(layout)
    if not pids:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in [p for p in pids if _alive(p)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
            time.sleep(0.1)


def _cluster_processes(layout: spec.Layout) -> list[int]:
    """Processes running a program from this cluster's bin/ directory (kwokctl links every component
    there), whether or not a pid file still names them; nothing else is ever matched."""
    prefix = str(layout.cluster_dir / "bin") + "/"
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv0 = (proc / "cmdline").read_bytes().split(b"\0", 1)[0].decode(errors="replace")
            if argv0.startswith(prefix):
                found.append(int(proc.name))
    return found


def _alive(pid: int) -> bool:
    """True while the process runs (a zombie waiting to be reaped counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return False


def _converge(layout: spec.Layout, env: Mapping[str, str], settings: Settings, progress: Progress) -> None:
    """Make a cluster made from the current kwok.yaml and binaries answer, reusing one if it can."""
    wanted = spec.fingerprint(KWOK_CONFIG.read_text(), layout.bin_dir)
    if layout.cluster_dir.exists():
        have = layout.fingerprint_file.read_text().strip() if layout.fingerprint_file.is_file() else ""
        if have != wanted:
            progress("kwok.yaml or the binaries changed since the cluster was made: recreating it")
            _delete(layout, env, settings)
        elif _api_ready(layout, env):
            progress(f"reusing running cluster {spec.CLUSTER_NAME!r}")
            return
        elif _cluster_processes(layout):
            # Running but slow to answer (starting, or loaded by another test session): wait for it
            # rather than wipe a cluster others may be using.
            progress(f"cluster {spec.CLUSTER_NAME!r} is running but does not answer yet: waiting")
            _wait_until(lambda: _api_ready(layout, env), timeout=settings.api_timeout, interval=settings.poll_interval, what="the running cluster's API did not answer")
            return
        else:
            # Its processes are gone (a reboot, a kill). `kwokctl start cluster` was seen to hang for
            # minutes and leave strays here; a fresh cluster takes 5 s and holds nothing worth keeping.
            progress(f"cluster {spec.CLUSTER_NAME!r} exists but is not running: recreating it")
            _delete(layout, env, settings)
    if not layout.cluster_dir.exists():
        _create(layout, env, settings, progress)
    _wait_until(lambda: _api_ready(layout, env), timeout=settings.api_timeout, interval=settings.poll_interval, what="the API (/readyz) did not answer")


def _ensure_nodes(layout: spec.Layout, env: Mapping[str, str], settings: Settings, progress: Progress) -> None:
    if len(_nodes(layout, env)) < settings.nodes:
        progress(f"adding simulated nodes (total {settings.nodes})")
        result = _kwokctl(layout, env, "scale", "node", "--replicas", str(settings.nodes), timeout=settings.command_timeout)
        if result.returncode != 0:
            raise _fail("kwokctl scale node", result, layout)
    _wait_until(
        lambda: _ready_nodes(layout, env) >= settings.nodes,
        timeout=settings.nodes_timeout,
        interval=settings.poll_interval,
        what=f"{settings.nodes} nodes did not become Ready",
    )


def _apply_defaults(layout: spec.Layout, env: Mapping[str, str]) -> None:
    """The default ClusterLogs and StorageClass, re-applied on every `up` (cheap, heals a deleted one)."""
    layout.default_log_file.write_text(spec.cri_log(spec.DEFAULT_LOG_TEXT))
    manifest = json.dumps(spec.default_objects(layout.default_log_file))
    result = _kubectl(layout, env, "apply", "--server-side", "--field-manager=envci", "-f", "-", input_text=manifest, timeout=30)
    if result.returncode != 0:
        raise _fail("applying the default ClusterLogs and StorageClass", result, layout)


# --- public API ------------------------------------------------------------------------------------------

def up(settings: Settings = Settings(), progress: Progress = _stderr) -> Path:
    """Start the local cluster, or reuse the running one; returns its kubeconfig path.

    Returns once the API answers /readyz and `settings.nodes` nodes are Ready.
    """
    started = time.monotonic()
    bin_dir = ensure_binaries(progress)
    layout = spec.Layout(bin_dir=bin_dir)
    env = spec.kwok_env(layout, os.environ)
    with _locked(layout):
        _converge(layout, env, settings, progress)
        _ensure_nodes(layout, env, settings, progress)
        _apply_defaults(layout, env)
    progress(f"cluster {spec.CLUSTER_NAME!r} ready in {time.monotonic() - started:.1f}s: KUBECONFIG={layout.kubeconfig}")
    return layout.kubeconfig


def down(settings: Settings = Settings(), progress: Progress = _stderr) -> None:
    """Stop every process of the local cluster and remove its files; the binary cache stays."""
    layout = _layout()
    env = spec.kwok_env(layout, os.environ)
    with _locked(layout):
        if not layout.cluster_dir.exists():
            progress(f"cluster {spec.CLUSTER_NAME!r} is not running: nothing to remove")
        else:
            progress(f"deleting cluster {spec.CLUSTER_NAME!r}")
            _delete(layout, env, settings)
        # kwokctl leaves its (now empty) workdir and cache; they are ours to remove.
        shutil.rmtree(layout.kwok_workdir, ignore_errors=True)


def kubeconfig_path() -> Path:
    """Where the local cluster's kubeconfig is (it exists only while the cluster does)."""
    return _layout().kubeconfig


def status() -> dict[str, Any]:
    """What a user or a test needs to know about the local cluster, as plain data."""
    layout = _layout()
    env = spec.kwok_env(layout, os.environ)
    present = _present(layout.bin_dir)
    exists = layout.cluster_dir.exists() and layout.kubeconfig.is_file()
    running = exists and "kubectl" in present and _api_ready(layout, env)
    return {
        "name": spec.CLUSTER_NAME,
        "running": running,
        "kubeconfig": str(layout.kubeconfig) if exists else None,
        "server": spec.server_from_kubeconfig(layout.kubeconfig.read_text()) if exists else None,
        "versions": spec.versions_from_key(layout.bin_dir),
        "binaries": str(layout.bin_dir),
        "binaries_missing": spec.missing_binaries(present),
        "nodes": _nodes(layout, env) if running else [],
    }
