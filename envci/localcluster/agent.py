"""The local cluster's node agent: NetworkPolicy enforcement and LoadBalancer addresses on the real node.

Started by `envci cluster up` beside the kubelet and kube-proxy, stopped (SIGTERM) by `envci cluster
down`; both commands are stable:

    python -m envci.localcluster.agent --kubeconfig PATH --node-ip 198.18.0.1 \\
        --pod-cidr 198.18.0.0/17 --bridge envci0 --lb-pool 198.19.255.0/24

    python -m envci.localcluster.agent --cleanup

The first runs until SIGTERM or SIGINT; then it removes its iptables chains and the FORWARD jump and
exits 0. `--cleanup` does only that removal, without a cluster (it is idempotent, for a node whose
agent died), and exits 0.

What it does: it mirrors NetworkPolicies, Pods, Namespaces and Services (list + watch, see
kubewatch.py); after every change, and at most once per `--debounce` seconds, it

- compiles the policies into the ENVCI-NP chains (netpol.py, pure) and, when they differ from what it
  loaded last, loads them with one `iptables-restore --noflush` call (atomic: no moment without
  policy); every `--resync` seconds it also checks that the chains and the FORWARD jump are still in
  place and reloads them if someone removed or buried them;
- decides every LoadBalancer Service's address (lb.py, pure) and patches `status.loadBalancer`
  through the status subresource where it differs; a Service that gets no address gets a Warning
  Event saying why (once per reason).

One line per load goes to stderr: pods, isolated pods, policies, rules and the time it took.
Nothing here decides anything; the decisions are in netpol.py and lb.py.
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from envci.errors import InfrastructureError
from envci.localcluster import lb, netpol
from envci.localcluster.kubewatch import Mirror

log = logging.getLogger("envci.localcluster.agent")

EVENT_SOURCE = "envci-node-agent"


# --- the one iptables adapter ---------------------------------------------------------------------------

def iptables(command: str, stdin: str | None = None) -> str:
    """Run `iptables-save -t filter` (command "save") or `iptables-restore --noflush` (command "restore").

    `-w` waits for the xtables lock that kube-proxy takes while it writes its own rules.
    """
    args = {"save": ["iptables-save", "-t", "filter"], "restore": ["iptables-restore", "-w", "5", "--noflush"]}[command]
    try:
        result = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError as e:
        raise InfrastructureError(f"`{args[0]}` is not installed", hint="apt-get install iptables") from e
    except subprocess.TimeoutExpired as e:
        raise InfrastructureError(f"`{' '.join(args)}` did not finish within 30s") from e
    if result.returncode != 0:
        raise InfrastructureError(f"`{' '.join(args)}` failed (exit {result.returncode}): {result.stderr.strip()[:400]}")
    return result.stdout


def load_chains(ruleset: netpol.Ruleset) -> None:
    netpol_state = netpol.parse_filter_save(iptables("save"))
    iptables("restore", netpol.restore_text(ruleset, netpol_state))


def chains_in_place(ruleset: netpol.Ruleset) -> bool:
    state = netpol.parse_filter_save(iptables("save"))
    return set(state.chains) == set(ruleset.chains) and netpol.jump_in_place(state.forward)


def remove_chains() -> bool:
    """Remove the jump and every ENVCI-NP chain; False when there was nothing to remove."""
    text = netpol.cleanup_text(netpol.parse_filter_save(iptables("save")))
    if text:
        iptables("restore", text)
    return bool(text)


# --- settings and state -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    kubeconfig: Path
    node_ip: str
    """The node's address on the pod bridge: its traffic to pods is always allowed."""
    pod_cidr: str
    """Only pods with an address in it get chains or match selectors."""
    bridge: str
    """The pods' bridge: checked at start for br_netfilter, without which bridged traffic skips iptables."""
    lb_pool: str
    debounce: float = 0.1
    """Seconds to wait after a change for more: a Deployment rollout changes many pods at once."""
    resync: float = 10.0
    """Seconds between checks that the loaded chains are still in place: kube-proxy prepends its own
    FORWARD jumps when it starts, and anyone may flush a chain; kube-proxy resyncs every 10 s too."""


@dataclass
class State:
    loaded: dict[str, list[str]] | None = None
    """The chains loaded last; None until the first load."""
    last_check: float = 0.0
    warned: dict[tuple[str, str], str] = field(default_factory=dict)
    """The Warning Event already posted per Service, so a reason is reported once."""


# --- NetworkPolicy ---------------------------------------------------------------------------------------------

def sync_policies(settings: Settings, state: State, policies: list[dict[str, Any]], pods: list[dict[str, Any]],
                  namespaces: list[dict[str, Any]], *, now: float) -> None:
    started = time.monotonic()
    ruleset = netpol.compile_rules(policies, pods, namespaces, node_ip=settings.node_ip, pod_cidr=settings.pod_cidr)
    due = now - state.last_check >= settings.resync
    if ruleset.chains == state.loaded and not due:
        return
    if ruleset.chains == state.loaded:
        state.last_check = now
        if chains_in_place(ruleset):
            return
        log.warning("netpol: the ENVCI-NP chains or the FORWARD jump were changed by someone else; loading them again")
    load_chains(ruleset)
    state.loaded, state.last_check = ruleset.chains, now
    log.info("netpol: loaded %d pods (%d isolated), %d policies, %d rules in %.0f ms",
             ruleset.pods, ruleset.isolated, ruleset.policies, ruleset.rule_count, (time.monotonic() - started) * 1000)


# --- LoadBalancer ------------------------------------------------------------------------------------------------

def sync_load_balancers(settings: Settings, state: State, core: Any, services: list[dict[str, Any]]) -> None:
    from kubernetes.client.exceptions import ApiException

    allocation = lb.allocate(services, settings.lb_pool)
    by_key = {lb.key_of(s): s for s in services}
    wanted: dict[tuple[str, str], str | None] = {**dict.fromkeys(allocation.release), **allocation.addresses}
    wanted |= {k: None for k in allocation.errors if lb.current_ips(by_key[k])}
    for key, ip in sorted(wanted.items()):
        if not lb.needs_patch(by_key[key], ip):
            continue
        ns, name = key
        try:
            core.patch_namespaced_service_status(name, ns, lb.wanted_status(ip), _content_type="application/merge-patch+json")
        except ApiException as e:
            log.warning("lb: %s/%s: could not set its address (%s %s)", ns, name, e.status, e.reason)
            continue
        log.info("lb: %s/%s -> %s", ns, name, ip or "no address")
    for key, message in sorted(allocation.errors.items()):
        if state.warned.get(key) == message:
            continue
        state.warned[key] = message
        post_warning(core, by_key[key], message)
        log.warning("lb: %s/%s: %s", key[0], key[1], message)
    for key in [k for k in state.warned if k not in allocation.errors]:
        del state.warned[key]


def post_warning(core: Any, svc: dict[str, Any], message: str) -> None:
    from kubernetes.client.exceptions import ApiException

    meta = svc.get("metadata") or {}
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta.get('name')}.", "namespace": meta.get("namespace")},
        "involvedObject": {"apiVersion": "v1", "kind": "Service", "name": meta.get("name"), "namespace": meta.get("namespace"),
                           "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion")},
        "reason": "AllocationFailed",
        "message": message,
        "type": "Warning",
        "source": {"component": EVENT_SOURCE},
        "reportingComponent": EVENT_SOURCE,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        core.create_namespaced_event(meta.get("namespace"), event)
    except ApiException as e:
        log.warning("lb: could not post an Event for %s/%s (%s %s)", meta.get("namespace"), meta.get("name"), e.status, e.reason)


# --- the process -------------------------------------------------------------------------------------------------

def check_bridge(bridge: str) -> None:
    """Warn when bridged pod-to-pod packets would not reach iptables (br_netfilter off)."""
    global_flag = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
    bridge_flag = Path(f"/sys/class/net/{bridge}/bridge/nf_call_iptables")
    values = [p.read_text().strip() for p in (global_flag, bridge_flag) if p.exists()]
    if "1" not in values:
        log.warning("netpol: bridged traffic on %s does not cross iptables (load br_netfilter and set "
                    "net.bridge.bridge-nf-call-iptables=1): policies between pods are not enforced", bridge)


def run(settings: Settings) -> int:
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(settings.kubeconfig))
    core, networking = client.CoreV1Api(api), client.NetworkingV1Api(api)
    stop, changed = threading.Event(), threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("stopping on signal %d", signum)
        stop.set()
        changed.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    mirrors = {
        "policies": Mirror("networkpolicies", networking.list_network_policy_for_all_namespaces, changed.set, stop),
        "pods": Mirror("pods", core.list_pod_for_all_namespaces, changed.set, stop),
        "namespaces": Mirror("namespaces", core.list_namespace, changed.set, stop),
        "services": Mirror("services", core.list_service_for_all_namespaces, changed.set, stop),
    }
    check_bridge(settings.bridge)
    log.info("watching NetworkPolicies, Pods, Namespaces and Services (node %s, pods %s, LoadBalancer pool %s)",
             settings.node_ip, settings.pod_cidr, settings.lb_pool)
    for mirror in mirrors.values():
        mirror.start()
    state = State()
    failures = 0
    try:
        while not stop.is_set():
            changed.wait(timeout=settings.resync)
            if stop.is_set():
                break
            stop.wait(settings.debounce)  # let a burst of events settle
            changed.clear()
            try:
                if all(mirrors[k].synced for k in ("policies", "pods", "namespaces")):
                    sync_policies(settings, state, mirrors["policies"].snapshot(), mirrors["pods"].snapshot(),
                                  mirrors["namespaces"].snapshot(), now=time.monotonic())
                if mirrors["services"].synced:
                    sync_load_balancers(settings, state, core, mirrors["services"].snapshot())
                failures = 0
            except Exception as e:  # noqa: BLE001 - keep enforcing: retry the whole sync shortly
                failures += 1
                delay = min(30.0, 0.5 * 2 ** min(failures, 6))
                log.error("sync failed (%s: %s); retrying in %.1fs", type(e).__name__, str(e)[:300], delay)
                state.loaded = None
                stop.wait(delay)
                changed.set()
    finally:
        stop.set()
        removed = remove_chains()
        log.info("removed the ENVCI-NP chains and the FORWARD jump" if removed else "no ENVCI-NP chains to remove")
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m envci.localcluster.agent", description=__doc__.split("\n\n")[0])
    p.add_argument("--kubeconfig", type=Path, help="the cluster's admin kubeconfig")
    p.add_argument("--node-ip", default="198.18.0.1", help="the node's address on the pod bridge (default: %(default)s)")
    p.add_argument("--pod-cidr", default="198.18.0.0/17", help="the node's pod network (default: %(default)s)")
    p.add_argument("--bridge", default="envci0", help="the pods' bridge (default: %(default)s)")
    p.add_argument("--lb-pool", default=lb.DEFAULT_POOL, help="LoadBalancer addresses (default: %(default)s)")
    p.add_argument("--debounce", type=float, default=0.1, help="seconds to let a burst of changes settle (default: %(default)s)")
    p.add_argument("--resync", type=float, default=10.0, help="seconds between checks that the chains are in place (default: %(default)s)")
    p.add_argument("--cleanup", action="store_true", help="remove the chains and the jump, then exit")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(argv)
    try:
        if args.cleanup:
            removed = remove_chains()
            log.info("removed the ENVCI-NP chains and the FORWARD jump" if removed else "no ENVCI-NP chains to remove")
            return 0
        if args.kubeconfig is None:
            log.error("--kubeconfig is required unless --cleanup is given")
            return 2
        settings = Settings(args.kubeconfig, args.node_ip, args.pod_cidr, args.bridge, args.lb_pool, args.debounce, args.resync)
        return run(settings)
    except InfrastructureError as e:
        log.error("%s", e)
        return int(e.exit_code)


if __name__ == "__main__":
    sys.exit(main())
