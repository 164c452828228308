"""The node agent's sync steps, with iptables and the API faked at their one adapter each.

What the rules and addresses are is tested in test_localcluster_netpol.py and test_localcluster_lb.py;
here: when the agent loads, when it leaves things alone, when it reports, and its --cleanup mode.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from envci.localcluster import agent

SETTINGS = agent.Settings(Path("/nonexistent/kubeconfig"), "198.18.0.1", "198.18.0.0/17", "envci0", "198.19.127.0/30")

POLICY = {"metadata": {"namespace": "envci-a", "name": "deny"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
POD = {"metadata": {"namespace": "envci-a", "name": "web"}, "spec": {}, "status": {"phase": "Running", "podIP": "198.18.1.10"}}
NS = {"metadata": {"name": "envci-a"}}


class FakeIptables:
    def __init__(self, saved: str = "*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n") -> None:
        self.saved = saved
        self.restored: list[str] = []
        self.saves = 0

    def __call__(self, command: str, stdin: str | None = None) -> str:
        if command == "save":
            self.saves += 1
            return self.saved
        assert command == "restore" and stdin
        self.restored.append(stdin)
        return ""


@pytest.fixture
def ipt(monkeypatch: pytest.MonkeyPatch) -> FakeIptables:
    fake = FakeIptables()
    monkeypatch.setattr(agent, "iptables", fake)
    return fake


def test_policies_load_once_per_change_and_are_checked_on_resync(ipt: FakeIptables, caplog: pytest.LogCaptureFixture) -> None:
    state = agent.State()
    with caplog.at_level(logging.INFO):
        agent.sync_policies(SETTINGS, state, [POLICY], [POD], [NS], now=1000.0)
    assert len(ipt.restored) == 1 and "-I FORWARD 1" in ipt.restored[0]
    assert [r.getMessage().split(" in ")[0] for r in caplog.records] == ["netpol: loaded 1 pods (1 isolated), 1 policies, 5 rules"]

    agent.sync_policies(SETTINGS, state, [POLICY], [POD], [NS], now=1001.0)
    assert len(ipt.restored) == 1 and ipt.saves == 1  # nothing changed: no iptables call at all

    ipt.saved = "*filter\n:FORWARD ACCEPT [0:0]\n" + "".join(f":{c} - [0:0]\n" for c in state.loaded or {}) + \
        '-A FORWARD -m comment --comment "envci: NetworkPolicy" -j ENVCI-NP\nCOMMIT\n'
    agent.sync_policies(SETTINGS, state, [POLICY], [POD], [NS], now=1000.0 + SETTINGS.resync)
    assert len(ipt.restored) == 1 and ipt.saves == 2  # checked (one save), all in place

    chains_only = ipt.saved.replace('-A FORWARD -m comment --comment "envci: NetworkPolicy" -j ENVCI-NP\n', "")
    ipt.saved = chains_only  # someone deleted the jump
    agent.sync_policies(SETTINGS, state, [POLICY], [POD], [NS], now=1000.0 + 2 * SETTINGS.resync)
    assert len(ipt.restored) == 2

    ipt.saved = "*filter\n:FORWARD ACCEPT [0:0]\n:ENVCI-NP - [0:0]\n-A FORWARD -j ENVCI-NP\nCOMMIT\n"  # a pod's chain deleted
    agent.sync_policies(SETTINGS, state, [POLICY], [POD], [NS], now=1000.0 + 3 * SETTINGS.resync)
    assert len(ipt.restored) == 3

    agent.sync_policies(SETTINGS, state, [], [POD], [NS], now=1000.0 + 3 * SETTINGS.resync + 1)
    assert len(ipt.restored) == 4 and "ENVCI-NP-I-" not in ipt.restored[-1]


def test_cleanup_mode_removes_chains_without_a_cluster(ipt: FakeIptables) -> None:
    ipt.saved = "*filter\n:FORWARD ACCEPT [0:0]\n:ENVCI-NP - [0:0]\n-A FORWARD -j ENVCI-NP\nCOMMIT\n"
    assert agent.main(["--cleanup"]) == 0
    assert ipt.restored == ["*filter\n:ENVCI-NP - [0:0]\n-D FORWARD -j ENVCI-NP\n-X ENVCI-NP\nCOMMIT\n"]
    ipt.saved = "*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n"
    assert agent.main(["--cleanup"]) == 0
    assert len(ipt.restored) == 1  # nothing left: nothing loaded


def test_running_needs_a_kubeconfig(ipt: FakeIptables) -> None:
    assert agent.main([]) == 2


class FakeCore:
    def __init__(self) -> None:
        self.patches: list[tuple[str, str, dict[str, Any], str]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []

    def patch_namespaced_service_status(self, name: str, ns: str, body: dict[str, Any], _content_type: str) -> None:
        self.patches.append((ns, name, body, _content_type))

    def create_namespaced_event(self, ns: str, body: dict[str, Any]) -> None:
        self.events.append((ns, body))


def lb_service(name: str, created: str, ips: list[str] | None = None, type_: str = "LoadBalancer") -> dict[str, Any]:
    return {"metadata": {"namespace": "envci-a", "name": name, "uid": f"u-{name}", "creationTimestamp": created},
            "spec": {"type": type_, "clusterIP": "198.19.5.5"},
            "status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"} for ip in ips or []]}}}


def test_load_balancer_addresses_are_patched_and_exhaustion_reported_once() -> None:
    core, state = FakeCore(), agent.State()
    services = [lb_service("a", "2026-01-01T10:00:00Z"), lb_service("b", "2026-01-01T10:00:01Z", ["198.19.127.2"]),
                lb_service("c", "2026-01-01T10:00:02Z"), lb_service("old", "2026-01-01T09:00:00Z", ["198.19.127.1"], type_="ClusterIP")]
    agent.sync_load_balancers(SETTINGS, state, core, services)
    assert [(n, b["status"]["loadBalancer"]["ingress"], t) for _, n, b, t in core.patches] == [
        ("a", [{"ip": "198.19.127.1", "ipMode": "VIP"}], "application/merge-patch+json"),
        ("old", [], "application/merge-patch+json"),
    ]
    assert [(ns, e["involvedObject"]["name"], e["reason"], e["type"]) for ns, e in core.events] == [("envci-a", "c", "AllocationFailed", "Warning")]
    assert "no free LoadBalancer address" in core.events[0][1]["message"]

    core.patches.clear()
    settled = [lb_service("a", "2026-01-01T10:00:00Z", ["198.19.127.1"]), *services[1:3]]
    agent.sync_load_balancers(SETTINGS, state, core, settled)
    assert core.patches == [] and len(core.events) == 1  # the same reason is not reported again

    agent.sync_load_balancers(SETTINGS, state, core, [settled[1], settled[2]])  # a was deleted
    assert [(n, b["status"]["loadBalancer"]["ingress"]) for _, n, b, _ in core.patches] == [("c", [{"ip": "198.19.127.1", "ipMode": "VIP"}])]
    assert state.warned == {}
