"""Exec seed steps through the API server's exec stream (kwok runs the command on this host)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from seedapp import (  # tests/integration is on sys.path
    env_name,
    environment,
    load,
    reporter,
    write_app,
)

from envci.errors import ExitCode
from envci.kube.client import connect
from envci.seeders import SeedError
from envci.stages.seed import seed

pytestmark = pytest.mark.cluster


def test_exec_runs_in_a_component_pod_and_a_failure_stops_the_stage(
    kubeconfig: str, pod_exec: Callable[..., None], tmp_path: Path
) -> None:
    workdir = tmp_path / "pod"
    workdir.mkdir()
    ok = {"exec": ["sh", "-c", "echo seeded > marker && echo loaded 3 rows"], "component": "api"}
    bad = {"exec": ["sh", "-c", "echo relation missing >&2; exit 7"], "component": "api"}
    cfg = load(write_app(tmp_path / "app", [ok, bad]), env_name())
    kube = connect(kubeconfig)
    with environment(cfg, kube):
        ns = cfg.identity.namespace
        pod = kube.list("v1", "Pod", ns, label_selector="app=api")[0]["metadata"]["name"]
        pod_exec(ns, pod, workdir)
        rep, _, err = reporter()
        with pytest.raises(SeedError) as info:
            seed(cfg, kube, rep)
        assert (workdir / "marker").read_text() == "seeded\n"
        assert f"{pod} | loaded 3 rows" in err.getvalue()
        e = info.value
        assert e.step == 1 and e.exit_code == ExitCode.NOT_READY
        assert f"command in pod {ns}/{pod} (api) exited with code 7" in e.message
        assert "| relation missing" in e.message
