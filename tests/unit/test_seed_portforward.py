"""Choosing the pod and container port behind a Service (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from envci.errors import ConfigError, NotReadyError
from envci.kube.portforward import service_target


def pod(name: str, labels: dict[str, str], ready: bool = True, ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "c", "ports": ports or []}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def svc(ports: list[dict[str, Any]], selector: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "db", "namespace": "ns"}, "spec": {"selector": {"app": "db"} if selector is None else selector, "ports": ports}}


def test_picks_the_first_ready_selected_pod_and_the_target_port() -> None:
    pods = [pod("db-1", {"app": "db"}), pod("db-0", {"app": "db"}, ready=False), pod("web-0", {"app": "web"}), pod("db-2", {"app": "db"})]
    t = service_target(svc([{"port": 5432, "targetPort": 15432}]), pods, 5432)
    assert (t.pod, t.port) == ("db-1", 15432)


def test_named_target_port_resolves_from_the_pod() -> None:
    pods = [pod("db-0", {"app": "db"}, ports=[{"name": "pg", "containerPort": 6543}])]
    assert service_target(svc([{"port": 5432, "targetPort": "pg"}]), pods, 5432).port == 6543


def test_single_port_service_needs_no_port_and_defaults_target_to_port() -> None:
    assert service_target(svc([{"port": 80}]), [pod("w", {"app": "db"})], None).port == 80


def test_errors_name_the_service_and_the_fix() -> None:
    with pytest.raises(ConfigError, match="has no port 5432"):
        service_target(svc([{"port": 80}]), [], 5432)
    with pytest.raises(ConfigError, match="no selector"):
        service_target(svc([{"port": 80}], selector={}), [], 80)
    with pytest.raises(NotReadyError, match="no ready pod matches its selector app=db"):
        service_target(svc([{"port": 80}]), [pod("db-0", {"app": "db"}, ready=False)], 80)
