"""Seed Jobs on the local cluster's real node: success is not repeated, failure stops the stage with
its reason and the container's own last log lines.

One environment serves the module: an `api` component running busybox (envci.local/busybox:1), whose
image `image_from: api` hands to the seed Job.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from seedapp import REAL_API, env_name, environment, load, reporter, write_app  # tests/integration is on sys.path

from envci import state as st
from envci.config.loader import LoadedConfig
from envci.errors import ExitCode
from envci.kube.client import Kube, connect
from envci.seeders import SeedError
from envci.stages.seed import seed

pytestmark = pytest.mark.cluster
IMAGE = "envci.local/busybox:1"


@dataclass(frozen=True)
class ApiEnvironment:
    name: str
    namespace: str
    kube: Kube

    def config(self, dest: Path, steps: list[dict[str, Any]]) -> LoadedConfig:
        return load(write_app(dest, steps, components=REAL_API), self.name)

    def job_pods(self, job: str) -> list[dict[str, Any]]:
        return self.kube.list("v1", "Pod", self.namespace, label_selector=f"batch.kubernetes.io/job-name={job}")


@pytest.fixture(scope="module")
def api_env(real_kubeconfig: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiEnvironment]:
    cfg = load(write_app(tmp_path_factory.mktemp("api"), [], components=REAL_API), env_name())
    kube = connect(real_kubeconfig)
    with environment(cfg, kube):
        yield ApiEnvironment(cfg.identity.name, cfg.identity.namespace, kube)


def test_seed_job_runs_once_with_the_component_image(api_env: ApiEnvironment, tmp_path: Path) -> None:
    step = {"job": "load-fixtures", "image_from": "api", "env": {"ROWS": "3"}, "timeout": "60s",
            "command": ["sh", "-c", "echo loading fixtures as $(id -un); echo loaded $ROWS rows"]}
    cfg = api_env.config(tmp_path, [step])
    rep, _, err = reporter()
    res = seed(cfg, api_env.kube, rep)["steps"][0]
    assert res["state"] == "succeeded" and res["reused"] is False
    job = api_env.kube.get("batch/v1", "Job", "load-fixtures", api_env.namespace)
    assert job is not None
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE  # the api component's image
    # The container really ran: its own output is the log tail shown, and it exited 0.
    (pod,) = api_env.job_pods("load-fixtures")
    assert f"{pod['metadata']['name']} | loading fixtures as root" in err.getvalue()
    assert f"{pod['metadata']['name']} | loaded 3 rows" in err.getvalue()
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0

    again = seed(cfg, api_env.kube, rep)["steps"][0]
    assert again["reused"] is True and again["changed"] is False
    assert api_env.kube.get("batch/v1", "Job", "load-fixtures", api_env.namespace)["metadata"]["uid"] == job["metadata"]["uid"]
    assert len(api_env.job_pods("load-fixtures")) == 1  # not run a second time


def test_failing_seed_job_stops_the_stage_with_reason_and_log_tail(api_env: ApiEnvironment, tmp_path: Path) -> None:
    failing = {"job": "migrate", "image": IMAGE, "timeout": "60s",
               "command": ["sh", "-c", "echo applying migrations; cat /migrations/001.sql"]}
    after = {"job": "never-runs", "image": IMAGE, "command": ["true"]}
    cfg = api_env.config(tmp_path, [failing, after])
    rep, _, _ = reporter()
    with pytest.raises(SeedError) as info:
        seed(cfg, api_env.kube, rep)
    e = info.value
    assert e.exit_code == ExitCode.NOT_READY and e.step == 0 and e.kind == "job"
    assert f"Job {api_env.namespace}/migrate failed: BackoffLimitExceeded" in e.message
    (pod,) = api_env.job_pods("migrate")
    name = pod["metadata"]["name"]
    assert f"pod {name}: main: Error, exit code 1" in e.message  # the kubelet's container status
    # The container's own words, from its log.
    assert f"last log lines of pod {name}:" in e.message
    assert "| applying migrations" in e.message
    assert "| cat: can't open '/migrations/001.sql': No such file or directory" in e.message
    assert api_env.kube.get("batch/v1", "Job", "never-runs", api_env.namespace) is None  # later steps did not run
    state = st.load(api_env.kube, api_env.namespace)
    assert state is not None and state.history[-1]["result"] == "failed" and "BackoffLimitExceeded" in state.history[-1]["message"]
