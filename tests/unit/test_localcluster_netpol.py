"""The NetworkPolicy compiler, judged by where its chains send packets.

Each test builds objects in the shape the API server returns them (`kubectl get -o json`), compiles
them, and walks the compiled rules with a small model of iptables' chain traversal (below), so a
test states a connection and whether Kubernetes allows it, never the rule text that does it.
"""

from __future__ import annotations

import copy
import ipaddress
import random
import shlex
from typing import Any

import pytest

from envci.config.model import NamespaceSettings, Network
from envci.localcluster import netpol
from envci.localcluster.netpol import TOP_CHAIN, Ruleset, compile_rules
from envci.namespace import network_policy_objects

NODE_IP = "198.18.0.1"
POD_CIDR = "198.18.0.0/17"

# --- objects as the API server returns them ------------------------------------------------------------------

_UID = iter(range(1, 10_000))


def namespace(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "uid": f"00000000-0000-4000-8000-{next(_UID):012d}",
            "resourceVersion": "100",
            "creationTimestamp": "2026-01-01T10:00:00Z",
            "labels": {"kubernetes.io/metadata.name": name, **(labels or {})},
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def pod(ns: str, name: str, ip: str | None, labels: dict[str, str] | None = None,
        ports: list[dict[str, Any]] | None = None, phase: str = "Running", host_network: bool = False) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "app",
        "image": "envci.local/busybox:1",
        "imagePullPolicy": "IfNotPresent",
        "resources": {},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }
    if ports:
        container["ports"] = ports
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": f"00000000-0000-4000-9000-{next(_UID):012d}",
            "resourceVersion": "200",
            "creationTimestamp": "2026-01-01T10:00:00Z",
            "labels": labels or {},
        },
        "spec": {
            "containers": [container],
            "dnsPolicy": "ClusterFirst",
            "nodeName": "envci-node",
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "serviceAccountName": "default",
            "terminationGracePeriodSeconds": 30,
        },
        "status": {"phase": phase, "hostIP": NODE_IP, "hostIPs": [{"ip": NODE_IP}], "qosClass": "BestEffort",
                   "startTime": "2026-01-01T10:00:01Z"},
    }
    if host_network:
        obj["spec"]["hostNetwork"] = True
    if ip:
        obj["status"]["podIP"] = ip
        obj["status"]["podIPs"] = [{"ip": ip}]
    return obj


def policy(ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": f"00000000-0000-4000-a000-{next(_UID):012d}",
            "resourceVersion": "300",
            "generation": 1,
            "creationTimestamp": "2026-01-01T10:00:00Z",
        },
        "spec": spec,
    }


def envci_policies(ns: str, settings: NamespaceSettings | None = None) -> list[dict[str, Any]]:
    """envci's own policies, as provision applies them into the environment's namespace."""
    out = []
    for obj in network_policy_objects(settings or NamespaceSettings()):
        obj = copy.deepcopy(obj)
        obj["metadata"]["namespace"] = ns
        out.append(obj)
    return out


# --- a model of iptables' chain traversal -----------------------------------------------------------------

def _matches(tokens: list[str], pkt: dict[str, Any]) -> bool:
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == "-j":
            return True
        arg = tokens[i + 1]
        if tok == "-s" and ipaddress.ip_address(pkt["src"]) not in ipaddress.ip_network(arg):
            return False
        if tok == "-d" and ipaddress.ip_address(pkt["dst"]) not in ipaddress.ip_network(arg):
            return False
        if tok == "-p" and arg != pkt["proto"]:
            return False
        if tok == "--dport":
            low, _, high = arg.partition(":")
            if not int(low) <= pkt["dport"] <= int(high or low):
                return False
        if tok == "--ctstate" and pkt["state"] not in arg.split(","):
            return False
        if tok not in ("-s", "-d", "-p", "--dport", "--ctstate", "-m", "--comment"):
            raise AssertionError(f"the model does not know {tok!r}")
        i += 2
    raise AssertionError(f"rule without a target: {tokens}")


def _walk(chains: dict[str, list[str]], name: str, pkt: dict[str, Any]) -> str:
    for rule in chains[name]:
        tokens = shlex.split(rule)
        if not _matches(tokens, pkt):
            continue
        target = tokens[tokens.index("-j") + 1]
        if target == "RETURN":
            return "RETURN"
        if target == "REJECT":
            return "REJECT"
        if _walk(chains, target, pkt) == "REJECT":
            return "REJECT"
    return "RETURN"


def passes(rs: Ruleset, src: str, dst: str, port: int = 80, proto: str = "tcp", state: str = "NEW") -> bool:
    """Would a packet entering FORWARD's jump to ENVCI-NP come back out (not rejected)?"""
    return _walk(rs.chains, TOP_CHAIN, {"src": src, "dst": dst, "dport": port, "proto": proto, "state": state}) == "RETURN"


def build(policies: list[dict[str, Any]], pods: list[dict[str, Any]], namespaces: list[dict[str, Any]]) -> Ruleset:
    return compile_rules(policies, pods, namespaces, node_ip=NODE_IP, pod_cidr=POD_CIDR)


# --- envci's own policies -------------------------------------------------------------------------------------

A, B = "envci-shop-pr-1", "envci-shop-pr-2"
NAMESPACES = [namespace(A, {"envci.io/managed": "true"}), namespace(B, {"envci.io/managed": "true"}),
              namespace("ingress-nginx"), namespace("kube-system"), namespace("default")]
A_WEB, A_DB = pod(A, "web-7d9f", "198.18.1.10", {"app": "web"}), pod(A, "db-0", "198.18.1.11", {"app": "db"})
B_WEB = pod(B, "web-5c4b", "198.18.1.20", {"app": "web"})
NGINX = pod("ingress-nginx", "controller-6b", "198.18.1.30", {"app.kubernetes.io/name": "ingress-nginx"})
DNS = pod("kube-system", "coredns-5d", "198.18.1.2", {"k8s-app": "kube-dns"},
          ports=[{"name": "dns", "containerPort": 53, "protocol": "UDP"}, {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"}])
PLAIN = pod("default", "tools", "198.18.1.40", {"run": "tools"})
ALL_PODS = [A_WEB, A_DB, B_WEB, NGINX, DNS, PLAIN]


def envci_world() -> Ruleset:
    return build(envci_policies(A) + envci_policies(B), ALL_PODS, NAMESPACES)


def test_pods_of_one_environment_reach_each_other() -> None:
    rs = envci_world()
    assert passes(rs, "198.18.1.10", "198.18.1.11", 5432)
    assert passes(rs, "198.18.1.11", "198.18.1.10", 8080)


def test_pods_of_another_environment_cannot_connect() -> None:
    rs = envci_world()
    assert not passes(rs, "198.18.1.20", "198.18.1.10")
    assert not passes(rs, "198.18.1.10", "198.18.1.20")


def test_the_ingress_controller_reaches_environments() -> None:
    rs = envci_world()
    assert passes(rs, "198.18.1.30", "198.18.1.10")
    assert passes(rs, "198.18.1.30", "198.18.1.20")


def test_namespaces_without_policies_are_open_both_ways() -> None:
    rs = envci_world()
    assert passes(rs, "198.18.1.10", "198.18.1.40")  # envci's policies isolate ingress only
    assert not passes(rs, "198.18.1.40", "198.18.1.10")
    assert passes(rs, "198.18.1.20", "198.18.1.40")


def test_envci_policies_leave_dns_alone() -> None:
    """envci isolates ingress only: every environment can still ask CoreDNS, over UDP and TCP."""
    rs = envci_world()
    assert passes(rs, "198.18.1.10", "198.18.1.2", 53, "udp")
    assert passes(rs, "198.18.1.20", "198.18.1.2", 53, "tcp")


def test_replies_of_allowed_connections_pass() -> None:
    rs = envci_world()
    # web in A connected to the open tools pod; its replies come back into the isolated pod.
    assert passes(rs, "198.18.1.40", "198.18.1.10", 41000, state="ESTABLISHED")
    assert passes(rs, "198.18.1.40", "198.18.1.10", 41000, state="RELATED")
    assert not passes(rs, "198.18.1.40", "198.18.1.10", 41000, state="NEW")


def test_the_node_always_reaches_its_pods() -> None:
    rs = build([policy(A, "deny", {"podSelector": {}, "policyTypes": ["Ingress"]})], ALL_PODS, NAMESPACES)
    assert passes(rs, NODE_IP, "198.18.1.10", 8080)
    assert not passes(rs, "198.18.1.40", "198.18.1.10", 8080)


def test_a_pod_cannot_block_itself() -> None:
    """Through its own Service, a pod's packets to itself cross FORWARD after DNAT."""
    deny_both = policy(A, "deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
    rs = build([deny_both], ALL_PODS, NAMESPACES)
    assert passes(rs, "198.18.1.10", "198.18.1.10")
    assert not passes(rs, "198.18.1.10", "198.18.1.11")


def test_isolation_off_means_no_chains() -> None:
    rs = build(envci_policies(A, NamespaceSettings(network=Network(isolate=False))), ALL_PODS, NAMESPACES)
    assert list(rs.chains) == [TOP_CHAIN] and rs.isolated == 0
    assert passes(rs, "198.18.1.20", "198.18.1.10")


def test_custom_allow_list_by_namespace_name() -> None:
    settings = NamespaceSettings(network=Network(allow_from_namespaces=["default"]))
    rs = build(envci_policies(A, settings), ALL_PODS, NAMESPACES)
    assert passes(rs, "198.18.1.40", "198.18.1.10")
    assert not passes(rs, "198.18.1.30", "198.18.1.10")


# --- which pods are isolated, and for what -------------------------------------------------------------------

def test_unselected_pods_stay_open() -> None:
    only_db = policy(A, "db", {"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"]})
    rs = build([only_db], ALL_PODS, NAMESPACES)
    assert not passes(rs, "198.18.1.10", "198.18.1.11")
    assert passes(rs, "198.18.1.11", "198.18.1.10")


def test_a_policy_selects_pods_of_its_own_namespace_only() -> None:
    web = policy(A, "web", {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]})
    rs = build([web], ALL_PODS, NAMESPACES)
    assert not passes(rs, "198.18.1.40", "198.18.1.10")
    assert passes(rs, "198.18.1.40", "198.18.1.20")  # app=web in another namespace


def test_policy_types_default_to_ingress() -> None:
    rs = build([policy(A, "p", {"podSelector": {}})], ALL_PODS, NAMESPACES)
    assert not passes(rs, "198.18.1.40", "198.18.1.10")
    assert passes(rs, "198.18.1.10", "198.18.1.40")


def test_policy_types_default_adds_egress_when_egress_rules_exist() -> None:
    spec = {"podSelector": {"matchLabels": {"app": "web"}}, "egress": [{"to": [{"podSelector": {}}]}]}
    rs = build([policy(A, "p", spec)], ALL_PODS, NAMESPACES)
    assert not passes(rs, "198.18.1.10", "198.18.1.40")  # egress now isolated
    assert passes(rs, "198.18.1.10", "198.18.1.11")
    assert not passes(rs, "198.18.1.40", "198.18.1.10")  # and ingress, with no rules: deny
    assert passes(rs, "198.18.1.40", "198.18.1.11")


def test_egress_only_policy_leaves_ingress_open() -> None:
    rs = build([policy(A, "p", {"podSelector": {}, "policyTypes": ["Egress"]})], ALL_PODS, NAMESPACES)
    assert passes(rs, "198.18.1.40", "198.18.1.10")
    assert not passes(rs, "198.18.1.10", "198.18.1.40")


def test_both_ends_must_allow() -> None:
    """A connection needs the source's egress and the destination's ingress."""
    egress_all = policy(A, "out", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]})
    rs = build([egress_all, *envci_policies(B)], ALL_PODS, NAMESPACES)
    assert passes(rs, "198.18.1.10", "198.18.1.40")
    assert not passes(rs, "198.18.1.10", "198.18.1.20")


def test_allowed_is_the_union_of_selecting_policies() -> None:
    from_tools = policy(A, "tools", {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "default"}}}]}]})
    from_b = policy(A, "b", {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": B}}}]}]})
    deny = policy(A, "deny", {"podSelector": {}, "policyTypes": ["Ingress"]})
    rs = build([deny, from_tools, from_b], ALL_PODS, NAMESPACES)
    assert passes(rs, "198.18.1.40", "198.18.1.10")
    assert passes(rs, "198.18.1.20", "198.18.1.10")
    assert not passes(rs, "198.18.1.30", "198.18.1.10")


def test_empty_ingress_list_denies_everything_but_the_node() -> None:
    rs = build([policy(A, "p", {"podSelector": {}, "ingress": [], "policyTypes": ["Ingress"]})], ALL_PODS, NAMESPACES)
    assert not passes(rs, "198.18.1.11", "198.18.1.10")
    assert passes(rs, NODE_IP, "198.18.1.10")


def test_empty_from_allows_all_sources() -> None:
    rs = build([policy(A, "p", {"podSelector": {}, "ingress": [{"ports": [{"port": 8080}]}]})], ALL_PODS, NAMESPACES)
    assert passes(rs, "198.18.1.20", "198.18.1.10", 8080)
    assert passes(rs, "203.0.113.9", "198.18.1.10", 8080)
    assert not passes(rs, "198.18.1.20", "198.18.1.10", 8081)


def test_rule_with_nothing_allows_everything() -> None:
    rs = build([policy(A, "p", {"podSelector": {}, "ingress": [{}]})], ALL_PODS, NAMESPACES)
    assert passes(rs, "198.18.1.20", "198.18.1.10", 1, "udp")
    assert passes(rs, "198.18.1.20", "198.18.1.10", 0, "icmp")


# --- peers ----------------------------------------------------------------------------------------------------

def test_pod_selector_peer_is_same_namespace() -> None:
    spec = {"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]}
    rs = build([policy(A, "db", spec)], ALL_PODS, NAMESPACES)
    assert passes(rs, "198.18.1.10", "198.18.1.11")
    assert not passes(rs, "198.18.1.20", "198.18.1.11")  # app=web of another namespace


def test_namespace_selector_peer_takes_every_pod_of_the_namespaces() -> None:
    spec = {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"envci.io/managed": "true"}}}]}]}
    rs = build([policy(A, "p", spec)], ALL_PODS, NAMESPACES)
    assert passes(rs, "198.18.1.20", "198.18.1.10")
    assert passes(rs, "198.18.1.11", "198.18.1.10")
    assert not passes(rs, "198.18.1.40", "198.18.1.10")


def test_namespace_and_pod_selector_in_one_peer_are_anded() -> None:
    both = {"namespaceSelector": {"matchLabels": {"envci.io/managed": "true"}}, "podSelector": {"matchLabels": {"app": "db"}}}
    rs = build([policy(B, "p", {"podSelector": {}, "ingress": [{"from": [both]}]})], ALL_PODS, NAMESPACES)
    assert passes(rs, "198.18.1.11", "198.18.1.20")  # db in a managed namespace
    assert not passes(rs, "198.18.1.10", "198.18.1.20")  # web in a managed namespace


def test_namespace_and_pod_selector_as_two_peers_are_ored() -> None:
    peers = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": A}}}, {"podSelector": {"matchLabels": {"app": "nobody"}}}]
    rs = build([policy(B, "p", {"podSelector": {}, "ingress": [{"from": peers}]})], ALL_PODS, NAMESPACES)
    assert passes(rs, "198.18.1.10", "198.18.1.20")
    assert passes(rs, "198.18.1.11", "198.18.1.20")


def test_a_peer_without_selectors_or_ip_block_selects_nobody() -> None:
    """The API rejects such a peer; should one get through, it must not open the pod to everyone."""
    rs = build([policy(A, "p", {"podSelector": {}, "ingress": [{"from": [{}]}]})], ALL_PODS, NAMESPACES)
    assert not passes(rs, "198.18.1.11", "198.18.1.10")
    assert not passes(rs, "198.18.1.40", "198.18.1.10")


def test_empty_namespace_selector_means_all_namespaces() -> None:
    peer = {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app.kubernetes.io/name": "ingress-nginx"}}}
    rs = build([policy(A, "p", {"podSelector": {}, "ingress": [{"from": [peer]}]})], ALL_PODS, NAMESPACES)
    assert passes(rs, "198.18.1.30", "198.18.1.10")
    assert not passes(rs, "198.18.1.40", "198.18.1.10")


def test_namespace_name_label_is_present_even_if_the_object_lacks_it() -> None:
    bare = namespace("default")
    bare["metadata"]["labels"] = {"team": "tools"}
    peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "default"}}}
    rs = build([policy(A, "p", {"podSelector": {}, "ingress": [{"from": [peer]}]})], ALL_PODS, [bare, *NAMESPACES[:2]])
    assert passes(rs, "198.18.1.40", "198.18.1.10")


def test_ip_block_with_except() -> None:
    block = {"ipBlock": {"cidr": "198.18.1.0/24", "except": ["198.18.1.16/28", "198.18.1.40/32"]}}
    rs = build([policy(A, "p", {"podSelector": {}, "ingress": [{"from": [block]}]})], ALL_PODS, NAMESPACES)
    assert passes(rs, "198.18.1.11", "198.18.1.10")
    assert not passes(rs, "198.18.1.20", "198.18.1.10")  # in 198.18.1.16/28
    assert not passes(rs, "198.18.1.30", "198.18.1.10")  # in 198.18.1.16/28
    assert not passes(rs, "198.18.1.40", "198.18.1.10")
    assert passes(rs, "198.18.1.41", "198.18.1.10")
    assert not passes(rs, "198.18.2.1", "198.18.1.10")


def test_ip_block_egress() -> None:
    spec = {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{"ipBlock": {"cidr": "198.18.1.32/27"}}]}]}
    rs = build([policy(A, "p", spec)], ALL_PODS, NAMESPACES)
    assert passes(rs, "198.18.1.10", "198.18.1.40")
    assert not passes(rs, "198.18.1.10", "198.18.1.30")


def test_ipblock_cidrs_are_disjoint_and_cover_cidr_minus_except() -> None:
    parts = [ipaddress.ip_network(c) for c in netpol.ipblock_cidrs({"cidr": "10.0.0.0/16", "except": ["10.0.5.0/24", "10.0.5.128/25", "10.0.200.7/32"]})]
    covered = sum(p.num_addresses for p in parts)
    assert covered == 65536 - 256 - 1
    assert all(not a.overlaps(b) for i, a in enumerate(parts) for b in parts[i + 1:])
    assert netpol.ipblock_cidrs({"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8"]}) == []
    # a later, wider except swallows what an earlier one left of the same range
    assert netpol.ipblock_cidrs({"cidr": "10.0.0.0/23", "except": ["10.0.0.128/25", "10.0.0.0/24"]}) == ["10.0.1.0/24"]
    assert netpol.ipblock_cidrs({"cidr": "fd00::/8"}) == []


# --- ports ----------------------------------------------------------------------------------------------------

def _ports_rs(ports: list[dict[str, Any]], direction: str = "ingress") -> Ruleset:
    if direction == "ingress":
        spec = {"podSelector": {"matchLabels": {"app": "dns-like"}}, "ingress": [{"ports": ports}]}
        target = pod(A, "target", "198.18.1.50", {"app": "dns-like"},
                     ports=[{"name": "http", "containerPort": 8080, "protocol": "TCP"}, {"name": "dns", "containerPort": 5353, "protocol": "UDP"}])
        return build([policy(A, "p", spec)], [*ALL_PODS, target], NAMESPACES)
    spec = {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"], "egress": [{"ports": ports}]}
    return build([policy(A, "p", spec)], ALL_PODS, NAMESPACES)


def test_port_defaults_to_tcp() -> None:
    rs = _ports_rs([{"port": 80}])
    assert passes(rs, "198.18.1.40", "198.18.1.50", 80, "tcp")
    assert not passes(rs, "198.18.1.40", "198.18.1.50", 80, "udp")
    assert not passes(rs, "198.18.1.40", "198.18.1.50", 81, "tcp")


@pytest.mark.parametrize("proto", ["UDP", "SCTP"])
def test_udp_and_sctp_ports(proto: str) -> None:
    rs = _ports_rs([{"port": 9000, "protocol": proto}])
    assert passes(rs, "198.18.1.40", "198.18.1.50", 9000, proto.lower())
    assert not passes(rs, "198.18.1.40", "198.18.1.50", 9000, "tcp")


def test_protocol_without_port_allows_every_port_of_it() -> None:
    rs = _ports_rs([{"protocol": "UDP"}])
    assert passes(rs, "198.18.1.40", "198.18.1.50", 1, "udp")
    assert passes(rs, "198.18.1.40", "198.18.1.50", 65535, "udp")
    assert not passes(rs, "198.18.1.40", "198.18.1.50", 1, "tcp")


def test_end_port_range() -> None:
    rs = _ports_rs([{"port": 32000, "endPort": 32768, "protocol": "TCP"}])
    assert passes(rs, "198.18.1.40", "198.18.1.50", 32000)
    assert passes(rs, "198.18.1.40", "198.18.1.50", 32768)
    assert not passes(rs, "198.18.1.40", "198.18.1.50", 31999)
    assert not passes(rs, "198.18.1.40", "198.18.1.50", 32769)


def test_named_port_resolves_against_the_destination_pod() -> None:
    rs = _ports_rs([{"port": "http"}, {"port": "dns", "protocol": "UDP"}])
    assert passes(rs, "198.18.1.40", "198.18.1.50", 8080)
    assert passes(rs, "198.18.1.40", "198.18.1.50", 5353, "udp")
    assert not passes(rs, "198.18.1.40", "198.18.1.50", 5353, "tcp")  # "dns" is UDP only


def test_named_port_must_match_the_protocol_too() -> None:
    rs = _ports_rs([{"port": "dns"}])  # TCP by default; the pod's "dns" is UDP
    assert not passes(rs, "198.18.1.40", "198.18.1.50", 5353, "tcp")
    assert not passes(rs, "198.18.1.40", "198.18.1.50", 5353, "udp")


def test_named_port_missing_on_the_pod_matches_nothing() -> None:
    rs = _ports_rs([{"port": "metrics"}])
    assert not passes(rs, "198.18.1.40", "198.18.1.50", 8080)
    assert not passes(rs, "198.18.1.40", "198.18.1.50", 9090)


def test_named_egress_port_resolves_per_destination() -> None:
    other = pod("default", "api", "198.18.1.60", {"run": "api"}, ports=[{"name": "http", "containerPort": 3000, "protocol": "TCP"}])
    spec = {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": "http"}]}]}
    target = pod("default", "target", "198.18.1.50", {}, ports=[{"name": "http", "containerPort": 8080, "protocol": "TCP"}])
    rs = build([policy(A, "p", spec)], [*ALL_PODS, other, target], NAMESPACES)
    assert passes(rs, "198.18.1.10", "198.18.1.60", 3000)
    assert not passes(rs, "198.18.1.10", "198.18.1.60", 8080)
    assert passes(rs, "198.18.1.10", "198.18.1.50", 8080)
    assert not passes(rs, "198.18.1.10", "198.18.1.40", 8080)  # tools has no port named http


def test_named_ports_of_init_sidecars_count() -> None:
    target = pod(A, "target", "198.18.1.50", {"app": "x"})
    target["spec"]["initContainers"] = [{"name": "proxy", "image": "envci.local/busybox:1", "restartPolicy": "Always",
                                          "ports": [{"name": "proxy", "containerPort": 15001, "protocol": "TCP"}]}]
    rs = build([policy(A, "p", {"podSelector": {"matchLabels": {"app": "x"}}, "ingress": [{"ports": [{"port": "proxy"}]}]})],
               [*ALL_PODS, target], NAMESPACES)
    assert passes(rs, "198.18.1.40", "198.18.1.50", 15001)


def test_mixed_numeric_and_named_egress_ports() -> None:
    rs = _ports_rs([{"port": 53, "protocol": "UDP"}, {"port": "dns-tcp"}], "egress")
    assert passes(rs, "198.18.1.10", "198.18.1.2", 53, "udp")
    assert passes(rs, "198.18.1.10", "198.18.1.40", 53, "udp")  # numeric: any destination
    assert passes(rs, "198.18.1.10", "198.18.1.2", 53, "tcp")  # named: only where it exists
    assert not passes(rs, "198.18.1.10", "198.18.1.40", 53, "tcp")


def test_dns_egress_allowance() -> None:
    """The usual egress lockdown: nothing out but DNS to CoreDNS and the database."""
    deny = policy(A, "deny-egress", {"podSelector": {}, "policyTypes": ["Egress"]})
    dns = policy(A, "allow-dns", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
        "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}]})
    db = policy(A, "web-to-db", {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Egress"],
                                 "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}], "ports": [{"port": 5432}]}]})
    rs = build([deny, dns, db], ALL_PODS, NAMESPACES)
    assert passes(rs, "198.18.1.10", "198.18.1.2", 53, "udp")
    assert passes(rs, "198.18.1.11", "198.18.1.2", 53, "tcp")
    assert not passes(rs, "198.18.1.10", "198.18.1.2", 8080)
    assert passes(rs, "198.18.1.10", "198.18.1.11", 5432)
    assert not passes(rs, "198.18.1.11", "198.18.1.10", 5432)
    assert not passes(rs, "198.18.1.10", "198.18.1.40", 53, "udp")


# --- selectors ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("expr", "labels", "expected"), [
    ({"key": "tier", "operator": "In", "values": ["a", "b"]}, {"tier": "a"}, True),
    ({"key": "tier", "operator": "In", "values": ["a", "b"]}, {"tier": "c"}, False),
    ({"key": "tier", "operator": "In", "values": ["a"]}, {}, False),
    ({"key": "tier", "operator": "NotIn", "values": ["a"]}, {"tier": "b"}, True),
    ({"key": "tier", "operator": "NotIn", "values": ["a"]}, {"tier": "a"}, False),
    ({"key": "tier", "operator": "NotIn", "values": ["a"]}, {}, True),
    ({"key": "tier", "operator": "Exists"}, {"tier": ""}, True),
    ({"key": "tier", "operator": "Exists"}, {}, False),
    ({"key": "tier", "operator": "DoesNotExist"}, {}, True),
    ({"key": "tier", "operator": "DoesNotExist"}, {"tier": "a"}, False),
    ({"key": "tier", "operator": "Gt", "values": ["1"]}, {"tier": "2"}, False),
])
def test_match_expressions(expr: dict[str, Any], labels: dict[str, str], expected: bool) -> None:
    assert netpol.selector_matches({"matchExpressions": [expr]}, labels) is expected


def test_selector_terms_are_anded_and_empty_selects_all() -> None:
    sel = {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "track", "operator": "NotIn", "values": ["canary"]}]}
    assert netpol.selector_matches(sel, {"app": "web"})
    assert not netpol.selector_matches(sel, {"app": "web", "track": "canary"})
    assert not netpol.selector_matches(sel, {"track": "stable"})
    assert netpol.selector_matches({}, {"anything": "x"})
    assert not netpol.selector_matches(None, {})


def test_match_expressions_in_a_policy() -> None:
    spec = {"podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["db"]}]},
            "ingress": [{"from": [{"podSelector": {"matchExpressions": [{"key": "app", "operator": "Exists"},
                                                                         {"key": "app", "operator": "NotIn", "values": ["db"]}]}}]}]}
    rs = build([policy(A, "p", spec)], [*ALL_PODS, pod(A, "job", "198.18.1.12", {"job": "seed"})], NAMESPACES)
    assert passes(rs, "198.18.1.10", "198.18.1.11")
    assert not passes(rs, "198.18.1.12", "198.18.1.11")  # no app label


# --- which pods count --------------------------------------------------------------------------------------------

def test_only_running_pods_with_an_address_on_the_pod_network_get_chains() -> None:
    deny = policy(A, "deny", {"podSelector": {}, "policyTypes": ["Ingress"]})
    pods = [pod(A, "pending", None), pod(A, "done", "198.18.1.70", phase="Succeeded"), pod(A, "failed", "198.18.1.71", phase="Failed"),
            pod(A, "host", NODE_IP, host_network=True), pod(A, "elsewhere", "10.244.0.5"), pod(A, "live", "198.18.1.72")]
    rs = build([deny], pods, NAMESPACES)
    assert rs.pods == 1 and rs.isolated == 1
    assert [r for r in rs.chains[TOP_CHAIN] if "-j ENVCI-NP-" in r] == [
        f'-d 198.18.1.72/32 -m comment --comment "{A}/live" -j {netpol.chain_name("I", netpol.node_pods([pods[-1]], POD_CIDR)[0])}']


def test_finished_pods_are_not_peers() -> None:
    """A finished pod's address may already be a new pod's: allowing it would allow the newcomer."""
    allow_done = policy(A, "p", {"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"job": "seed"}}}]}]})
    done = pod(A, "seed-x", "198.18.1.70", {"job": "seed"}, phase="Succeeded")
    rs = build([allow_done], [*ALL_PODS, done], NAMESPACES)
    assert not passes(rs, "198.18.1.70", "198.18.1.11")


def test_pod_ip_from_pod_ips_when_pod_ip_is_absent() -> None:
    p = pod(A, "late", "198.18.1.80")
    del p["status"]["podIP"]
    assert [x.ip for x in netpol.node_pods([p], POD_CIDR)] == ["198.18.1.80"]


# --- determinism and names ----------------------------------------------------------------------------------

def test_output_does_not_depend_on_input_order() -> None:
    policies = envci_policies(A) + envci_policies(B) + [
        policy("default", "x", {"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "198.18.1.0/24"}}]}]}),
        policy(A, "from-tools", {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"run": "tools"}}}]}]}),
    ]
    first = build(policies, ALL_PODS, NAMESPACES)
    rng = random.Random(7)
    for _ in range(5):
        p, q, n = policies[:], ALL_PODS[:], NAMESPACES[:]
        rng.shuffle(p)
        rng.shuffle(q)
        rng.shuffle(n)
        assert build(p, q, n).chains == first.chains
    assert netpol.restore_text(first, netpol.FilterState()) == netpol.restore_text(build(policies[::-1], ALL_PODS[::-1], NAMESPACES), netpol.FilterState())


def test_chain_names_are_stable_and_short() -> None:
    p = netpol.node_pods([pod("a-namespace-with-a-very-long-name-" + "x" * 29, "p" * 63, "198.18.1.9")], POD_CIDR)[0]
    name = netpol.chain_name("I", p)
    assert len(name) <= 28 and name.startswith("ENVCI-NP-I-")
    assert name == netpol.chain_name("I", p) != netpol.chain_name("E", p)


def test_repeated_rules_are_loaded_once() -> None:
    twice = policy(A, "p", {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}, {"from": [{"podSelector": {}}]}]})
    rs = build([twice], ALL_PODS, NAMESPACES)
    chain = rs.chains[netpol.chain_name("I", netpol.node_pods([A_WEB], POD_CIDR)[0])]
    assert len(chain) == len(set(chain)) == 4  # the node, itself (web), db, reject


# --- loading: iptables-save in, iptables-restore text out ---------------------------------------------------

SAVED = """# Generated by iptables-save v1.8.9 (nf_tables) on Tue Jan  6 10:00:00 2026
*mangle
:PREROUTING ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:ENVCI-GUARD-IN - [0:0]
:ENVCI-GUARD-OUT - [0:0]
:ENVCI-NP - [0:0]
:ENVCI-NP-I-0123456789ABCDEF - [0:0]
:ENVCI-NPX - [0:0]
:KUBE-FORWARD - [0:0]
-A FORWARD -j ENVCI-GUARD-OUT
-A FORWARD -j ENVCI-GUARD-IN
-A FORWARD -m comment --comment "envci: NetworkPolicy" -j ENVCI-NP
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A ENVCI-NP -d 198.18.1.9/32 -j ENVCI-NP-I-0123456789ABCDEF
COMMIT
"""


def test_parse_filter_save_finds_our_chains_and_forward() -> None:
    state = netpol.parse_filter_save(SAVED)
    assert state.chains == ("ENVCI-NP", "ENVCI-NP-I-0123456789ABCDEF")  # not ENVCI-NPX, not the guard
    assert state.forward[2] == '-m comment --comment "envci: NetworkPolicy" -j ENVCI-NP'
    assert len(state.forward) == 4  # the mangle table's FORWARD is another chain


def test_restore_leaves_a_jump_below_other_envci_jumps_alone() -> None:
    text = netpol.restore_text(envci_world(), netpol.parse_filter_save(SAVED))
    assert "FORWARD" not in text


@pytest.mark.parametrize("forward", [
    [],
    ['-m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD', "-j ENVCI-NP"],
    ["-j ENVCI-NP", "-j ENVCI-NP"],
])
def test_restore_puts_one_jump_at_the_top(forward: list[str]) -> None:
    text = netpol.restore_text(envci_world(), netpol.FilterState((TOP_CHAIN,), tuple(forward)))
    lines = text.splitlines()
    deletes = [ln for ln in lines if ln.startswith("-D FORWARD")]
    assert deletes == [f"-D FORWARD {r}" for r in forward if r.endswith("-j ENVCI-NP")]
    assert [ln for ln in lines if ln.startswith("-I FORWARD")] == ['-I FORWARD 1 -m comment --comment "envci: NetworkPolicy" -j ENVCI-NP']
    assert lines.index(deletes[-1] if deletes else lines[1]) < lines.index('-I FORWARD 1 -m comment --comment "envci: NetworkPolicy" -j ENVCI-NP')


def test_restore_flushes_then_deletes_stale_chains() -> None:
    text = netpol.restore_text(envci_world(), netpol.parse_filter_save(SAVED))
    lines = text.splitlines()
    assert lines[0] == "*filter" and lines[-1] == "COMMIT"
    stale = "ENVCI-NP-I-0123456789ABCDEF"
    assert f":{stale} - [0:0]" in lines and lines[-2] == f"-X {stale}"
    assert lines.index(f":{TOP_CHAIN} - [0:0]") < lines.index(f"-X {stale}")
    for name, rules in envci_world().chains.items():
        assert f":{name} - [0:0]" in lines
        assert [ln for ln in lines if ln.startswith(f"-A {name} ")] == [f"-A {name} {r}" for r in rules]


def test_cleanup_removes_the_jump_and_every_chain() -> None:
    text = netpol.cleanup_text(netpol.parse_filter_save(SAVED))
    assert text.splitlines() == [
        "*filter", ":ENVCI-NP - [0:0]", ":ENVCI-NP-I-0123456789ABCDEF - [0:0]",
        '-D FORWARD -m comment --comment "envci: NetworkPolicy" -j ENVCI-NP',
        "-X ENVCI-NP", "-X ENVCI-NP-I-0123456789ABCDEF", "COMMIT",
    ]
    assert netpol.cleanup_text(netpol.FilterState()) == ""
