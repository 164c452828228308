"""teardown on the fake adapter: what goes first, that it converges (twice, or after a provision
that died half-way), and how it treats a namespace that will not go."""

from __future__ import annotations

import io
import json
import textwrap
from datetime import datetime, timedelta, timezone
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakekube import FakeKube  # tests/ is on sys.path

from envci import external
from envci import state as st
from envci.config.loader import LoadedConfig, load_config
from envci.errors import ConfigError, EnvciError, InfrastructureError
from envci.identity import CiContext
from envci.kube.lease import LEASE_NAME
from envci.output import Reporter
from envci.stages.provision import ensure_namespace, provision
from envci.stages.reap import reap_reason
from envci.stages.teardown import teardown
from envci.timestamps import parse_time

CONFIG = """\
    name: shop
    components:
      - name: db
        manifests: [k8s/db.yaml]
      - name: web
        manifests: [k8s/web.yaml]
        depends_on: [db]
"""
DB = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: db-settings}\ndata: {size: '1'}\n"
WEB = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 1}\n"
WIDGET = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"


class FakeHelm:
    """The two calls teardown makes of Helm, recorded in the adapter's call log for ordering."""

    def __init__(self, calls: list[str], releases: list[str], *, namespaced_only: tuple[str, ...] = ()) -> None:
        self.calls, self.names, self.namespaced_only = calls, releases, namespaced_only
        self.timeouts: list[str] = []

    async def releases(self, namespace: str) -> list[dict[str, Any]]:
        return [{"name": n, "needs_uninstall": None if n in self.namespaced_only else "ClusterRole r is cluster-scoped"} for n in self.names]

    async def uninstall(self, name: str, namespace: str, timeout: str = "2m") -> None:
        self.calls.append(f"helm uninstall {name}")
        self.timeouts.append(timeout)
        self.names.remove(name)


@pytest.fixture
def deleted(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """A kind of external resource, `fake`, whose deleter records what it deletes."""
    gone: list[str] = []
    monkeypatch.setitem(external._deleters, "fake", lambda item: gone.append(item["name"]))
    yield gone


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LoadedConfig:
    monkeypatch.setenv("ENVCI_OUTPUT_DIR", str(tmp_path / "out"))
    for var in ("GITHUB_OUTPUT", "GITHUB_ENV"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "db.yaml").write_text(DB)
    (tmp_path / "k8s" / "web.yaml").write_text(WEB)
    (tmp_path / "envci.yaml").write_text(textwrap.dedent(CONFIG))
    return load_config(tmp_path / "envci.yaml", CiContext(system="local"), env_override="pr-1")


def provisioned(cfg: LoadedConfig, kube: FakeKube, *, external_items: list[dict[str, str]] = ()) -> None:  # type: ignore[assignment]
    provision(cfg, kube, Reporter(err=io.StringIO()), clock=kube.utcnow)
    state = st.load(kube, cfg.identity.namespace)
    assert state is not None
    for item in external_items:
        state.add_external(item)
    st.save(kube, state)
    kube.calls.clear()


def down(kube: FakeKube, cfg: LoadedConfig, helm: FakeHelm | None = None, **kw: Any) -> dict[str, Any]:
    def no_helm() -> Any:
        raise EnvciError("helm is not installed")

    factory = (lambda: helm) if helm else no_helm
    return teardown(kube, Reporter(err=io.StringIO()), namespace=cfg.identity.namespace, name=cfg.identity.name,  # type: ignore[arg-type]
                    helm_factory=factory, sleep=kube.sleep, clock=kube.monotonic, **kw)


def test_teardown_goes_releases_then_external_resources_then_the_namespace(cfg: LoadedConfig, deleted: list[str]) -> None:
    kube = FakeKube()
    provisioned(cfg, kube, external_items=[{"type": "fake", "name": "bucket-1"}])
    ns = cfg.identity.namespace
    assert kube.namespace(ns) and kube.get("apps/v1", "Deployment", "web", ns)
    helm = FakeHelm(kube.calls, ["shop-db"])
    out = down(kube, cfg, helm)
    assert out == {"name": cfg.identity.name, "namespace": ns, "deleted": True, "existed": True, "gone": True}
    assert kube.calls[0] == f"patch Namespace/{ns}"  # marked expired before anything is deleted
    order = [c for c in kube.calls if not c.startswith(("apply", "patch", "replace"))]
    # the pods after the namespace: their controllers, in a Terminating namespace, cannot make new ones
    assert order == ["create Lease/envci-lock", "helm uninstall shop-db", f"delete Namespace/{ns}", f"delete all Pod in {ns}"]
    assert deleted == ["bucket-1"]
    assert kube.calls.index("apply ConfigMap/envci-state") < kube.calls.index("helm uninstall shop-db")  # "started" is recorded first
    assert kube.namespace(ns) is None and kube.list("apps/v1", "Deployment") == []


def test_a_release_with_only_namespaced_objects_goes_with_the_namespace_without_a_helm_process(cfg: LoadedConfig) -> None:
    kube = FakeKube()
    provisioned(cfg, kube)
    helm = FakeHelm(kube.calls, ["shop-db", "shop-web"], namespaced_only=("shop-web",))
    err = io.StringIO()
    teardown(kube, Reporter(err=err), namespace=cfg.identity.namespace, name=cfg.identity.name, helm_factory=lambda: helm,  # type: ignore[arg-type,return-value]
             sleep=kube.sleep, clock=kube.monotonic)
    assert [c for c in kube.calls if c.startswith("helm")] == ["helm uninstall shop-db"]
    assert "uninstalling helm release shop-db (ClusterRole r is cluster-scoped)" in err.getvalue()
    assert "helm release shop-web goes with the namespace" in err.getvalue()
    assert kube.namespace(cfg.identity.namespace) is None


def test_external_resources_are_deleted_before_the_namespace_that_records_them(cfg: LoadedConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    kube = FakeKube()
    provisioned(cfg, kube, external_items=[{"type": "fake", "name": "bucket-1"}])
    seen: list[bool] = []
    monkeypatch.setitem(external._deleters, "fake", lambda item: seen.append(kube.namespace(cfg.identity.namespace) is not None))
    down(kube, cfg)
    assert seen == [True]


def test_teardown_twice_is_harmless(cfg: LoadedConfig, deleted: list[str]) -> None:
    kube = FakeKube()
    provisioned(cfg, kube, external_items=[{"type": "fake", "name": "bucket-1"}])
    down(kube, cfg)
    kube.calls.clear()
    again = down(kube, cfg)
    assert again == {"name": cfg.identity.name, "namespace": cfg.identity.namespace, "deleted": False, "existed": False}
    assert kube.calls == [] and deleted == ["bucket-1"]


def test_teardown_of_an_environment_whose_provision_stopped_after_the_namespace(cfg: LoadedConfig) -> None:
    kube = FakeKube()
    ensure_namespace(kube, cfg, now=kube.utcnow())  # then the runner was killed: no record, no lease
    assert st.load(kube, cfg.identity.namespace) is None
    assert down(kube, cfg)["deleted"]
    assert kube.namespace(cfg.identity.namespace) is None


def test_teardown_of_an_environment_whose_provision_failed_half_way(cfg: LoadedConfig, tmp_path: Path, deleted: list[str]) -> None:
    (tmp_path / "k8s" / "web.yaml").write_text(WEB + "---\n" + WIDGET)  # a kind the cluster does not serve
    cfg = load_config(tmp_path / "envci.yaml", CiContext(system="local"), env_override="pr-1")
    kube = FakeKube()
    with pytest.raises(ConfigError, match="no API for Widget"):
        provision(cfg, kube, Reporter(err=io.StringIO()), clock=kube.utcnow)
    ns = cfg.identity.namespace
    state = st.load(kube, ns)
    assert state is not None and state.history[-1]["result"] == "failed"
    assert kube.get("v1", "ConfigMap", "db-settings", ns) is not None  # the first wave was installed
    assert kube.get_lease(ns, LEASE_NAME) is None  # provision released it on the way out
    down(kube, cfg)
    assert kube.namespace(ns) is None and kube.list("v1", "ConfigMap") == []


def test_a_lease_left_by_a_killed_stage_does_not_block_teardown_once_expired(cfg: LoadedConfig) -> None:
    kube = FakeKube()
    provisioned(cfg, kube)
    ns = cfg.identity.namespace
    kube.create_lease(ns, {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": LEASE_NAME},
                           "spec": {"holderIdentity": "gone-runner/1/seed", "leaseDurationSeconds": 30,
                                    "renewTime": "2020-01-01T00:00:00.000000Z"}})
    assert down(kube, cfg)["deleted"] and kube.namespace(ns) is None


def test_a_namespace_already_terminating_is_only_waited_for(cfg: LoadedConfig) -> None:
    kube = FakeKube(linger=3)
    provisioned(cfg, kube)
    kube.delete("v1", "Namespace", cfg.identity.namespace)
    kube.calls.clear()
    assert down(kube, cfg)["deleted"]
    ns = cfg.identity.namespace
    assert kube.calls == [f"delete Namespace/{ns}", f"delete all Pod in {ns}"]  # no lease, no record: it is going already
    assert kube.namespace(cfg.identity.namespace) is None


def test_a_namespace_held_by_a_finalizer_is_explained_and_force_removes_envcis_own(cfg: LoadedConfig) -> None:
    kube = FakeKube()
    provisioned(cfg, kube)
    ns = cfg.identity.namespace
    kube.patch_merge("v1", "ConfigMap", "db-settings", {"metadata": {"finalizers": ["example.com/keep"], "labels": {"envci.io/managed": "true"}}}, ns)
    with pytest.raises(InfrastructureError) as ei:
        down(kube, cfg, timeout=30)
    assert kube.elapsed == pytest.approx(30)
    assert f"namespace {ns} is stuck in Terminating" in ei.value.message
    assert "ConfigMap/db-settings has finalizers ['example.com/keep']" in ei.value.message and "--force" in (ei.value.hint or "")
    assert down(kube, cfg, timeout=30, force=True)["deleted"]
    assert kube.namespace(ns) is None and kube.calls[-1] == "patch ConfigMap/db-settings"


def test_the_record_on_the_namespace_is_enough_to_find_external_resources(cfg: LoadedConfig, deleted: list[str]) -> None:
    kube = FakeKube()
    provisioned(cfg, kube)
    ns = cfg.identity.namespace
    kube.patch_merge("v1", "Namespace", ns, {"metadata": {"annotations": {st.EXTERNAL_ANNOTATION: json.dumps([{"type": "fake", "name": "b"}])}}})
    kube.delete("v1", "ConfigMap", st.STATE_CONFIGMAP, ns)  # the detailed record is lost
    down(kube, cfg)
    assert deleted == ["b"]


def test_teardown_marks_the_environment_expired_first_so_the_janitor_takes_it_if_teardown_is_cut_off(
    cfg: LoadedConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube = FakeKube()
    provisioned(cfg, kube, external_items=[{"type": "fake", "name": "bucket-1"}])
    ns = cfg.identity.namespace

    def killed(item: dict[str, str]) -> None:  # the runner dies while teardown deletes the bucket
        raise EnvciError("connection reset by peer")

    monkeypatch.setitem(external._deleters, "fake", killed)
    with pytest.raises(EnvciError) as ei:
        down(kube, cfg)
    left = kube.namespace(ns)
    assert left is not None and not left["metadata"].get("deletionTimestamp")
    now = datetime.now(timezone.utc)
    assert reap_reason(left, now) == f"expired at {left['metadata']['annotations']['envci.io/expires-at']}"  # the next sweep takes it
    assert now - timedelta(minutes=1) < (parse_time(left["metadata"]["annotations"]["envci.io/expires-at"]) or now - timedelta(days=1))
    assert "marked expired" in (ei.value.hint or "") and "envci reap" in (ei.value.hint or "")


def test_with_a_deadline_teardown_starts_every_deletion_and_returns_in_time(cfg: LoadedConfig, deleted: list[str]) -> None:
    kube = FakeKube()
    provisioned(cfg, kube, external_items=[{"type": "fake", "name": "bucket-1"}])
    ns = cfg.identity.namespace
    kube.patch_merge("v1", "ConfigMap", "db-settings", {"metadata": {"finalizers": ["example.com/keep"]}}, ns)
    helm = FakeHelm(kube.calls, ["shop-db"])
    err = io.StringIO()
    out = teardown(kube, Reporter(err=err), namespace=ns, name=cfg.identity.name, helm_factory=lambda: helm,  # type: ignore[arg-type,return-value]
                   sleep=kube.sleep, clock=kube.monotonic, deadline=40)
    assert out == {"name": cfg.identity.name, "namespace": ns, "deleted": True, "existed": True, "gone": False}
    assert kube.elapsed <= 40
    assert helm.timeouts == ["20s"]  # helm's own wait is cut to a share of the deadline
    assert deleted == ["bucket-1"] and kube.namespace(ns)["metadata"].get("deletionTimestamp")  # type: ignore[index]
    said = err.getvalue()
    assert f"namespace {ns} is still terminating at the 40s deadline" in said and "ConfigMap/db-settings has finalizers" in said


def test_with_a_deadline_a_namespace_that_goes_in_time_is_reported_gone(cfg: LoadedConfig) -> None:
    kube = FakeKube(linger=3)
    provisioned(cfg, kube)
    assert down(kube, cfg, deadline=40)["gone"] is True


def test_provision_waits_for_a_namespace_an_earlier_teardown_is_still_deleting(cfg: LoadedConfig) -> None:
    """A newer push cancels the older run, whose cleanup deletes the environment the new run provisions."""
    kube = FakeKube(linger=5)
    provisioned(cfg, kube)
    down(kube, cfg, wait=False)
    assert kube.namespace(cfg.identity.namespace)["metadata"].get("deletionTimestamp")  # type: ignore[index]
    err = io.StringIO()
    ensure_namespace(kube, cfg, now=kube.utcnow(), progress=Reporter(err=err).progress, sleep=kube.sleep, monotonic=kube.monotonic)
    made = kube.namespace(cfg.identity.namespace)
    assert made is not None and not made["metadata"].get("deletionTimestamp")
    assert err.getvalue().count("is still being deleted (an earlier teardown); waiting for it to go") == 1


def test_provision_gives_up_on_a_namespace_that_stays_terminating(cfg: LoadedConfig) -> None:
    kube = FakeKube()
    provisioned(cfg, kube)
    kube.patch_merge("v1", "ConfigMap", "db-settings", {"metadata": {"finalizers": ["example.com/keep"]}}, cfg.identity.namespace)
    down(kube, cfg, wait=False)
    with pytest.raises(InfrastructureError, match="still being deleted after 30s"):
        ensure_namespace(kube, cfg, now=kube.utcnow(), sleep=kube.sleep, monotonic=kube.monotonic, terminating_wait=30)
    assert kube.elapsed == pytest.approx(30, abs=1.5)


def test_a_newer_build_that_takes_the_environment_over_during_teardown_keeps_its_namespace(cfg: LoadedConfig, deleted: list[str]) -> None:
    """A cancelled run's cleanup is still uninstalling when the newer run's provision relabels the namespace."""
    kube = FakeKube()
    provisioned(cfg, kube, external_items=[{"type": "fake", "name": "bucket-1"}])
    ns = cfg.identity.namespace
    kube.patch_merge("v1", "Namespace", ns, {"metadata": {"labels": {"envci.io/build": "100"}}})

    class TakenOver(FakeHelm):
        async def uninstall(self, name: str, namespace: str, timeout: str = "2m") -> None:
            await super().uninstall(name, namespace, timeout)
            kube.patch_merge("v1", "Namespace", ns, {"metadata": {"labels": {"envci.io/build": "101"}}})

    out = down(kube, cfg, TakenOver(kube.calls, ["shop-db"]), build="100")
    assert out["superseded_by"] == "101" and not out["deleted"] and deleted == []  # its bucket stays too
    assert f"delete Namespace/{ns}" not in kube.calls and not kube.namespace(ns)["metadata"].get("deletionTimestamp")  # type: ignore[index]


def test_a_role_that_may_not_delete_all_pods_at_once_still_tears_down(cfg: LoadedConfig) -> None:
    kube = FakeKube()
    provisioned(cfg, kube)
    kube.fail("delete_all", InfrastructureError("Kubernetes API refused to delete the Pods in the namespace (403 Forbidden)"))
    assert down(kube, cfg)["gone"]  # the namespace controller deletes them
    assert kube.namespace(cfg.identity.namespace) is None
