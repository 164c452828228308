"""Seed Jobs on the local cluster: success is not repeated, failure stops the stage with its reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from seedapp import (  # tests/integration is on sys.path
    env_name,
    environment,
    load,
    reporter,
    write_app,
)

from envci import state as st
from envci.errors import ExitCode
from envci.kube.client import connect
from envci.seeders import SeedError
from envci.stages.seed import seed

pytestmark = pytest.mark.cluster


def test_seed_job_runs_once_with_the_component_image(kubeconfig: str, tmp_path: Path) -> None:
    step = {"job": "load-fixtures", "image_from": "api", "command": ["./manage", "load"], "timeout": "60s"}
    cfg = load(write_app(tmp_path, [step]), env_name())
    kube = connect(kubeconfig)
    with environment(cfg, kube):
        rep, _, err = reporter()
        res = seed(cfg, kube, rep)["steps"][0]
        assert res["state"] == "succeeded" and res["reused"] is False
        job = kube.get("batch/v1", "Job", "load-fixtures", cfg.identity.namespace)
        assert job is not None
        assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "shop-api:1.4.2"
        assert "simulated by kwok" in err.getvalue()  # the Job's log tail is shown

        again = seed(cfg, kube, rep)["steps"][0]
        assert again["reused"] is True and again["changed"] is False
        assert kube.get("batch/v1", "Job", "load-fixtures", cfg.identity.namespace)["metadata"]["uid"] == job["metadata"]["uid"]


def test_failing_seed_job_stops_the_stage_with_reason_and_log_tail(kubeconfig: str, tmp_path: Path) -> None:
    failing = {"job": "migrate", "image": "shop-api:1.4.2", "command": ["./migrate"], "labels": {"envci.io/simulate": "job-fail"}, "timeout": "60s"}
    after = {"job": "never-runs", "image": "busybox", "command": ["true"]}
    cfg = load(write_app(tmp_path, [failing, after]), env_name())
    kube = connect(kubeconfig)
    with environment(cfg, kube):
        rep, _, _ = reporter()
        with pytest.raises(SeedError) as info:
            seed(cfg, kube, rep)
        e = info.value
        assert e.exit_code == ExitCode.NOT_READY and e.step == 0 and e.kind == "job"
        assert f"Job {cfg.identity.namespace}/migrate failed: BackoffLimitExceeded" in e.message
        assert "exit code 1" in e.message  # the pod's container status
        assert "last log lines of pod migrate-" in e.message and "simulated by kwok" in e.message
        assert kube.get("batch/v1", "Job", "never-runs", cfg.identity.namespace) is None  # later steps did not run
        state = st.load(kube, cfg.identity.namespace)
        assert state is not None and state.history[-1]["result"] == "failed" and "BackoffLimitExceeded" in state.history[-1]["message"]
