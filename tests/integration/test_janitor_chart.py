"""The janitor chart installs, and its ServiceAccount can do what `envci reap` needs and no more."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster
CHART = Path(__file__).parents[2] / "charts" / "envci-janitor"


def can_i(verb: str, resource: str, sa: str, namespace: str | None = None) -> bool:
    cmd = ["kubectl", "auth", "can-i", verb, resource, f"--as=system:serviceaccount:{sa}"]
    if namespace:
        cmd += ["-n", namespace]
    return subprocess.run(cmd, capture_output=True, text=True).stdout.strip() == "yes"


def test_janitor_chart_installs_with_least_privilege(kubeconfig: str, namespace: str) -> None:
    release = f"janitor-{namespace[-5:]}"
    subprocess.run(
        ["helm", "install", release, str(CHART), "-n", namespace, "--set", "args={--closed-prs}", "--set", "suspendAfter=2h",
         "--wait", "--timeout", "60s"],
        check=True, capture_output=True, text=True,
    )
    try:
        cron = subprocess.run(
            ["kubectl", "get", "cronjob", release, "-n", namespace, "-o", "jsonpath={.spec.jobTemplate.spec.template.spec.containers[0].args}"],
            check=True, capture_output=True, text=True,
        ).stdout
        assert '"reap"' in cron and '"--closed-prs"' in cron and '"--suspend-after","2h"' in cron
        sa = f"{namespace}:{release}"
        assert can_i("delete", "namespaces", sa) and can_i("list", "namespaces", sa)
        assert can_i("delete", "secrets", sa, "envci-some-env")  # helm uninstall reads and deletes release records
        assert can_i("update", "leases.coordination.k8s.io", sa, "envci-some-env")
        for workload in ("deployments.apps", "statefulsets.apps", "replicasets.apps", "cronjobs.batch"):  # suspend scales them
            assert can_i("patch", workload, sa, "envci-some-env"), workload
        assert not can_i("create", "namespaces", sa)
        assert not can_i("create", "deployments", sa, "default")
        assert not can_i("create", "clusterrolebindings", sa)
        assert not can_i("create", "pods/exec", sa, "default")
    finally:
        subprocess.run(["helm", "uninstall", release, "-n", namespace], capture_output=True)


def test_a_suspend_after_that_is_not_a_duration_fails_at_install_not_at_every_sweep(kubeconfig: str) -> None:
    # kubeconfig: puts the helm the cluster was made with first on PATH; nothing is installed.
    bad = subprocess.run(["helm", "template", "j", str(CHART), "--set", "suspendAfter=2x"], capture_output=True, text=True)
    assert bad.returncode != 0 and "/suspendAfter" in bad.stderr
    good = subprocess.run(["helm", "template", "j", str(CHART), "--set", "suspendAfter=1d12h"], capture_output=True, text=True, check=True)
    assert '- --suspend-after\n                - "1d12h"' in good.stdout
