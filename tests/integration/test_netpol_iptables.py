"""The compiled NetworkPolicy chains, loaded by the real iptables-restore in a private network namespace.

Unit tests judge what the rules mean; these check that iptables accepts the text, that a second load
replaces the first atomically (stale chains gone, one jump), and that cleanup leaves nothing. Each
test runs in `unshare --net`, so the host's own tables are never touched; it needs root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

import pytest

from envci.localcluster import netpol

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("iptables-restore"),
    reason="needs root, unshare and iptables",
)

POD_CIDR = "198.18.0.0/17"


DRIVER = """
import json, subprocess, sys
from envci.localcluster import agent, netpol
steps = json.load(sys.stdin)
out = []
for kind, arg in steps:
    if kind == "shell":
        subprocess.run(arg, shell=True, check=True)
    elif kind == "load":
        agent.load_chains(netpol.Ruleset(arg, 0, 0, 0))
    elif kind == "cleanup":
        agent.remove_chains()
    out.append(agent.iptables("save"))
json.dump(out, sys.stdout)
"""


def in_private_netns(steps: list[tuple[str, Any]]) -> list[str]:
    """Run steps with the agent's own iptables adapter in a fresh network namespace; iptables-save after each."""
    result = subprocess.run(["unshare", "--net", sys.executable, "-c", DRIVER], input=json.dumps(steps), capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    saved: list[str] = json.loads(result.stdout)
    return saved


def pod(ns: str, name: str, ip: str, labels: dict[str, str]) -> dict:
    return {"metadata": {"namespace": ns, "name": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ip}}


def compile_(policies: list[dict], pods: list[dict]) -> netpol.Ruleset:
    return netpol.compile_rules(policies, pods, [], node_ip="198.18.0.1", pod_cidr=POD_CIDR)


FIRST = compile_(
    [{"metadata": {"namespace": "a", "name": "p"}, "spec": {
        "podSelector": {}, "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"ipBlock": {"cidr": "198.18.1.0/24", "except": ["198.18.1.128/25"]}}],
                     "ports": [{"port": "http"}, {"port": 9000, "endPort": 9010, "protocol": "UDP"}, {"protocol": "SCTP", "port": 7}]}],
        "egress": [{"to": [{"namespaceSelector": {}}]}]}}],
    [pod("a", "one", "198.18.1.10", {}), pod("a", "two", "198.18.1.11", {})],
)
SECOND = compile_([], [pod("a", "one", "198.18.1.10", {})])


def test_load_reload_and_cleanup() -> None:
    saved = in_private_netns([
        ("shell", 'iptables -A FORWARD -m comment --comment "someone else" -j ACCEPT'),
        ("load", FIRST.chains),
        ("shell", "iptables -I FORWARD 1 -j ACCEPT"),  # someone pushes in above our jump
        ("load", SECOND.chains),
        ("load", SECOND.chains),
        ("cleanup", None),
        ("cleanup", None),
    ])
    first = netpol.parse_filter_save(saved[1])
    assert set(first.chains) == set(FIRST.chains)
    assert netpol.jump_in_place(first.forward) and len(first.forward) == 2
    assert saved[1].count("-j REJECT --reject-with icmp-port-unreachable") == 4
    assert saved[1].count("-p sctp -m sctp --dport 7") == 2 and "--dport 9000:9010" in saved[1]

    second = netpol.parse_filter_save(saved[3])
    assert second.chains == ("ENVCI-NP",)  # every per-pod chain of the first load is gone
    assert second.forward == ('-m comment --comment "envci: NetworkPolicy" -j ENVCI-NP', "-j ACCEPT",
                              '-m comment --comment "someone else" -j ACCEPT')
    rules = [[ln for ln in text.splitlines() if not ln.startswith("#")] for text in saved[3:5]]
    assert rules[0] == rules[1]  # loading the same again changes nothing

    for cleaned in saved[5:]:
        after = netpol.parse_filter_save(cleaned)
        assert after.chains == () and after.forward == ("-j ACCEPT", '-m comment --comment "someone else" -j ACCEPT')
