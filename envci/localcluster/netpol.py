"""Pure: NetworkPolicies, Pods and Namespaces -> the iptables rules that enforce them on the local node.

The local cluster's one real node has no CNI plugin that enforces NetworkPolicy, so the node agent
compiles the policies into `filter` table chains and loads them with one `iptables-restore --noflush`
call. Everything here is a function of plain dicts in API JSON shape (as `kubectl get -o json` prints
them), so every rule of the Kubernetes semantics (networking.k8s.io/v1) is unit-tested as text.

Where the rules sit and why they see the right addresses:

- Pods are on one Linux bridge with br_netfilter on, so pod-to-pod packets, bridged or routed, cross
  the `FORWARD` chain; one jump at its top sends them to `ENVCI-NP`.
- Traffic to a Service is DNATed by kube-proxy in `nat PREROUTING`, before `FORWARD`, so the rules
  match the chosen endpoint pod's address and port, which is what NetworkPolicy is about.
  kube-proxy's SNAT (masquerade) happens in `POSTROUTING`, after, so sources are still pod addresses.
- `ENVCI-NP` first lets replies and related packets of connections already allowed through
  (conntrack ESTABLISHED,RELATED), then sends a packet from an egress-isolated pod to that pod's
  egress chain and a packet to an ingress-isolated pod to that pod's ingress chain. A per-pod chain
  RETURNs what some policy allows and REJECTs the rest (REJECT, not DROP: a denied connection fails
  at once, so a CI test of isolation does not wait for a timeout).
- No chain ACCEPTs: an allowed packet goes on to the rest of `FORWARD` (kube-proxy's chains, the
  node's guard), so this enforcer only ever narrows what the node allows.

Kubernetes always allows traffic between a pod and the node it runs on, and a pod cannot block
itself: ingress chains return packets from the node's address and from the pod itself, egress chains
packets to the pod itself. Packets from a pod to the node never reach `FORWARD` (they are delivered
locally), and the node's own connections to pods (kubelet probes) leave through `OUTPUT`; the
kubelet's port-forward enters the pod's network namespace and crosses no chain at all.

Not covered, on purpose: IPv6 (the node is IPv4 only; IPv6 ipBlocks are ignored), pods on other
nodes (there are none), hostNetwork pods (Kubernetes leaves them undefined; they are neither
isolated nor matched by pod selectors).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Obj = Mapping[str, Any]

TOP_CHAIN = "ENVCI-NP"
CHAIN_PREFIX = TOP_CHAIN + "-"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
PROTOCOLS = ("TCP", "UDP", "SCTP")
JUMP_COMMENT = "envci: NetworkPolicy"
REJECT = ["-j", "REJECT", "--reject-with", "icmp-port-unreachable"]
TERMINAL_PHASES = ("Succeeded", "Failed")
"""A finished pod's address goes back to the pool and may already belong to a new pod."""


# --- label selectors ---------------------------------------------------------------------------------------

def selector_matches(selector: Obj | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes label selector semantics: `{}` selects everything; every term must hold.

    An operator this code does not know selects nothing, so a newer API can never widen a policy.
    """
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In":
            ok = key in labels and labels[key] in values
        elif op == "NotIn":
            ok = key not in labels or labels[key] not in values
        elif op == "Exists":
            ok = key in labels
        elif op == "DoesNotExist":
            ok = key not in labels
        else:
            ok = False
        if not ok:
            return False
    return True


# --- the objects, reduced to what matters -----------------------------------------------------------------

@dataclass(frozen=True)
class Pod:
    """A pod with an address on this node."""

    namespace: str
    name: str
    ip: str
    labels: Mapping[str, str]
    ports: tuple[tuple[str, str, int], ...]
    """(name, protocol, containerPort) of every named container port."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _ipv4_in(ip: str, network: ipaddress.IPv4Network) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return isinstance(addr, ipaddress.IPv4Address) and addr in network


def node_pods(pods: Iterable[Obj], pod_cidr: str) -> list[Pod]:
    """The pods that have an address on this node's pod network, sorted by address then name.

    hostNetwork pods share the node's address and finished pods may have handed theirs on, so
    neither is policed nor matched by a selector.
    """
    network = ipaddress.IPv4Network(pod_cidr)
    out: list[Pod] = []
    for pod in pods:
        spec, status, meta = pod.get("spec") or {}, pod.get("status") or {}, _meta(pod)
        if spec.get("hostNetwork") or status.get("phase") in TERMINAL_PHASES:
            continue
        candidates = [status.get("podIP")] + [p.get("ip") for p in status.get("podIPs") or []]
        ip = next((c for c in candidates if c and _ipv4_in(c, network)), None)
        if ip is None:
            continue
        ports = sorted(
            (str(p["name"]), str(p.get("protocol") or "TCP"), int(p["containerPort"]))
            for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
            for p in c.get("ports") or []
            if p.get("name") and p.get("containerPort") is not None
        )
        out.append(Pod(str(meta.get("namespace") or "default"), str(meta.get("name")), ip,
                       dict(meta.get("labels") or {}), tuple(ports)))
    out.sort(key=lambda p: (ipaddress.IPv4Address(p.ip), p.namespace, p.name))
    return out


def namespace_labels(namespaces: Iterable[Obj]) -> dict[str, dict[str, str]]:
    """Each namespace's labels, with `kubernetes.io/metadata.name` as the API server sets it."""
    out: dict[str, dict[str, str]] = {}
    for ns in namespaces:
        name = str(_meta(ns).get("name"))
        out[name] = {**(_meta(ns).get("labels") or {}), NAMESPACE_NAME_LABEL: name}
    return out


def policy_types(policy: Obj) -> tuple[bool, bool]:
    """(affects ingress, affects egress), defaulted as the API server does when policyTypes is unset."""
    spec = policy.get("spec") or {}
    types = spec.get("policyTypes")
    if not types:
        return True, bool(spec.get("egress"))
    return "Ingress" in types, "Egress" in types


# --- rule building -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PortMatch:
    """One protocol and (optionally) one port or range; `port is None` means every port."""

    protocol: str
    port: str | None = None

    def args(self) -> list[str]:
        proto = self.protocol.lower()
        if self.port is None:
            return ["-p", proto]
        return ["-p", proto, "-m", proto, "--dport", self.port]


ALL_PORTS: list[PortMatch | None] = [None]
"""A rule without `ports`: every protocol, every port (ICMP too)."""


def _port_number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def resolve_ports(ports: Sequence[Obj] | None, pod: Pod | None) -> list[PortMatch | None]:
    """The port matches of a rule's `ports`, named ports resolved against `pod` (the destination).

    No ports means all traffic. A named port resolves to every container port of that name and
    protocol on the destination pod; where there is no pod (an ipBlock address) or no such port, it
    matches nothing, as in Kubernetes.
    """
    if not ports:
        return ALL_PORTS
    out: list[PortMatch | None] = []
    for entry in ports:
        protocol = str(entry.get("protocol") or "TCP").upper()
        if protocol not in PROTOCOLS:
            continue
        port = entry.get("port")
        if port is None:
            out.append(PortMatch(protocol))
            continue
        number = _port_number(port)
        if number is not None:
            end = _port_number(entry.get("endPort"))
            text = f"{number}:{end}" if end is not None and end > number else str(number)
            out.append(PortMatch(protocol, text))
            continue
        if pod is not None:
            out.extend(PortMatch(protocol, str(num)) for name, proto, num in pod.ports if name == port and proto == protocol)
    return out


def has_named_ports(ports: Sequence[Obj] | None) -> bool:
    return any(e.get("port") is not None and _port_number(e.get("port")) is None for e in ports or [])


def ipblock_cidrs(block: Obj) -> list[str]:
    """An ipBlock as disjoint IPv4 CIDRs: `cidr` minus every `except`, so no rule needs a sub-chain."""
    try:
        net = ipaddress.ip_network(str(block.get("cidr")), strict=False)
    except ValueError:
        return []
    if not isinstance(net, ipaddress.IPv4Network):
        return []
    parts = [net]
    for raw in block.get("except") or []:
        try:
            hole = ipaddress.ip_network(str(raw), strict=False)
        except ValueError:
            continue
        if not isinstance(hole, ipaddress.IPv4Network):
            continue
        next_parts: list[ipaddress.IPv4Network] = []
        for part in parts:
            if hole.supernet_of(part):
                continue
            if part.supernet_of(hole):
                next_parts.extend(part.address_exclude(hole))
            else:
                next_parts.append(part)
        parts = next_parts
    return [str(p) for p in sorted(parts)]


@dataclass(frozen=True)
class Peer:
    """Who a rule's peer list covers: all addresses, or these CIDRs and these pods."""

    everyone: bool = False
    cidrs: tuple[str, ...] = ()
    pods: tuple[Pod, ...] = ()


@dataclass(frozen=True)
class World:
    """Everything a policy is evaluated against."""

    pods: tuple[Pod, ...]
    namespaces: Mapping[str, Mapping[str, str]]

    def ns_labels(self, ns: str) -> Mapping[str, str]:
        return self.namespaces.get(ns) or {NAMESPACE_NAME_LABEL: ns}


def resolve_peers(peers: Sequence[Obj] | None, policy_ns: str, world: World) -> Peer:
    """A rule's `from`/`to` list: empty or absent means everyone; otherwise the union of its peers.

    A peer with only podSelector means pods of the policy's namespace; with only namespaceSelector,
    every pod of the selected namespaces; with both, the selected pods of the selected namespaces.
    """
    if not peers:
        return Peer(everyone=True)
    cidrs: list[str] = []
    pods: dict[str, Pod] = {}
    for peer in peers:
        if peer.get("ipBlock") is not None:
            cidrs.extend(c for c in ipblock_cidrs(peer["ipBlock"]) if c not in cidrs)
            continue
        pod_sel, ns_sel = peer.get("podSelector"), peer.get("namespaceSelector")
        if pod_sel is None and ns_sel is None:
            continue  # not valid in the API; selects nothing rather than everything
        for pod in world.pods:
            in_ns = pod.namespace == policy_ns if ns_sel is None else selector_matches(ns_sel, world.ns_labels(pod.namespace))
            if in_ns and (pod_sel is None or selector_matches(pod_sel, pod.labels)):
                pods.setdefault(pod.key, pod)
    return Peer(cidrs=tuple(cidrs), pods=tuple(sorted(pods.values(), key=lambda p: (ipaddress.IPv4Address(p.ip), p.key))))


def _pods_within(peer: Peer, world: World) -> list[Pod]:
    """The pods a peer covers, including pods whose address falls in one of its CIDRs."""
    if peer.everyone:
        return list(world.pods)
    nets = [ipaddress.IPv4Network(c) for c in peer.cidrs]
    chosen = {p.key: p for p in peer.pods}
    for pod in world.pods:
        if any(ipaddress.IPv4Address(pod.ip) in n for n in nets):
            chosen.setdefault(pod.key, pod)
    return sorted(chosen.values(), key=lambda p: (ipaddress.IPv4Address(p.ip), p.key))


def _addr(ip_or_cidr: str) -> str:
    return ip_or_cidr if "/" in ip_or_cidr else f"{ip_or_cidr}/32"


def _rule(direction_flag: str, addr: str | None, port: PortMatch | None, comment: str) -> str:
    parts: list[str] = []
    if addr is not None:
        parts += [direction_flag, _addr(addr)]
    if port is not None:
        parts += port.args()
    parts += ["-m", "comment", "--comment", _quote(comment), "-j", "RETURN"]
    return " ".join(parts)


_SAFE = re.compile(r"[^A-Za-z0-9._:/\[\] -]")


def _quote(text: str) -> str:
    return '"' + _SAFE.sub("_", text)[:240] + '"'


def _rule_comment(policy: Obj, direction: str, index: int) -> str:
    meta = _meta(policy)
    return f"{meta.get('namespace') or 'default'}/{meta.get('name')} {direction}[{index}]"


def ingress_rules(pod: Pod, policies: Sequence[Obj], world: World) -> list[str]:
    """The RETURN rules of one ingress-isolated pod: what the selecting policies allow in."""
    out: list[str] = []
    for policy in policies:
        ns = str(_meta(policy).get("namespace") or "default")
        for i, rule in enumerate((policy.get("spec") or {}).get("ingress") or []):
            comment = _rule_comment(policy, "ingress", i)
            peer = resolve_peers(rule.get("from"), ns, world)
            ports = resolve_ports(rule.get("ports"), pod)
            sources: list[str | None] = [None] if peer.everyone else [*peer.cidrs, *(p.ip for p in peer.pods)]
            out.extend(_rule("-s", src, port, comment) for src in sources for port in ports)
    return out


def egress_rules(pod: Pod, policies: Sequence[Obj], world: World) -> list[str]:
    """The RETURN rules of one egress-isolated pod: where the selecting policies let it connect.

    Named ports depend on the destination, so they become one rule per destination pod.
    """
    out: list[str] = []
    for policy in policies:
        ns = str(_meta(policy).get("namespace") or "default")
        for i, rule in enumerate((policy.get("spec") or {}).get("egress") or []):
            comment = _rule_comment(policy, "egress", i)
            peer = resolve_peers(rule.get("to"), ns, world)
            spec_ports = rule.get("ports")
            numeric = [p for p in spec_ports or [] if p.get("port") is None or _port_number(p.get("port")) is not None]
            if not spec_ports or numeric:
                ports = resolve_ports(numeric or None, None)
                dests: list[str | None] = [None] if peer.everyone else [*peer.cidrs, *(p.ip for p in peer.pods)]
                out.extend(_rule("-d", dst, port, comment) for dst in dests for port in ports)
            if has_named_ports(spec_ports):
                named = [p for p in spec_ports or [] if p not in numeric]
                for dst_pod in _pods_within(peer, world):
                    out.extend(_rule("-d", dst_pod.ip, port, comment) for port in resolve_ports(named, dst_pod))
    return out


def chain_name(direction: str, pod: Pod) -> str:
    """`ENVCI-NP-I-<hash>` / `ENVCI-NP-E-<hash>`: stable per pod, within iptables' 28-character limit."""
    digest = hashlib.sha256(pod.key.encode()).hexdigest()[:16].upper()
    return f"{CHAIN_PREFIX}{direction}-{digest}"


def _dedupe(rules: Iterable[str]) -> list[str]:
    """Drop rules that repeat an earlier one's match (comments aside), keeping the first."""
    seen: set[str] = set()
    out: list[str] = []
    for rule in rules:
        match = re.sub(r'-m comment --comment "[^"]*" ', "", rule)
        if match not in seen:
            seen.add(match)
            out.append(rule)
    return out


@dataclass(frozen=True)
class Ruleset:
    """The chains to load, in order: `chains[TOP_CHAIN]` first, then each pod's chain."""

    chains: dict[str, list[str]]
    pods: int
    """Pods on the node (with an address on the pod network)."""
    isolated: int
    """Pods with at least one ingress or egress chain."""
    policies: int

    @property
    def rule_count(self) -> int:
        return sum(len(rules) for rules in self.chains.values())


def compile_rules(
    policies: Iterable[Obj], pods: Iterable[Obj], namespaces: Iterable[Obj], *, node_ip: str, pod_cidr: str
) -> Ruleset:
    """The complete set of ENVCI-NP chains for the cluster's current state; deterministic."""
    policy_list = sorted(policies, key=lambda p: (str(_meta(p).get("namespace") or "default"), str(_meta(p).get("name"))))
    world = World(tuple(node_pods(pods, pod_cidr)), namespace_labels(namespaces))
    top = ["-m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment \"replies of allowed connections\" -j RETURN"]
    egress_jumps: list[str] = []
    ingress_jumps: list[str] = []
    chains: dict[str, list[str]] = {}
    isolated = 0
    for pod in world.pods:
        selecting = [
            p for p in policy_list
            if str(_meta(p).get("namespace") or "default") == pod.namespace
            and selector_matches((p.get("spec") or {}).get("podSelector") or {}, pod.labels)
        ]
        ingress = [p for p in selecting if policy_types(p)[0]]
        egress = [p for p in selecting if policy_types(p)[1]]
        comment = _quote(pod.key)
        if ingress:
            name = chain_name("I", pod)
            chains[name] = _dedupe([
                f"-s {node_ip}/32 -m comment --comment \"the node\" -j RETURN",
                f"-s {pod.ip}/32 -m comment --comment \"the pod itself\" -j RETURN",
                *ingress_rules(pod, ingress, world),
            ]) + [f"-m comment --comment {comment} " + " ".join(REJECT)]
            ingress_jumps.append(f"-d {pod.ip}/32 -m comment --comment {comment} -j {name}")
        if egress:
            name = chain_name("E", pod)
            chains[name] = _dedupe([
                f"-d {pod.ip}/32 -m comment --comment \"the pod itself\" -j RETURN",
                *egress_rules(pod, egress, world),
            ]) + [f"-m comment --comment {comment} " + " ".join(REJECT)]
            egress_jumps.append(f"-s {pod.ip}/32 -m comment --comment {comment} -j {name}")
        isolated += bool(ingress or egress)
    return Ruleset({TOP_CHAIN: top + egress_jumps + ingress_jumps, **chains}, len(world.pods), isolated, len(policy_list))


# --- what is loaded now, and the restore text that brings it to the desired state -------------------------

@dataclass(frozen=True)
class FilterState:
    """The parts of `iptables-save -t filter` this enforcer cares about."""

    chains: tuple[str, ...] = ()
    """Existing chains named ENVCI-NP or ENVCI-NP-*."""
    forward: tuple[str, ...] = ()
    """The FORWARD chain's rules, as iptables-save prints them after `-A FORWARD `."""


def ours(chain: str) -> bool:
    return chain == TOP_CHAIN or chain.startswith(CHAIN_PREFIX)


def parse_filter_save(text: str) -> FilterState:
    """Read the filter table of `iptables-save` output."""
    chains: list[str] = []
    forward: list[str] = []
    in_filter = False
    for line in text.splitlines():
        if line.startswith("*"):
            in_filter = line.strip() == "*filter"
        elif not in_filter:
            continue
        elif line.startswith(":"):
            name = line[1:].split(" ", 1)[0]
            if ours(name):
                chains.append(name)
        elif line.startswith("-A FORWARD "):
            forward.append(line[len("-A FORWARD "):].strip())
    return FilterState(tuple(chains), tuple(forward))


def _jump_target(rule: str) -> str | None:
    tokens = rule.split()
    for i, tok in enumerate(tokens[:-1]):
        if tok in ("-j", "--jump", "-g", "--goto"):
            return tokens[i + 1]
    return None


def jump_in_place(forward: Sequence[str]) -> bool:
    """True when FORWARD jumps to ENVCI-NP exactly once and only other envci jumps come before it.

    Other envci chains (the node's guard) may sit above: they only drop what must not leave the
    bridge, so their order against this one does not matter, and leaving them alone avoids two agents
    moving their jumps over each other forever.
    """
    positions = [i for i, rule in enumerate(forward) if _jump_target(rule) == TOP_CHAIN]
    if len(positions) != 1:
        return False
    return all((_jump_target(rule) or "").startswith("ENVCI-") for rule in forward[: positions[0]])


def restore_text(desired: Ruleset, current: FilterState) -> str:
    """Input for `iptables-restore --noflush`: one atomic transaction to the desired chains.

    Declaring a chain that exists flushes it; chains no longer needed are flushed, then deleted
    once nothing refers to them. The FORWARD jump is only touched when it is missing, repeated, or
    below someone else's rule.
    """
    lines = ["*filter"]
    stale = sorted(c for c in current.chains if c not in desired.chains)
    lines += [f":{name} - [0:0]" for name in [*desired.chains, *stale]]
    if not jump_in_place(current.forward):
        lines += [f"-D FORWARD {rule}" for rule in current.forward if _jump_target(rule) == TOP_CHAIN]
        lines.append(f"-I FORWARD 1 -m comment --comment \"{JUMP_COMMENT}\" -j {TOP_CHAIN}")
    for name, rules in desired.chains.items():
        lines += [f"-A {name} {rule}" for rule in rules]
    lines += [f"-X {name}" for name in stale]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def cleanup_text(current: FilterState) -> str:
    """Input for `iptables-restore --noflush` that removes the jump and every ENVCI-NP chain, or ""."""
    jumps = [rule for rule in current.forward if _jump_target(rule) == TOP_CHAIN]
    if not jumps and not current.chains:
        return ""
    lines = ["*filter", *(f":{c} - [0:0]" for c in current.chains)]
    lines += [f"-D FORWARD {rule}" for rule in jumps]
    lines += [f"-X {c}" for c in current.chains]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"
