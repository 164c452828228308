from __future__ import annotations

from envci.config.model import Component
from envci.stages.up import format_result, forward_commands


def comp(name: str, **expose: object) -> Component:
    return Component.model_validate({"name": name, "manifests": ["a.yaml"], **({"expose": expose} if expose else {})})


def test_forward_commands_use_the_service_port_unless_privileged() -> None:
    cmds = forward_commands([comp("db"), comp("api", port=8080), comp("web", port=80, service="front", path="app"), comp("adm", port=443)], "envci-x")
    assert cmds == [
        {"component": "api", "command": "kubectl -n envci-x port-forward svc/api 8080:8080", "url": "http://127.0.0.1:8080/"},
        {"component": "web", "command": "kubectl -n envci-x port-forward svc/front 8081:80", "url": "http://127.0.0.1:8081/app"},
        {"component": "adm", "command": "kubectl -n envci-x port-forward svc/adm 8082:443", "url": "http://127.0.0.1:8082/"},
    ]


RES = {
    "name": "demo-main", "namespace": "envci-demo-main",
    "seconds": {"provision": 20.04, "wait-ready": 1.0, "seed": 5.5, "test": 7.25, "teardown": 9.0},
    "urls": {"api": "http://api.envci-demo-main.svc.cluster.local:8080/"},
    "stages": {
        "test": {"outcome": "failed", "counts": {"tests": 15, "passed": 14, "failed": 1, "errors": 0},
                 "failures": [{"suite": "api", "test": "test_api.test_items", "message": "AssertionError: off by one"}],
                 "files": {"summary": "envci-report/summary.md", "junit": "envci-report/junit.xml"}},
        "teardown": {"deleted": True},
    },
    "leftovers": [],
}


def test_summary_names_stage_times_failures_urls_report_and_leftovers() -> None:
    text = format_result(RES, keep=False)
    assert "  provision     20.0s" in text
    assert "  test           7.2s  failed: 15 tests, 14 passed, 1 failed" in text
    assert "FAILED api > test_api.test_items: AssertionError: off by one" in text
    assert "  api: http://api.envci-demo-main.svc.cluster.local:8080/" in text
    assert "report: envci-report/summary.md (JUnit: envci-report/junit.xml)" in text
    assert text.endswith("teardown: nothing left")
    left = format_result({**RES, "leftovers": ["PersistentVolume pv-1 (Released, was envci-demo-main/data-db-0)"]}, keep=False)
    assert left.endswith("teardown: still there: PersistentVolume pv-1 (Released, was envci-demo-main/data-db-0)")


def test_kept_summary_says_how_to_open_it() -> None:
    res = {**RES, "stages": {"test": RES["stages"]["test"]}, "forward_commands": forward_commands([comp("api", port=8080)], "envci-demo-main")}
    text = format_result(res, keep=True)
    assert "`envci teardown --env demo-main` removes it" in text
    assert "kubectl -n envci-demo-main port-forward svc/api 8080:8080   then http://127.0.0.1:8080/" in text
