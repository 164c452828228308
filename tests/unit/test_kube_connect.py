"""A client made from an explicit kubeconfig file keeps it, and Helm beside it uses that file too.

Before, `connect(path)` forgot the path, and provision, teardown and `helm_test` suites ran helm
with whatever $KUBECONFIG named: a release could land on another cluster than the namespace.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from envci.kube.client import connect

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: a, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: a, user: {token: not-a-real-token}}]
contexts: [{name: a, context: {cluster: a, user: a}}]
current-context: a
"""


@pytest.fixture
def two_kubeconfigs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    mine, other = tmp_path / "mine.yaml", tmp_path / "other.yaml"
    mine.write_text(KUBECONFIG)
    other.write_text(KUBECONFIG.replace("127.0.0.1:1", "127.0.0.1:2"))
    monkeypatch.setenv("KUBECONFIG", str(other))
    return mine, other


def test_connect_remembers_the_file_it_was_given_over_the_environment(two_kubeconfigs: tuple[Path, Path]) -> None:
    mine, other = two_kubeconfigs
    assert connect(str(mine)).kubeconfig == str(mine)
    assert connect().kubeconfig == str(other)  # no file given: $KUBECONFIG, as before


def test_helm_beside_a_client_uses_the_clients_kubeconfig(two_kubeconfigs: tuple[Path, Path]) -> None:
    from envci.helm import Helm
    from envci.localcluster import binaries_dir

    if not shutil.which("helm") and not (binaries_dir() / "helm").exists():
        pytest.skip("no helm binary (run `envci cluster up` to build one)")
    mine, _ = two_kubeconfigs
    assert Helm.beside(connect(str(mine))).kubeconfig == str(mine)
