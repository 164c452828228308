"""The local cluster's real node: containerd, kubelet, kube-proxy and the node agent on this host.

`prepare` checks the host and sets up the network before the control plane starts (the API server
must be able to listen for pods at the bridge address); `start` writes the configuration and starts
the processes; `teardown` undoes all of it, from any state (half made, crashed, after a reboot), and
leaves no process, mount, link, route, iptables chain, cgroup or directory behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypedDict, cast

from envci.errors import InfrastructureError
from envci.localcluster import hostops, nodespec
from envci.localcluster.nodespec import Network, NodeLayout

Progress = Callable[[str], None]

PROCESSES: tuple[str, ...] = ("containerd", "kubelet", "kube-proxy", "agent")
"""Started in this order, stopped in the reverse one."""

HOST_PATHS: tuple[str, ...] = ("/var/lib/kubelet", "/var/lib/cni", "/var/log/pods", "/var/log/containers", "/run/containerd")
"""Paths the kubelet, containerd and the CNI plugins use whatever they are configured with (device
plugin sockets, the CNI result cache, container logs, shim sockets): removed at `down` if `up`
found them absent."""

ALLOW_PULLS_ENV = "ENVCI_ALLOW_PULLS"


class _HostState(TypedDict, total=False):
    """What `up` changed on the host, recorded in the node's host state file for `down` to restore."""

    sysctls: dict[str, str]
    absent_paths: list[str]


class HostUnsuitable(InfrastructureError):
    """This host cannot run a real node (no root, no cgroups, a port taken, a missing tool)."""


# --- checks -----------------------------------------------------------------------------------------------

def problems(layout: NodeLayout, net: Network) -> list[str]:
    """Everything that stops a real node on this host, each with its fix; empty when all is well."""
    found: list[str] = []
    if os.geteuid() != 0:
        found.append("the real node needs root (it creates a bridge, iptables chains and cgroups): run as root, "
                     "or use `envci cluster up --nodes simulated`")
    for controller in ("memory", "pids", "cpu"):
        if not (Path("/sys/fs/cgroup") / controller).is_dir() and not Path("/sys/fs/cgroup/cgroup.controllers").is_file():
            found.append(f"no {controller} cgroup controller under /sys/fs/cgroup: mount cgroups (v1 or v2)")
    tools = {"/usr/bin/runc": "runc", "/usr/lib/cni/bridge": "containernetworking-plugins",
             "/usr/lib/cni/host-local": "containernetworking-plugins", "/usr/lib/cni/loopback": "containernetworking-plugins",
             "/usr/lib/cni/portmap": "containernetworking-plugins"}
    for path, package in tools.items():
        if not os.access(path, os.X_OK):
            found.append(f"{path} is missing: apt-get install {package}")
    for tool, package in (("iptables", "iptables"), ("ip", "iproute2"), ("conntrack", "conntrack")):
        if shutil.which(tool) is None:
            found.append(f"`{tool}` is missing: apt-get install {package}")
    for binary in ("containerd", "containerd-shim-runc-v2", "ctr", "kubelet", "kube-proxy"):
        if not os.access(layout.bin_dir / binary, os.X_OK):
            found.append(f"{layout.bin_dir / binary} is missing: run `bash envci/localcluster/build.sh`")
    if not Path("/proc/sys/net/bridge").is_dir() and hostops.link_exists(net.bridge) is False and os.geteuid() == 0:
        # The bridge-netfilter sysctls appear once a bridge exists; prepare() checks again after making one.
        pass
    for port in nodespec.HOST_PORTS:
        if not hostops.port_free(port):
            owner = hostops.port_owner(port)
            found.append(f"TCP port {port} is in use{f' ({owner})' if owner else ''}: stop that program "
                         "(another kubelet or kube-proxy?) or use `envci cluster up --nodes simulated`")
    clashes = hostops.routes_via_other_devices(net.guarded, net.bridge) if shutil.which("ip") else []
    if clashes:
        found.append(f"another network already uses {net.guarded}: {clashes[0]}; remove it first")
    return found


def check_host(layout: NodeLayout, net: Network) -> None:
    found = problems(layout, net)
    if found:
        raise HostUnsuitable(
            "this host cannot run the local cluster's real node:\n  - " + "\n  - ".join(found),
            hint="fix the items above and run `envci cluster up` again; nothing was changed",
        )


# --- host network -----------------------------------------------------------------------------------------

def _record_host_state(layout: NodeLayout) -> None:
    """What `up` is about to change, kept until `down` restores it (only the first `up` records)."""
    if layout.host_state_file.is_file():
        return
    layout.lib_dir.mkdir(parents=True, exist_ok=True)
    state: _HostState = {
        "sysctls": hostops.read_sysctls(nodespec.KERNEL_SYSCTLS),
        "absent_paths": [p for p in HOST_PATHS if not os.path.lexists(p)],
    }
    layout.host_state_file.write_text(json.dumps(state, indent=2))


def prepare(layout: NodeLayout, net: Network, api_port: int | None = None) -> None:
    """Bridge, route, forwarding and the guard chains: before the control plane, which listens for pods
    at the bridge address. Idempotent."""
    _record_host_state(layout)
    hostops.ensure_bridge(net.bridge, f"{net.gateway}/{net.prefix}")
    hostops.route_replace(net.routed, net.bridge)
    if not Path("/proc/sys/net/bridge").is_dir():
        raise HostUnsuitable(
            "the kernel has no bridge netfilter (/proc/sys/net/bridge is missing), so Services cannot route between pods",
            hint="load it with `modprobe br_netfilter`, or use `envci cluster up --nodes simulated`",
        )
    hostops.write_sysctl("net.ipv4.ip_forward", "1")
    hostops.write_sysctl("net.bridge.bridge-nf-call-iptables", "1")
    if api_port is not None:
        guard(net, api_port)


def guard(net: Network, api_port: int) -> None:
    hostops.ensure_chains(nodespec.guard_chains(net, api_port), nodespec.GUARD_JUMPS)


# --- processes --------------------------------------------------------------------------------------------

def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def write_configs(layout: NodeLayout, net: Network, env: Mapping[str, str]) -> None:
    allow_pulls = env.get(ALLOW_PULLS_ENV, "") not in ("", "0", "false", "no")
    for d in (layout.containerd_root, layout.kubelet_root, layout.volumes_dir, layout.cni_ipam_dir, layout.logs_dir, layout.pid_dir):
        d.mkdir(parents=True, exist_ok=True)
    _write(layout.config_dir / "containerd.toml", nodespec.containerd_config(layout, net))
    hosts = nodespec.registry_hosts(allow_pulls)
    hosts_file = nodespec.registry_dir(layout) / "_default" / "hosts.toml"
    if hosts:
        _write(hosts_file, hosts)
    else:
        hosts_file.unlink(missing_ok=True)
    _write(layout.cni_conf_dir / "10-envci.conflist", json.dumps(nodespec.cni_conflist(layout, net), indent=2))
    _write(layout.resolv_conf, "")
    _write(layout.config_dir / "kubelet.yaml", nodespec.dump_yaml(nodespec.kubelet_config(layout, net)))
    _write(layout.config_dir / "kube-proxy.yaml", nodespec.dump_yaml(nodespec.kube_proxy_config(layout, net)))


def _args(name: str, layout: NodeLayout, net: Network) -> list[str]:
    if name == "containerd":
        return nodespec.containerd_args(layout)
    if name == "kubelet":
        return nodespec.kubelet_args(layout, net)
    if name == "kube-proxy":
        return nodespec.kube_proxy_args(layout)
    return nodespec.agent_args(layout, net, sys.executable)


def _pid_file(layout: NodeLayout, name: str) -> Path:
    return layout.pid_dir / f"{name}.pid"


def log_file(layout: NodeLayout, name: str) -> Path:
    return layout.logs_dir / f"{name}.log"


def running(layout: NodeLayout, net: Network) -> dict[str, int | None]:
    """Each node process and its pid, or None when it is not running."""
    return {name: hostops.recorded_pid(_pid_file(layout, name), _is_process(name, layout, net)) for name in PROCESSES}


def _is_process(name: str, layout: NodeLayout, net: Network) -> Callable[[list[str]], bool]:
    if name == "agent":
        # Any interpreter may have started the agent (a nox session's, the system's): match the module.
        return lambda args: "envci.localcluster.agent" in args and str(layout.kubeconfig) in args
    program = _args(name, layout, net)[0]
    return lambda args: args[0] == program


def process_env(layout: NodeLayout, base: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in base.items() if k not in ("KUBECONFIG",)}
    # containerd finds its shim on PATH; runc, iptables, ip and conntrack come from the system.
    env["PATH"] = f"{layout.bin_dir}:/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin"
    env.setdefault("HOME", "/root")
    return env


def start_process(name: str, layout: NodeLayout, net: Network, env: Mapping[str, str]) -> int:
    pid = running(layout, net)[name]
    if pid is not None:
        return pid
    return hostops.spawn(_args(name, layout, net), log=log_file(layout, name), pid_file=_pid_file(layout, name), env=process_env(layout, env))


def start_runtime(layout: NodeLayout, net: Network, env: Mapping[str, str], progress: Progress) -> None:
    """containerd, ready for image imports (the kubelet needs the sandbox image before any pod)."""
    write_configs(layout, net, env)
    progress("starting containerd")
    start_process("containerd", layout, net, env)
    hostops.wait_for(layout.containerd_socket, timeout=30, what="containerd", log=log_file(layout, "containerd"))


def start_node(layout: NodeLayout, net: Network, env: Mapping[str, str], progress: Progress) -> None:
    progress(f"starting kubelet, kube-proxy and the node agent (node {layout.node_name})")
    hostops.create_cgroups(nodespec.cgroup_root(layout))
    for name in ("kubelet", "kube-proxy", "agent"):
        start_process(name, layout, net, env)


def dead_processes(layout: NodeLayout, net: Network) -> list[str]:
    return [name for name, pid in running(layout, net).items() if pid is None]


# --- teardown ---------------------------------------------------------------------------------------------

def _node_process(layout: NodeLayout) -> Callable[[list[str]], bool]:
    """Processes of this node: our binaries, and shims serving our containerd socket."""
    ours = {str(layout.bin_dir / b) for b in ("containerd", "kubelet", "kube-proxy")}
    socket_arg = str(layout.containerd_socket)

    def match(args: list[str]) -> bool:
        if args[0] in ours:
            return True
        if args[0].endswith("containerd-shim-runc-v2") and any(socket_arg in a for a in args):
            return True
        return "envci.localcluster.agent" in args and str(layout.kubeconfig) in args

    return match


def teardown(layout: NodeLayout, net: Network, progress: Progress) -> None:
    """Remove the node and everything it made on the host. Safe on a node that never fully started."""
    pids = running(layout, net)
    # Agents and kube-proxy first (they remove their own iptables rules on SIGTERM), then the kubelet
    # so nothing restarts containers, then the containers themselves, their shims and containerd.
    for name in ("agent", "kube-proxy", "kubelet"):
        pid = pids.get(name)
        if pid:
            hostops.stop([pid])
    hostops.stop(hostops.cgroup_pids(nodespec.cgroup_root(layout)), grace=2.0)
    hostops.stop(hostops.processes_matching(_node_process(layout)), grace=5.0)
    runc_root = layout.run_dir / "runc"
    hostops.unmount_all([layout.run_dir, layout.lib_dir])
    state = _load_host_state(layout)
    for bridge_port in hostops.bridge_ports(net.bridge):
        hostops.delete_link(bridge_port)
    hostops.delete_link(net.bridge)  # its address and routes go with it
    if shutil.which("iptables"):
        hostops.remove_our_chains()
    for name, value in state.get("sysctls", {}).items():
        with contextlib.suppress(InfrastructureError):
            hostops.write_sysctl(name, value)
    hostops.remove_cgroups(nodespec.cgroup_root(layout))
    _remove_stale_shim_sockets()
    for path in state.get("absent_paths", []):
        shutil.rmtree(path, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.unlink(path)
    for d in (runc_root, layout.run_dir, layout.lib_dir):
        shutil.rmtree(d, ignore_errors=True)
    for parent in (layout.run_dir.parent, layout.lib_dir.parent):
        with contextlib.suppress(OSError):
            parent.rmdir()
    progress(f"real node {layout.node_name} removed")


def _load_host_state(layout: NodeLayout) -> _HostState:
    try:
        return cast(_HostState, dict(json.loads(layout.host_state_file.read_text())))
    except (OSError, ValueError):
        return {}


def _remove_stale_shim_sockets() -> None:
    """containerd puts shim sockets in /run/containerd/s whatever its state directory: remove those no
    process listens on any more (ours are all stopped by now; another containerd's live ones stay)."""
    shim_dir = Path("/run/containerd/s")
    if not shim_dir.is_dir():
        return
    live = hostops.listening_unix_sockets()
    for sock in shim_dir.iterdir():
        if str(sock) not in live:
            with contextlib.suppress(OSError):
                sock.unlink()
    with contextlib.suppress(OSError):
        shim_dir.rmdir()


def leftovers(layout: NodeLayout, net: Network) -> dict[str, list[str]]:
    """What of the node is still on the host: empty lists after a clean `down` (used by tests and status)."""
    return {
        "processes": [" ".join(hostops.cmdline(p)[:3]) for p in hostops.processes_matching(_node_process(layout))],
        "mounts": hostops.mounts_under([layout.run_dir, layout.lib_dir]),
        "links": [n for n in [net.bridge, *hostops.bridge_ports(net.bridge)] if hostops.link_exists(n)],
        "iptables": hostops.our_chains() if shutil.which("iptables") else [],
        "cgroups": [str(p) for p in hostops.cgroup_dirs(nodespec.cgroup_root(layout))],
        "directories": [str(p) for p in (layout.run_dir, layout.lib_dir) if p.exists()],
    }
