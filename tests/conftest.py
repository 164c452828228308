"""Shared fixtures: clusters for the session, a namespace per test, kwok log/exec/port-forward helpers.

Two embedded local clusters serve the tests (or a real one when ENVCI_TEST_KUBECONFIG names its
kubeconfig, for both fixtures):
- `kubeconfig`: the simulated flavour (kwok nodes): stage logic, scale, and kwok's fault stages;
- `real_kubeconfig`: the real node, where containers run: images, networking, DNS, probes, logs,
  exec and port-forward as the kubelet does them.
They are left running at the end: the next session reuses them in seconds, and
`envci cluster down [--nodes simulated]` removes them.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import string
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from envci import localcluster
from envci.localcluster import spec

CREATED_BY = {"created-by": "envci-tests"}
_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits


def namespace_name(test_name: str, suffix: str) -> str:
    """`t-<test name, DNS-1123>-<suffix>`, at most 63 characters."""
    slug = re.sub(r"[^a-z0-9]+", "-", test_name.lower().removeprefix("test_")).strip("-")
    room = 63 - len("t-") - len(suffix) - 1
    slug = slug[:room].rstrip("-") or "x"
    return f"t-{slug}-{suffix}"


def _prepend_path(mp: pytest.MonkeyPatch, directory: Path) -> None:
    mp.setenv("PATH", f"{directory}{os.pathsep}{os.environ.get('PATH', '')}")


@pytest.fixture(scope="session")
def kubeconfig() -> Iterator[str]:
    """Path of a kubeconfig for a working cluster; also exported as KUBECONFIG for the session.

    The built kubectl and helm come first on PATH, so subprocesses use the versions the cluster
    was made with.
    """
    with pytest.MonkeyPatch.context() as mp:
        real = os.environ.get("ENVCI_TEST_KUBECONFIG")
        if real:
            path = real
            bin_dir = localcluster.binaries_dir()
            if bin_dir.is_dir():
                _prepend_path(mp, bin_dir)
        else:
            try:
                path = str(localcluster.up(localcluster.Settings(flavour="simulated")))
            except localcluster.BinariesUnavailable as e:
                pytest.skip(f"no local cluster: {e.message} (set ENVCI_TEST_KUBECONFIG to use a real cluster)")
            _prepend_path(mp, localcluster.binaries_dir())
        mp.setenv("KUBECONFIG", path)
        yield path


def _load_project_images() -> None:
    """Import into the real node every image the project builds (built offline, cached) that it lacks or
    holds from an older build: nothing can be pulled there, and a node made anew holds only pause,
    CoreDNS and busybox."""
    from envci.images import build, containerd

    containerd.ensure_loaded(build.build(build.Sources()), containerd.default_containerd_socket(), containerd.default_ctr())


@pytest.fixture(scope="session")
def load_project_images() -> Callable[[], None]:
    """For a test that makes the real node anew: call it to leave the node as the session found it."""
    return _load_project_images


@pytest.fixture(scope="session")
def real_kubeconfig() -> Iterator[str]:
    """Path of a kubeconfig for the local cluster with a real node (containers run); the built
    kubectl, helm and ctr come first on PATH. Not exported as KUBECONFIG: tests pass it explicitly,
    so simulated-cluster tests in the same session keep theirs."""
    with pytest.MonkeyPatch.context() as mp:
        real = os.environ.get("ENVCI_TEST_KUBECONFIG")
        if real:
            path = real
        else:
            try:
                path = str(localcluster.up(localcluster.Settings(flavour="real")))
            except localcluster.BinariesUnavailable as e:
                pytest.skip(f"no local cluster: {e.message} (set ENVCI_TEST_KUBECONFIG to use a real cluster)")
            _load_project_images()
        bin_dir = localcluster.binaries_dir()
        if bin_dir.is_dir():
            _prepend_path(mp, bin_dir)
        yield path


@pytest.fixture(scope="session")
def real_api_client(real_kubeconfig: str) -> client.ApiClient:
    return config.new_client_from_config(config_file=real_kubeconfig)


@pytest.fixture
def real_namespace(request: pytest.FixtureRequest, real_api_client: client.ApiClient) -> Iterator[str]:
    """A fresh namespace on the real-node cluster for one test, deleted afterwards."""
    yield from _namespace_for(request, real_api_client)


@pytest.fixture(scope="session")
def api_client(kubeconfig: str) -> client.ApiClient:
    """A kubernetes ApiClient for the session's cluster."""
    return config.new_client_from_config(config_file=kubeconfig)


def _wait_for_default_service_account(core: client.CoreV1Api, name: str, timeout: float = 30) -> None:
    """Pods are refused until the controller-manager has made the namespace's `default` account."""
    try:
        core.read_namespaced_service_account("default", name)
        return
    except ApiException as e:
        if e.status != 404:
            raise
    w = watch.Watch()
    for event in w.stream(
        core.list_namespaced_service_account, name, field_selector="metadata.name=default", timeout_seconds=int(timeout)
    ):
        if event["type"] in ("ADDED", "MODIFIED"):
            w.stop()
            return
    raise TimeoutError(f"namespace {name}: no default ServiceAccount after {timeout}s")


@pytest.fixture
def namespace(request: pytest.FixtureRequest, api_client: client.ApiClient) -> Iterator[str]:
    """A fresh namespace for one test, labelled created-by=envci-tests, deleted afterwards."""
    yield from _namespace_for(request, api_client)


def _namespace_for(request: pytest.FixtureRequest, api_client: client.ApiClient) -> Iterator[str]:
    core = client.CoreV1Api(api_client)
    name = namespace_name(request.node.name, "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5)))
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=dict(CREATED_BY))))
    _wait_for_default_service_account(core, name)
    yield name
    try:
        # Not waited for: the namespace controller finishes in the background, and a stuck
        # namespace is still findable by its created-by label.
        core.delete_namespace(name, propagation_policy="Background")
    except ApiException as e:
        if e.status != 404:
            raise


def _apply(kubeconfig: str, obj: dict) -> None:
    subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, "apply", "--server-side", "--field-manager=envci-tests", "-f", "-"],
        input=json.dumps(obj), text=True, capture_output=True, check=True, timeout=30,
    )


KwokObject = Callable[..., None]


@pytest.fixture
def pod_logs(kubeconfig: str, tmp_path: Path) -> KwokObject:
    """`pod_logs(namespace, pod, text, containers=None)`: `kubectl logs` of that pod returns `text`.

    Works on the local cluster only (kwok serves logs from a file through a `Logs` object).
    """

    def configure(namespace: str, pod: str, text: str, containers: list[str] | None = None) -> None:
        logs_file = tmp_path / f"{namespace}-{pod}-{time.monotonic_ns()}.log"
        logs_file.write_text(spec.cri_log(text))
        _apply(kubeconfig, spec.pod_logs(namespace, pod, logs_file, containers))

    return configure


@pytest.fixture
def pod_port_forward(kubeconfig: str) -> KwokObject:
    """`pod_port_forward(namespace, pod, {pod_port: (host, host_port)})`: port-forward reaches a local server."""

    def configure(namespace: str, pod: str, forwards: dict[int, tuple[str, int]]) -> None:
        _apply(kubeconfig, spec.pod_port_forward(namespace, pod, forwards))

    return configure


@pytest.fixture
def pod_exec(kubeconfig: str, tmp_path: Path) -> KwokObject:
    """`pod_exec(namespace, pod, workdir=tmp_path, env=None)`: `kubectl exec` runs the command on this host."""

    def configure(namespace: str, pod: str, workdir: Path | None = None, env: dict[str, str] | None = None) -> None:
        _apply(kubeconfig, spec.pod_exec(namespace, pod, workdir or tmp_path, env))

    return configure
