"""`envci logs` and the diagnostics bundle on the local cluster's real node, with containers that really
crash (busybox, built locally; nothing is pulled).

Each test works in its own namespace (the `real_namespace` fixture), made an envci environment by
giving envci.yaml the namespace prefix `t-` and the rest of the name as `--env`, and labelling it as
provision would. The CLI runs in this process (`main`), except `logs -f`, which runs as a process of
its own and is stopped with SIGTERM as a person stops it with Ctrl-C.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from envci.cli import main
from envci.errors import ExitCode
from envci.kube.client import Kube, connect
from envci.manifests import COMPONENT_LABEL

pytestmark = pytest.mark.cluster

IMAGE = "envci.local/busybox:1"
ROOT = Path(__file__).resolve().parents[2]
SECRET = "lg-9c1f7e2b5a-token"

# Crashes once (exit 3) and runs from its second start on: an emptyDir keeps the count across
# restarts of the container, so the previous instance is the one that crashed.
CRASH_ONCE = 'n=$(cat /d/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /d/n; echo "boom $n"; [ "$n" -ge 2 ] && exec sleep 3600; exit 3'
# Prints a line a second for two seconds, then crashes; runs on from its second start.
SLOW_CRASH_ONCE = (
    'n=$(cat /d/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /d/n; echo "life $n"; sleep 2; echo "life $n ends"; '
    '[ "$n" -ge 2 ] && exec sleep 3600; exit 3'
)


@dataclass
class Env:
    name: str
    namespace: str
    config: Path
    kubeconfig: str
    kube: Kube
    dir: Path

    def cli(self, *args: str) -> list[str]:
        return [*args, "--config", str(self.config), "--env", self.name, "--kubeconfig", self.kubeconfig]

    def apply(self, component: str, obj: dict[str, Any]) -> None:
        obj.setdefault("metadata", {}).setdefault("labels", {})[COMPONENT_LABEL] = component
        self.kube.apply(obj, self.namespace)

    def pods(self, component_prefix: str) -> list[dict[str, Any]]:
        return [p for p in self.kube.pods(self.namespace) if p["metadata"]["name"].startswith(component_prefix + "-")]

    def wait_for(self, what: str, ok: Callable[[], bool], seconds: float = 40) -> None:
        end = time.monotonic() + seconds
        while not ok():
            if time.monotonic() > end:
                raise AssertionError(f"{what} did not happen within {seconds}s: {json.dumps([p.get('status') for p in self.kube.pods(self.namespace)])[:2000]}")
            self.kube.wait_for_pod_change(self.namespace, 1)


def deployment(name: str, command: str) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "volumes": [{"name": "d", "emptyDir": {}}],
                    "containers": [{
                        "name": "app", "image": IMAGE, "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", command],
                        "volumeMounts": [{"name": "d", "mountPath": "/d"}], "env": [{"name": "TOKEN", "value": SECRET}],
                    }],
                },
            },
        },
    }


def envci_yaml(prefix: str, manifests: dict[str, str]) -> str:
    comps = "".join(f"  - name: {c}\n    manifests: [k8s/{c}.yaml]\n    wait: {{timeout: 60s}}\n" for c in manifests)
    return (
        "name: lg\nttl: 30m\n"
        f"namespace: {{prefix: {prefix}, quota: null, limits: null, network: {{isolate: false}}}}\n"
        "secrets:\n  token: {from_env: LG_TOKEN}\n"
        f"components:\n{comps}"
    )


@pytest.fixture
def env(real_kubeconfig: str, real_namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    # main() exports --kubeconfig as KUBECONFIG; keep that from leaking into other tests.
    monkeypatch.setenv("KUBECONFIG", real_kubeconfig)
    monkeypatch.setenv("LG_TOKEN", SECRET)
    monkeypatch.setenv("ENVCI_OUTPUT_DIR", str(tmp_path / ".envci"))
    monkeypatch.chdir(tmp_path)
    name = real_namespace.removeprefix("t-")
    (tmp_path / "k8s").mkdir()
    placeholder = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: placeholder-%s}\n"
    for c in ("web", "db"):
        (tmp_path / "k8s" / f"{c}.yaml").write_text(placeholder % c)
    (tmp_path / "envci.yaml").write_text(envci_yaml("t-", {"web": "", "db": ""}))
    kube = connect(real_kubeconfig)
    kube.patch_merge("v1", "Namespace", real_namespace, {"metadata": {"labels": {"envci.io/managed": "true", "envci.io/env": name}}})
    return Env(name, real_namespace, tmp_path / "envci.yaml", real_kubeconfig, kube, tmp_path)


def restarted_and_running(pods: list[dict[str, Any]]) -> bool:
    statuses = [cs for p in pods for cs in (p.get("status") or {}).get("containerStatuses") or []]
    return bool(statuses) and all(cs.get("restartCount", 0) >= 1 and "running" in (cs.get("state") or {}) for cs in statuses)


def running(pods: list[dict[str, Any]]) -> bool:
    statuses = [cs for p in pods for cs in (p.get("status") or {}).get("containerStatuses") or []]
    return bool(statuses) and all("running" in (cs.get("state") or {}) for cs in statuses)


def run_cli(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, list[str], str]:
    capsys.readouterr()
    code = main(args)
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def test_logs_shows_a_components_pods_with_their_prefix_previous_instance_and_json(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    env.apply("web", deployment("web", CRASH_ONCE))
    env.apply("db", deployment("db", "echo db ready; exec sleep 3600"))
    env.wait_for("web's container crashed once and runs again", lambda: restarted_and_running(env.pods("web")))
    env.wait_for("db runs", lambda: running(env.pods("db")))
    web = env.pods("web")[0]["metadata"]["name"]
    db = env.pods("db")[0]["metadata"]["name"]

    code, lines, _ = run_cli(capsys, env.cli("logs", "web"))
    assert code == ExitCode.OK
    assert lines == [f"[pod/{web}/app] boom 2"]  # no colour: stdout is not a terminal

    code, lines, _ = run_cli(capsys, env.cli("logs", "web", "--previous"))
    assert (code, lines) == (ExitCode.OK, [f"[pod/{web}/app previous] boom 1"])

    code, lines, _ = run_cli(capsys, env.cli("logs", "--tail", "1"))
    assert (code, sorted(lines)) == (ExitCode.OK, sorted([f"[pod/{db}/app] db ready", f"[pod/{web}/app] boom 2"]))

    code, lines, _ = run_cli(capsys, env.cli("logs", "web", "-p", "-o", "json"))
    records = [json.loads(line) for line in lines]
    assert code == ExitCode.OK and len(records) == 1
    record = records[0]
    assert record["time"].endswith("Z") and record["time"][:4].isdigit()
    assert {k: v for k, v in record.items() if k != "time"} == {
        "namespace": env.namespace, "component": "web", "pod": web, "container": "app", "previous": True, "message": "boom 1",
    }

    code, lines, err = run_cli(capsys, env.cli("logs", "wbe"))
    assert (code, lines) == (ExitCode.BAD_INPUT, [])
    assert "COMPONENT: no component named 'wbe'; the environment has: db, web" in err

    code, lines, err = run_cli(capsys, ["logs", "--env", "no-such-env-x1", "--config", str(env.dir / "missing.yaml"), "--kubeconfig", env.kubeconfig])
    assert (code, lines) == (ExitCode.NOT_READY, [])
    assert "environment no-such-env-x1 does not exist" in err


def test_logs_follow_picks_up_restarts_and_new_pods(env: Env) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "envci.cli", *env.cli("logs", "web", "-f")],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.rstrip("\n")) for line in proc.stdout or []], daemon=True).start()
    seen: list[str] = []

    def until(what: str, ok: Callable[[], bool], seconds: float = 40) -> None:
        end = time.monotonic() + seconds
        while not ok():
            left = end - time.monotonic()
            if left <= 0 or proc.poll() is not None:
                raise AssertionError(f"no {what} within {seconds}s; printed: {seen}; stderr: {proc.stderr.read() if proc.poll() is not None and proc.stderr else ''}")
            try:
                seen.append(lines.get(timeout=min(left, 1)))
            except queue.Empty:
                pass

    try:
        # Started before the component has any pod: the pod, its restart and a replacement pod all show up.
        env.apply("web", deployment("web", SLOW_CRASH_ONCE))
        env.apply("db", deployment("db", "echo db ready; exec sleep 3600"))
        until("second life of the first pod", lambda: any(line.endswith("] life 2") for line in seen))
        first = next(line for line in seen if line.endswith("] life 1")).split("/")[1]
        assert f"[pod/{first}/app] life 1 ends" in seen  # the crashed instance was read to its end
        env.kube.delete("v1", "Pod", first, env.namespace)
        until("a line from the replacement pod", lambda: any(line.startswith("[pod/") and line.split("/")[1] != first for line in seen))
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
    assert code == ExitCode.CANCELLED
    ours = [line for line in seen if line.startswith(f"[pod/{first}/")]
    assert ours[:3] == [f"[pod/{first}/app] life 1", f"[pod/{first}/app] life 1 ends", f"[pod/{first}/app] life 2"]
    assert len(ours) == len(set(ours)), f"a line was shown twice: {ours}"
    assert not [line for line in seen if "db ready" in line]


def bundle_files(summary_md: Path) -> dict[str, str]:
    root = summary_md.parent
    return {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}


def test_a_failing_wait_ready_writes_a_bundle_naming_the_crash_loop(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    env.apply("web", deployment("web", 'echo "boom token=$TOKEN"; exit 3'))
    env.apply("db", deployment("db", "echo db ready; exec sleep 3600"))
    report = env.dir / "report"
    t0 = time.monotonic()
    code, _, err = run_cli(capsys, env.cli("wait-ready", "--timeout", "60s", "--output-dir", str(report)))
    seconds = time.monotonic() - t0
    assert code == ExitCode.NOT_READY
    summary_md = report / "diagnostics" / "summary.md"
    assert f"diagnostics: {summary_md}" in err
    assert seconds < 45, "decided by the crash loop, not by the deadline"

    files = bundle_files(summary_md)
    summary = files["summary.md"]
    assert "**First cause:** component `web`: Deployment/web **CrashLoopBackOff**: " in summary
    web = env.pods("web")[0]["metadata"]["name"]
    assert f"kubectl --kubeconfig {env.kubeconfig} -n {env.namespace} describe deployment/web" in summary
    assert f"envci logs --env {env.name} --kubeconfig {env.kubeconfig} web" in summary
    logs = {k: v for k, v in files.items() if k.startswith(f"logs/{web}/")}
    assert any("boom token=***" in text for text in logs.values()), logs
    assert "objects/deployment-web.yaml" in files and f"objects/pod-{web}.yaml" in files
    assert "BackOff" in files["events.txt"] or "Started" in files["events.txt"]
    assert not [k for k, v in files.items() if SECRET in v], "a secret reached the bundle"


def test_up_keep_on_failure_keeps_the_environment_and_says_how_to_reach_it(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    (env.dir / "k8s" / "web.yaml").write_text(yaml.safe_dump(deployment("web", "echo boom; exit 3")))
    report = env.dir / "report"
    code, _, err = run_cli(capsys, env.cli("up", "--keep-on-failure", "--no-publish", "--output-dir", str(report)))
    assert code == ExitCode.NOT_READY
    assert f"diagnostics: {report / 'diagnostics' / 'summary.md'}" in err
    assert "tearing down" not in err
    ns = env.kube.namespace(env.namespace)
    assert ns is not None and not ns["metadata"].get("deletionTimestamp")
    expires = ns["metadata"]["annotations"]["envci.io/expires-at"]  # the janitor reaps it then
    summary = (report / "diagnostics" / "summary.md").read_text()
    assert summary.startswith(f"# envci diagnostics: wait-ready failed for {env.name}\n")
    assert f"Kept for inspection (`--keep-on-failure`) until {expires}, when the janitor reaps it" in summary
    assert f"\nkubectl --kubeconfig {env.kubeconfig} -n {env.namespace} get all,events\n" in summary
    assert f"\nenvci logs --env {env.name} --kubeconfig {env.kubeconfig} web\n" in summary
    assert "**CrashLoopBackOff**" in summary
