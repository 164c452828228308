"""The corpus (tests/data/corpus): applications in the shapes public charts take, each brought up on the
local cluster's real node through envci's CLI, checked, and torn down with nothing left behind; and
broken variants, each stopped with its exit code and a reason that names the object.

The environments use `namespace.prefix: t-` and the name of the test's own namespace, so envci adopts
the namespace the fixture made (labelled created-by=envci-tests): one an interrupted run leaves is
removed like any test namespace. The kubeconfig is passed with --kubeconfig, never exported for the
session (main() exports it for its own run; monkeypatch restores it).

The LoadBalancer Service with no controller runs on the simulated cluster, whose Services get no
address; it goes through the Python API to shorten the grace before the verdict.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from envci.cli import main
from envci.config.loader import load_config
from envci.errors import ExitCode, NotReadyError
from envci.identity import CiContext
from envci.kube import readiness
from envci.kube.client import connect
from envci.output import Reporter
from envci.stages.provision import provision
from envci.stages.teardown import teardown
from envci.stages.wait_ready import wait_ready

pytestmark = pytest.mark.cluster

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"
LB_POOL = ipaddress.ip_network("198.19.255.0/24")
WIDGET_CRD = "widgets.corpus.envci.test"


@dataclass
class Env:
    name: str
    namespace: str
    config: Path
    kubeconfig: str
    api: client.ApiClient
    capsys: pytest.CaptureFixture[str]

    def cli(self, stage: str) -> tuple[int, dict[str, Any]]:
        """Run one stage in-process with --output json; its exit code and its result (or error) object."""
        self.capsys.readouterr()
        code = main([stage, "--config", str(self.config), "--env", self.name, "--kubeconfig", self.kubeconfig, "--output", "json"])
        out, err = self.capsys.readouterr()
        assert "internal error" not in out + err
        text = out.strip()
        start = text.rfind("\n{") + 1  # the last object printed at the left margin (it may span lines)
        return code, (json.loads(text[start:]) if text.startswith("{") or start else {})

    def up(self, stage: str) -> dict[str, Any]:
        code, result = self.cli(stage)
        assert code == ExitCode.OK, f"{stage} exited {code}: {result}"
        return result

    def down(self) -> None:
        self.up("teardown")
        core = client.CoreV1Api(self.api)
        with pytest.raises(ApiException) as ei:
            core.read_namespace(self.namespace)
        assert ei.value.status == 404, f"namespace {self.namespace} is still there after teardown"
        # What a namespace does not hold: volumes bound to its claims go with them (reclaim policy Delete).
        until(lambda: not [pv.metadata.name for pv in core.list_persistent_volume().items
                           if pv.spec.claim_ref and pv.spec.claim_ref.namespace == self.namespace],
              f"persistent volumes of {self.namespace}")
        rbac = client.RbacAuthorizationV1Api(self.api)
        leftovers = [o.metadata.name for o in rbac.list_cluster_role_binding().items + rbac.list_cluster_role().items
                     if self.namespace in o.metadata.name]
        assert not leftovers


def until(done: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"{what}: still there after {seconds}s"
        time.sleep(1)


@pytest.fixture
def corpus_env(
    real_kubeconfig: str, real_namespace: str, real_api_client: client.ApiClient, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> Callable[[str], Env]:
    monkeypatch.setenv("KUBECONFIG", real_kubeconfig)  # main() sets it for its run; restored afterwards
    monkeypatch.setenv("ENVCI_OUTPUT_DIR", str(tmp_path / ".envci"))
    monkeypatch.chdir(tmp_path)  # the report folder and CI outputs land here
    name = real_namespace.removeprefix("t-")
    # envci adopts only a namespace it made: give the fixture's the labels provision would have.
    client.CoreV1Api(real_api_client).patch_namespace(
        real_namespace, {"metadata": {"labels": {"envci.io/managed": "true", "envci.io/env": name}}}
    )

    def make(case: str) -> Env:
        return Env(name, real_namespace, CORPUS / case / "envci.yaml", real_kubeconfig, real_api_client, capsys)

    return make


# --- what each application must look like once up ----------------------------------------------------


def ready_deployments(env: Env) -> set[str]:
    apps = client.AppsV1Api(env.api)
    return {d.metadata.name for d in apps.list_namespaced_deployment(env.namespace).items
            if (d.status.ready_replicas or 0) == d.spec.replicas}


def check_umbrella(env: Env) -> None:
    assert ready_deployments(env) == {"shop-frontend", "shop-backend"}  # both vendored subcharts
    settings = client.CoreV1Api(env.api).read_namespaced_config_map("shop-settings", env.namespace)
    assert settings.data == {"backend-url": "http://shop-backend:8080/"}


def check_statefulset(env: Env) -> None:
    claims = client.CoreV1Api(env.api).list_namespaced_persistent_volume_claim(env.namespace).items
    assert {(c.metadata.name, c.status.phase, c.spec.storage_class_name) for c in claims} == {
        ("data-kv-0", "Bound", "standard"), ("data-kv-1", "Bound", "standard")
    }


def check_hooks(env: Env) -> None:
    core, batch = client.CoreV1Api(env.api), client.BatchV1Api(env.api)
    assert core.read_namespaced_config_map("api-schema", env.namespace).data == {"version": "2.0.3"}  # pre-install
    smoke = batch.read_namespaced_job("api-smoke", env.namespace)  # post-install, after the app answered
    assert smoke.status.succeeded == 1
    assert ready_deployments(env) == {"api"}


def check_loadbalancer(env: Env) -> None:
    svc = client.CoreV1Api(env.api).read_namespaced_service("edge", env.namespace)
    assert svc.spec.type == "LoadBalancer"
    assert ipaddress.ip_address(svc.status.load_balancer.ingress[0].ip) in LB_POOL  # set by the node's agent


def check_crds(env: Env) -> None:
    widgets = client.CustomObjectsApi(env.api).list_namespaced_custom_object("corpus.envci.test", "v1alpha1", env.namespace, "widgets")
    assert [(w["metadata"]["name"], w["spec"]) for w in widgets["items"]] == [("operator-example", {"size": 3, "colour": "blue"})]


def check_microservices(env: Env) -> None:
    assert len(ready_deployments(env)) == 12
    assert len(client.CoreV1Api(env.api).list_namespaced_service(env.namespace).items) == 12


HEALTHY: dict[str, Callable[[Env], None]] = {
    "umbrella": check_umbrella,
    "statefulset": check_statefulset,
    "hooks": check_hooks,
    "loadbalancer": check_loadbalancer,
    "crds": check_crds,
    "microservices": check_microservices,
}


def delete_crd(api: client.ApiClient, name: str) -> None:
    ext = client.ApiextensionsV1Api(api)
    try:
        ext.delete_custom_resource_definition(name)
    except ApiException as e:
        if e.status != 404:
            raise

    def gone() -> bool:
        try:
            ext.read_custom_resource_definition(name)
        except ApiException as e:
            if e.status == 404:
                return True
            raise
        return False

    until(gone, f"CustomResourceDefinition {name}")


@pytest.mark.parametrize("case", sorted(HEALTHY))
def test_corpus_application_comes_up_and_goes_without_a_trace(case: str, corpus_env: Callable[[str], Env]) -> None:
    env = corpus_env(case)
    try:
        env.up("provision")
        env.up("wait-ready")
        HEALTHY[case](env)
        env.down()
        if case == "crds":
            # Helm installs a chart's crds/ folder but never upgrades or deletes it (so uninstalling a
            # chart cannot delete every custom resource in the cluster): the definition outlives the
            # environment by Helm's rule, not by envci's omission.
            client.ApiextensionsV1Api(env.api).read_custom_resource_definition(WIDGET_CRD)
    finally:
        if case == "crds":
            delete_crd(env.api, WIDGET_CRD)


# --- broken variants ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Broken:
    workload: str
    reasons: frozenset[str]
    words: tuple[str, ...]


BROKEN = {
    "storageclass": Broken("PersistentVolumeClaim/data-kv-0", frozenset({"ProvisioningFailed"}),
                           ('storageclass.storage.k8s.io "fast-ssd" not found',)),
    "image": Broken("Deployment/edge", frozenset({"ErrImagePull", "ImagePullBackOff"}),
                    ("envci.local/no-such-image:1",)),
    "probe": Broken("Deployment/edge", frozenset({"NotReady"}),
                    ("not ready within 20s", "Readiness probe failed: HTTP probe failed with statuscode: 404")),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_variant_stops_wait_ready_with_its_reason(case: str, corpus_env: Callable[[str], Env]) -> None:
    env = corpus_env(f"broken/{case}")
    want = BROKEN[case]
    try:
        env.up("provision")
        started = time.monotonic()
        code, result = env.cli("wait-ready")
        assert code == ExitCode.NOT_READY, result
        assert time.monotonic() - started < 60  # the component's wait.timeout is 20s
        failures = {f["workload"]: f for f in result["failures"] if not f.get("related")}
        assert want.workload in failures, result["error"]
        f = failures[want.workload]
        assert f["component"] == "app" and f["reason"] in want.reasons, f
        for words in want.words:
            assert words in f["message"], f["message"]
        assert want.workload.partition("/")[2] in result["error"]
    finally:
        env.down()


def test_custom_resource_with_no_crd_is_bad_input_naming_the_object_and_its_file(corpus_env: Callable[[str], Env]) -> None:
    env = corpus_env("broken/crd")
    try:
        code, result = env.cli("provision")
        assert code == ExitCode.BAD_INPUT, result
        assert result["type"] == "ConfigError"
        assert "component app: Widget example: the cluster has no API for Widget (corpus.envci.test/v1alpha1)" in result["error"]
        assert result["errors"][0]["file"].endswith("broken/crd/k8s/widget.yaml")
        assert "install the CustomResourceDefinition of Widget first" in result["hint"]
    finally:
        env.down()


def test_load_balancer_with_no_controller_is_named_before_the_deadline(
    kubeconfig: str, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the simulated cluster nothing ever sets a load-balancer address."""
    monkeypatch.setenv("ENVCI_OUTPUT_DIR", str(tmp_path / ".envci"))
    monkeypatch.chdir(tmp_path)
    name = namespace.removeprefix("t-")
    kube = connect(kubeconfig)
    kube.patch_merge("v1", "Namespace", namespace, {"metadata": {"labels": {"envci.io/managed": "true", "envci.io/env": name}}})
    cfg = load_config(CORPUS / "loadbalancer" / "envci.yaml", CiContext(system="local"), env_override=name)
    assert cfg.identity.namespace == namespace
    rep = Reporter()
    provision(cfg, kube, rep)
    try:
        rules = readiness.Rules(load_balancer_grace=timedelta(seconds=5))
        started = time.monotonic()
        with pytest.raises(NotReadyError) as ei:
            wait_ready(cfg, kube, rep, rules=rules)  # the component's wait.timeout is 60s
        assert time.monotonic() - started < 40
        e = ei.value
        assert e.exit_code == ExitCode.NOT_READY
        f = next(f for f in e.failures if f["workload"] == "Service/edge")
        assert f["reason"] == "NoLoadBalancerAddress"
        assert f["message"].startswith("Service edge (type LoadBalancer) has no address after 5s: no load-balancer controller has set one")
        assert "`type: ClusterIP`" in (e.hint or "") and "`expose:`" in (e.hint or "")
    finally:
        teardown(kube, rep, namespace=namespace, name=name)


def test_failed_pre_install_hook_is_not_ready_naming_the_job_and_its_last_words(corpus_env: Callable[[str], Env]) -> None:
    env = corpus_env("broken/hook")
    try:
        code, result = env.cli("provision")
        assert code == ExitCode.NOT_READY, result
        assert result["type"] == "NotReadyError"
        assert f"release api in {env.namespace}: its pre-install hook failed: job api-migrate failed: BackoffLimitExceeded" in result["error"]
        assert "logs job/api-migrate" in result["hint"]
        # The diagnostics bundle has the migration's own last line.
        summary = Path(result["diagnostics"])
        logs = "".join(p.read_text() for p in summary.parent.glob("logs/*/*.log"))
        assert "migration 0042_orders failed: column orders.total does not exist" in logs
    finally:
        env.down()
