"""Start, reuse, inspect and remove the local clusters: the I/O shell around spec.py and node.py.

Two flavours share one control-plane recipe (kwokctl's binary runtime: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler as local processes from binaries build.sh compiled):

- `real` (cluster `envci`): one real node beside the control plane (containerd, runc, kubelet,
  kube-proxy, CoreDNS, NetworkPolicy enforcement, LoadBalancer addresses); containers really run.
- `simulated` (cluster `envci-sim`): kwok plays the kubelet for two fake nodes; nothing runs, which
  makes it the place for scale tests and for charts whose images cannot be pulled here.

They can run side by side, each with its own ports and kubeconfig.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envci.errors import InfrastructureError
from envci.localcluster import hostops, node, nodespec, spec

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build.sh"
KWOK_CONFIG = HERE / "kwok.yaml"

Progress = Callable[[str], None]


class BinariesUnavailable(InfrastructureError):
    """The binaries are not built and cannot be: there is no Go toolchain on this machine."""


@dataclass(frozen=True)
class Settings:
    """How long the local cluster may take; all in seconds."""

    flavour: str = spec.REAL
    """`real` (containers run on a real node) or `simulated` (kwok nodes, nothing runs)."""
    nodes: int = 2
    """Simulated nodes (simulated flavour only). Two, so spreading and anti-affinity have somewhere to go."""
    api_timeout: float = 90.0
    """Until /readyz answers after a start; etcd and the API server take 2-5 s on a warm machine."""
    nodes_timeout: float = 60.0
    """Until the nodes report Ready: kwok marks them within a second, a real kubelet within 3-10 s."""
    addons_timeout: float = 120.0
    """Until CoreDNS answers on a real node (its image is loaded by then; it starts in about a second)."""
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


def _layout(flavour: str = spec.REAL) -> spec.Layout:
    return spec.Layout(bin_dir=binaries_dir(), name=spec.cluster_name(flavour))


def node_layout(layout: spec.Layout) -> nodespec.NodeLayout:
    return nodespec.NodeLayout(cluster=layout.name, bin_dir=layout.bin_dir, cluster_dir=layout.cluster_dir)


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
    return _run([str(layout.bin_dir / "kwokctl"), "--name", layout.name, *args], env, timeout=timeout, detach=detach)


def _fail(what: str, result: subprocess.CompletedProcess[str], layout: spec.Layout) -> InfrastructureError:
    output = spec.tail(result.stderr + result.stdout)
    return InfrastructureError(
        f"local cluster {layout.name!r}: {what} failed (exit {result.returncode}):\n{output}",
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


def _wait_until(check: Callable[[], bool], *, timeout: float, interval: float, what: str, layout: spec.Layout) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            raise InfrastructureError(
                f"local cluster {layout.name!r}: {what} within {timeout:.0f}s",
                hint=f"see the component logs under {layout.cluster_dir / 'logs'} and {node_layout(layout).logs_dir}; "
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


def _config_text(layout: spec.Layout) -> str:
    """The kwokctl configuration of this flavour: kwok.yaml's stages for the simulated one, the real
    node's control-plane settings for the real one; each with a Service range in 198.19.0.0/16."""
    base = KWOK_CONFIG.read_text()
    if layout.name == spec.SIMULATED_NAME:
        return spec.kwokctl_config(base, nodespec.simulated_patches())
    options = nodespec.control_plane_patches(node_layout(layout), nodespec.Network())
    # kwok's stages and fault simulation serve fake nodes only; the real node needs none of them.
    return spec.kwokctl_config(REAL_BASE_CONFIG, options)


REAL_BASE_CONFIG = """\
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  bindAddress: 127.0.0.1
"""


def _api_port(layout: spec.Layout) -> int:
    server = spec.server_from_kubeconfig(layout.kubeconfig.read_text()) or ""
    try:
        return int(server.rsplit(":", 1)[1].rstrip("/"))
    except (IndexError, ValueError) as e:
        raise InfrastructureError(f"local cluster {layout.name!r}: no API server port in {layout.kubeconfig}") from e


def _create(layout: spec.Layout, env: Mapping[str, str], settings: Settings, progress: Progress) -> None:
    progress(f"creating cluster {layout.name!r} (kube-apiserver, etcd, controller-manager, scheduler)")
    config_file = layout.cache_root / f"{layout.name}.kwokctl.yaml"
    config_text = _config_text(layout)
    config_file.write_text(config_text)
    result = _kwokctl(layout, env, *spec.create_args(layout, config_file), timeout=settings.command_timeout, detach=True)
    if result.returncode != 0:
        error = _fail("kwokctl create cluster", result, layout)
        _delete(layout, env, settings, progress)  # leave no half-started processes behind
        raise error
    layout.fingerprint_file.write_text(spec.fingerprint(config_text, layout.bin_dir))


def _delete(layout: spec.Layout, env: Mapping[str, str], settings: Settings, progress: Progress) -> None:
    if layout.name == spec.CLUSTER_NAME:
        # The node first: its kubelet and agents talk to the API server until they are stopped.
        node.teardown(node_layout(layout), nodespec.Network(), progress)
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
    hostops.stop(_cluster_processes(layout), grace=grace)


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


def _healthy(layout: spec.Layout, env: Mapping[str, str]) -> bool:
    if not _api_ready(layout, env):
        return False
    if layout.name != spec.CLUSTER_NAME:
        return True
    dead = node.dead_processes(node_layout(layout), nodespec.Network())
    return not dead


RESTARTABLE = frozenset({"agent", "kube-proxy"})
"""Node processes `up` restarts in place; any other one gone means the node is recreated."""


def _converge(layout: spec.Layout, env: Mapping[str, str], settings: Settings, progress: Progress) -> bool:
    """Make a cluster made from the current configuration and binaries answer, reusing one if it can.

    Returns True when a new cluster was created.
    """
    wanted = spec.fingerprint(_config_text(layout), layout.bin_dir)
    real = layout.name == spec.CLUSTER_NAME
    if layout.cluster_dir.exists():
        have = layout.fingerprint_file.read_text().strip() if layout.fingerprint_file.is_file() else ""
        if have != wanted:
            progress("the configuration or the binaries changed since the cluster was made: recreating it")
            _delete(layout, env, settings, progress)
        elif _healthy(layout, env):
            progress(f"reusing running cluster {layout.name!r}")
            return False
        elif real and _api_ready(layout, env) and set(node.dead_processes(node_layout(layout), nodespec.Network())) <= RESTARTABLE:
            # The agent and kube-proxy hold no state of their own: start them again, keep the workloads.
            dead = node.dead_processes(node_layout(layout), nodespec.Network())
            progress(f"restarting {', '.join(dead)} of cluster {layout.name!r}")
            for name in dead:
                node.start_process(name, node_layout(layout), nodespec.Network(), {**env, "KUBECONFIG": str(layout.kubeconfig)})
            return False
        elif _cluster_processes(layout) and not real:
            # Running but slow to answer (starting, or loaded by another test session): wait for it
            # rather than wipe a cluster others may be using.
            progress(f"cluster {layout.name!r} is running but does not answer yet: waiting")
            _wait_until(lambda: _api_ready(layout, env), timeout=settings.api_timeout, interval=settings.poll_interval, what="the running cluster's API did not answer", layout=layout)
            return False
        else:
            # Its processes are gone or broken (a reboot, a kill, a crash). `kwokctl start cluster` was
            # seen to hang for minutes; a fresh cluster takes seconds and holds nothing worth keeping.
            what = "is not running" if not _api_ready(layout, env) else f"has stopped node processes ({', '.join(node.dead_processes(node_layout(layout), nodespec.Network()))})"
            progress(f"cluster {layout.name!r} {what}: recreating it")
            _delete(layout, env, settings, progress)
    elif real and (node_layout(layout).host_state_file.exists() or node_layout(layout).run_dir.exists()):
        progress("a previous real node left state on this host (crash or reboot): removing it first")
        _delete(layout, env, settings, progress)
    if real:
        node.check_host(node_layout(layout), nodespec.Network())
        # The bridge must exist before the API server starts: pods reach it at the bridge address.
        node.prepare(node_layout(layout), nodespec.Network())
    try:
        _create(layout, env, settings, progress)
        _wait_until(lambda: _api_ready(layout, env), timeout=settings.api_timeout, interval=settings.poll_interval, what="the API (/readyz) did not answer", layout=layout)
    except BaseException:
        if real:
            _delete(layout, env, settings, progress)
        raise
    return True


def _ensure_nodes(layout: spec.Layout, env: Mapping[str, str], settings: Settings, progress: Progress) -> None:
    if len(_nodes(layout, env)) < settings.nodes:
        progress(f"adding simulated nodes (total {settings.nodes})")
        _apply(layout, env, nodespec.simulated_nodes(settings.nodes), "the simulated nodes")
    _wait_until(
        lambda: _ready_nodes(layout, env) >= settings.nodes,
        timeout=settings.nodes_timeout,
        interval=settings.poll_interval,
        what=f"{settings.nodes} nodes did not become Ready",
        layout=layout,
    )


def _apply(layout: spec.Layout, env: Mapping[str, str], objects: list[dict[str, Any]], what: str) -> None:
    manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    result = _kubectl(layout, env, "apply", "--server-side", "--force-conflicts", "--field-manager=envci", "-f", "-", input_text=manifest, timeout=30)
    if result.returncode != 0:
        raise _fail(f"applying {what}", result, layout)


def _apply_defaults(layout: spec.Layout, env: Mapping[str, str]) -> None:
    """The default ClusterLogs and StorageClass, re-applied on every `up` (cheap, heals a deleted one)."""
    layout.default_log_file.write_text(spec.cri_log(spec.DEFAULT_LOG_TEXT))
    _apply(layout, env, spec.default_objects(layout.default_log_file)["items"], "the default ClusterLogs and StorageClass")


def _ensure_real_node(layout: spec.Layout, env: Mapping[str, str], settings: Settings, progress: Progress) -> None:
    """Start the node's processes (those not running), load the system images, apply CoreDNS and the
    default StorageClass, and wait until the node is Ready and cluster DNS answers."""
    nl, net = node_layout(layout), nodespec.Network()
    node.prepare(nl, net, _api_port(layout))
    node_env = {**env, "KUBECONFIG": str(layout.kubeconfig)}
    node.start_runtime(nl, net, node_env, progress)
    load_system_images(nl, progress)
    node.start_node(nl, net, node_env, progress)
    _wait_until(
        lambda: _ready_nodes(layout, env) >= 1,
        timeout=settings.nodes_timeout,
        interval=settings.poll_interval,
        what=f"the real node {nl.node_name} did not become Ready (kubelet log: {node.log_file(nl, 'kubelet')})",
        layout=layout,
    )
    _apply(layout, env, nodespec.addon_objects(net, nl), "CoreDNS and the default StorageClass")
    _wait_until(
        lambda: _kubectl(layout, env, "-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=2s", timeout=10).returncode == 0,
        timeout=settings.addons_timeout,
        interval=settings.poll_interval,
        what="CoreDNS did not become ready (`kubectl -n kube-system describe pod -l k8s-app=kube-dns` says why)",
        layout=layout,
    )


def load_system_images(nl: nodespec.NodeLayout, progress: Progress) -> None:
    """The sandbox (pause), CoreDNS and busybox images, built offline and imported if missing."""
    from envci.images import build, containerd  # imported late: `status` and `down` need neither

    archives = build.build(build.Sources(bin_dir=nl.bin_dir), only=list(nodespec.SYSTEM_IMAGES), log=progress)
    containerd.ensure_loaded(archives, nl.containerd_socket, nl.bin_dir / "ctr", progress=progress)


# --- public API ------------------------------------------------------------------------------------------

def up(settings: Settings = Settings(), progress: Progress = _stderr) -> Path:
    """Start a local cluster of `settings.flavour`, or reuse the running one; returns its kubeconfig path.

    Returns once the API answers /readyz and the nodes are Ready (on a real node: and CoreDNS too).
    """
    if settings.flavour not in spec.FLAVOURS:
        raise InfrastructureError(f"unknown node flavour {settings.flavour!r}", hint=f"use one of {', '.join(spec.FLAVOURS)}")
    started = time.monotonic()
    bin_dir = ensure_binaries(progress)
    layout = spec.Layout(bin_dir=bin_dir, name=spec.cluster_name(settings.flavour))
    env = spec.kwok_env(layout, os.environ)
    with _locked(layout):
        _converge(layout, env, settings, progress)
        if settings.flavour == spec.REAL:
            try:
                _ensure_real_node(layout, env, settings, progress)
            except BaseException:
                progress("the real node did not come up: removing it so nothing is left half-made")
                _delete(layout, env, settings, progress)
                raise
        else:
            _ensure_nodes(layout, env, settings, progress)
            _apply_defaults(layout, env)
    progress(f"cluster {layout.name!r} ({settings.flavour} nodes) ready in {time.monotonic() - started:.1f}s: KUBECONFIG={layout.kubeconfig}")
    return layout.kubeconfig


def down(settings: Settings = Settings(), progress: Progress = _stderr) -> None:
    """Stop every process of the local cluster and remove what it made; the binary and image caches stay."""
    layout = _layout(settings.flavour)
    env = spec.kwok_env(layout, os.environ)
    with _locked(layout):
        if not layout.cluster_dir.exists() and not (
            layout.name == spec.CLUSTER_NAME and (node_layout(layout).lib_dir.exists() or node_layout(layout).run_dir.exists())
        ):
            progress(f"cluster {layout.name!r} is not running: nothing to remove")
        else:
            progress(f"deleting cluster {layout.name!r}")
            _delete(layout, env, settings, progress)
        (layout.cache_root / f"{layout.name}.kwokctl.yaml").unlink(missing_ok=True)
        # kwokctl leaves its (now empty) workdir and cache; they are ours to remove once no cluster is left.
        clusters = layout.kwok_workdir / "clusters"
        if not clusters.is_dir() or not any(clusters.iterdir()):
            shutil.rmtree(layout.kwok_workdir, ignore_errors=True)


def kubeconfig_path(flavour: str = spec.REAL) -> Path:
    """Where the local cluster's kubeconfig is (it exists only while the cluster does)."""
    return _layout(flavour).kubeconfig


def containerd_socket() -> Path:
    """The real node's containerd socket (for `envci cluster load-image`)."""
    return node_layout(_layout(spec.REAL)).containerd_socket


def status(flavour: str = spec.REAL) -> dict[str, Any]:
    """What a user or a test needs to know about the local cluster, as plain data."""
    layout = _layout(flavour)
    env = spec.kwok_env(layout, os.environ)
    present = _present(layout.bin_dir)
    exists = layout.cluster_dir.exists() and layout.kubeconfig.is_file()
    running = exists and "kubectl" in present and _api_ready(layout, env)
    info: dict[str, Any] = {
        "name": layout.name,
        "flavour": flavour,
        "running": running,
        "kubeconfig": str(layout.kubeconfig) if exists else None,
        "server": spec.server_from_kubeconfig(layout.kubeconfig.read_text()) if exists else None,
        "versions": spec.versions_from_key(layout.bin_dir),
        "binaries": str(layout.bin_dir),
        "binaries_missing": spec.missing_binaries(present),
        "nodes": _nodes(layout, env) if running else [],
    }
    if flavour == spec.REAL:
        nl = node_layout(layout)
        processes = node.running(nl, nodespec.Network())
        info["node_processes"] = {name: pid for name, pid in processes.items()}
        info["containerd_socket"] = str(nl.containerd_socket)
        info["network"] = {"pods": nodespec.Network().pod_subnet, "services": nodespec.Network().service_range,
                           "load_balancers": nodespec.Network().lb_pool, "bridge": nodespec.Network().bridge}
        if running and any(pid is None for pid in processes.values()):
            info["running"] = False
    return info
