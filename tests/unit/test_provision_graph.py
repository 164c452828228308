"""provision on the fake adapter: each component starts as soon as what it depends on is ready."""

from __future__ import annotations

import io
import textwrap
import threading
from pathlib import Path

import pytest
from fakekube import FakeKube  # tests/ is on sys.path

from envci.config.loader import LoadedConfig, load_config
from envci.errors import NotReadyError
from envci.identity import CiContext
from envci.output import Reporter
from envci.stages.provision import provision

# slow-db <- api;  fast-db <- worker;  both services <- front
CONFIG = """\
    name: shop
    components:
      - {name: slow-db, manifests: [k8s/slow-db.yaml]}
      - {name: fast-db, manifests: [k8s/fast-db.yaml]}
      - {name: api, manifests: [k8s/api.yaml], depends_on: [slow-db]}
      - {name: worker, manifests: [k8s/worker.yaml], depends_on: [fast-db]}
      - {name: front, manifests: [k8s/front.yaml], depends_on: [api, worker]}
"""
NAMES = ("slow-db", "fast-db", "api", "worker", "front")


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LoadedConfig:
    monkeypatch.setenv("ENVCI_OUTPUT_DIR", str(tmp_path / "out"))
    for var in ("GITHUB_OUTPUT", "GITHUB_ENV"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "k8s").mkdir()
    for name in NAMES:
        (tmp_path / "k8s" / f"{name}.yaml").write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{a: b}}\n")
    (tmp_path / "envci.yaml").write_text(textwrap.dedent(CONFIG))
    return load_config(tmp_path / "envci.yaml", CiContext(system="local"), env_override="pr-1")


def test_a_branch_goes_on_while_another_waits_for_its_slow_dependency(cfg: LoadedConfig) -> None:
    kube = FakeKube()
    events: list[str] = []
    slow_db_may_be_ready = threading.Event()

    def wait_for(names: list[str]) -> None:
        events.append(f"wait {names[0]}")
        if names == ["slow-db"]:
            assert slow_db_may_be_ready.wait(10)
        events.append(f"ready {names[0]}")

    class Progress(io.StringIO):
        def write(self, text: str) -> int:
            if "installing " in text:
                name = text.split("installing ", 1)[1].strip()
                events.append(f"install {name}")
                if name == "worker":  # the other branch got through while slow-db is still not ready
                    slow_db_may_be_ready.set()
            return super().write(text)

    provision(cfg, kube, Reporter(err=Progress()), wait_for_dependency=wait_for)
    assert events.index("install worker") < events.index("ready slow-db")
    assert events.index("ready slow-db") < events.index("install api")
    assert events.index("install front") > max(events.index("ready api"), events.index("ready worker"))
    assert "wait front" not in events  # nothing depends on it: provision does not wait for it
    assert sorted(o["metadata"]["name"] for o in kube.list("v1", "ConfigMap", cfg.identity.namespace) if o["metadata"]["name"] in NAMES) == sorted(NAMES)


def test_after_a_dependency_fails_nothing_that_needs_it_starts_and_its_error_is_raised(cfg: LoadedConfig) -> None:
    kube = FakeKube()
    started: list[str] = []

    def wait_for(names: list[str]) -> None:
        if names == ["slow-db"]:
            raise NotReadyError("slow-db is not ready: CrashLoopBackOff")

    class Progress(io.StringIO):
        def write(self, text: str) -> int:
            if "installing " in text:
                started.append(text.split("installing ", 1)[1].strip())
            return super().write(text)

    with pytest.raises(NotReadyError, match="slow-db is not ready"):
        provision(cfg, kube, Reporter(err=Progress()), wait_for_dependency=wait_for)
    assert "api" not in started and "front" not in started
    assert {"slow-db", "fast-db"} <= set(started)
