"""`nox -s bench`: envci beside a hand-written kubectl/helm baseline on the embedded local cluster.

Cases: `demo` and `six-component` (stacks under bench/stacks; time until every workload is ready and
teardown until the namespace is gone, envci and the baseline in alternating order), `scale-N` (N demo
environments provisioned at once, simulated nodes), `janitor` (`envci reap` of M expired environments,
simulated nodes) and `startup-*` (CLI start-up). Prints Markdown; `--json PATH` writes the results.
Numbers, never assertions: compare runs on the same machine.

CPU is that of child processes (resource.getrusage(RUSAGE_CHILDREN) deltas): envci's Python and the
helm processes it waits for, or the baseline's kubectl and helm. The cluster's own CPU is in neither.
envci runs with ENVCI_DEBUG=http (one stderr line per API request, counted); a thread samples the
memory of the envci processes from /proc.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench import core

HERE = Path(__file__).resolve().parent
STACKS = {"demo": HERE / "stacks" / "demo.yaml", "six-component": HERE / "stacks" / "six.yaml"}
TIMEOUT = "3m"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


@dataclass
class Done:
    wall: float
    cpu: float
    code: int
    stdout: str
    stderr: str


class Runner:
    """Runs commands with the cluster's kubeconfig and bin dir, timing each one (wall and child CPU)."""

    COUNTED = ("helm", "kubectl")

    def __init__(self, kubeconfig: str, bin_dir: str) -> None:
        # helm and kubectl behind a two-line shell shim that counts their processes (its cost, a
        # few milliseconds of sh per call, falls on both sides alike).
        self.shims = Path(tempfile.mkdtemp(prefix="envci-bench-"))
        atexit.register(shutil.rmtree, self.shims, ignore_errors=True)
        for tool in self.COUNTED:
            shim = self.shims / tool
            shim.write_text(f'#!/bin/sh\necho >> "{self.shims}/{tool}.calls"\nexec "{Path(bin_dir) / tool}" "$@"\n')
            shim.chmod(0o755)
        path = os.pathsep.join([str(self.shims), bin_dir, os.environ["PATH"]])
        self.plain_env = {**os.environ, "KUBECONFIG": kubeconfig, "PATH": path, "NO_COLOR": "1"}
        # envci prints one stderr line per API request, which the cases count (core.count_requests).
        debug = [d for d in os.environ.get("ENVCI_DEBUG", "").replace(" ", "").split(",") if d and d != "http"]
        self.env = {**self.plain_env, "ENVCI_DEBUG": ",".join([*debug, "http"])}
        self.envci = [sys.executable, "-m", "envci.cli"]
        self.kubectl = str(Path(bin_dir) / "kubectl")  # the harness's own checks: not counted

    def calls(self) -> dict[str, int]:
        """helm and kubectl processes started so far through this runner."""
        out = {}
        for tool in self.COUNTED:
            f = self.shims / f"{tool}.calls"
            out[tool] = len(f.read_text().splitlines()) if f.exists() else 0
        return out

    def run(self, cmd: Sequence[str], *, check: bool = True, cwd: Path | None = None, trace: bool = True) -> Done:
        """One command; `trace=False` runs envci without the request trace."""
        c0, t0 = child_cpu(), time.perf_counter()
        p = subprocess.run(list(cmd), env=self.env if trace else self.plain_env, cwd=cwd, capture_output=True, text=True)
        done = Done(time.perf_counter() - t0, child_cpu() - c0, p.returncode, p.stdout, p.stderr)
        if check and p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {core.without_requests(p.stderr).strip()[-800:]}")
        return done

    def api_requests(self) -> float | None:
        """Every request the cluster's API server has completed since it started (all clients), from its metrics."""
        d = self.run([self.kubectl, "get", "--raw", "/metrics"], check=False)
        return core.metric_total(d.stdout) if d.code == 0 else None

    def ns_exists(self, ns: str) -> bool:
        return self.run([self.kubectl, "get", "namespace", ns, "-o", "name"], check=False).code == 0

    def drop(self, ns: str) -> None:
        """Cleanup after a failed run: the namespace goes, without waiting (its releases go with it)."""
        self.run([self.kubectl, "delete", "namespace", ns, "--ignore-not-found", "--wait=false"], check=False)


class Memory:
    """Samples, every `interval` seconds in a thread, the memory of the envci processes below this one
    (core.rss_sample) and keeps the peaks: `with Memory() as m: ...`, then `m.peak`."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.root = os.getpid()
        self.peak: dict[str, int] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-memory", daemon=True)

    def look(self) -> dict[str, int]:
        ppids: dict[int, int] = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    ppids[int(name)] = core.stat_ppid(Path(f"/proc/{name}/stat").read_text())
                except (OSError, ValueError, IndexError):
                    continue  # gone since listdir
        procs: dict[int, core.Proc] = {}
        for pid in core.descendants(ppids, self.root):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            procs[pid] = core.Proc(ppids[pid], cmdline, core.status_kb(status, "VmRSS"), core.status_kb(status, "VmHWM"))
        return core.rss_sample(procs)

    def _loop(self) -> None:
        while True:
            self.peak = core.peaks([self.peak, self.look()])
            self.samples += 1
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> Memory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def mb(self, measure: str) -> float | None:
        return core.mb(self.peak.get(measure)) if self.samples else None


def cluster(nodes: str) -> tuple[str, str]:
    """Starts the local cluster (idempotent; never stops one) and returns its kubeconfig and bin dir."""
    from envci import localcluster

    sim = nodes == "simulated"
    out = subprocess.run(
        [sys.executable, "-m", "envci.cli", "cluster", "up", *(["--nodes", "simulated"] if sim else [])],
        capture_output=True, text=True, check=True,
    )
    return out.stdout.strip().splitlines()[-1], str(localcluster.binaries_dir())


# --- stacks ------------------------------------------------------------------------------------


def envci_stack(r: Runner, config: Path) -> dict[str, float]:
    name = f"bench{secrets.token_hex(3)}"
    ns = f"envci-{name}"
    base = [*r.envci]
    flags = ["-c", str(config), "--env", name]
    try:
        with Memory(interval=0.1) as mem:
            prov = r.run([*base, "provision", *flags])
            wait = r.run([*base, "wait-ready", *flags, "--timeout", TIMEOUT])
            down = r.run([*base, "teardown", *flags])
        if r.ns_exists(ns):
            raise RuntimeError(f"{ns} still exists after envci teardown")
    except BaseException:
        r.drop(ns)
        raise
    stamps = [core.first_stamp(d.stderr) for d in (prov, wait, down)]
    return {
        "wall": prov.wall + wait.wall,
        "cpu": prov.cpu + wait.cpu,
        "teardown_wall": down.wall,
        "teardown_cpu": down.cpu,
        "overhead": sum(s for s in stamps if s is not None),
        "requests": float(core.count_requests(prov.stderr) + core.count_requests(wait.stderr)),
        "teardown_requests": float(core.count_requests(down.stderr)),
        "peak_rss_mb": mem.mb("process_kb") or 0.0,
    }


def baseline_stack(r: Runner, config: Path) -> dict[str, float]:
    """What a hand-written script does: each component in dependency order, waiting for it before the next."""
    spec = yaml.safe_load(config.read_text())
    comps = {c["name"]: c for c in spec["components"]}
    ns = f"benchbase-{secrets.token_hex(3)}"
    steps: list[Done] = []
    releases: list[str] = []
    try:
        steps.append(r.run(["kubectl", "create", "namespace", ns]))
        for name in core.dependency_order(spec["components"]):
            c = comps[name]
            if "helm" in c:
                chart = (config.parent / c["helm"]["chart"]).resolve()
                steps.append(r.run(["helm", "install", name, str(chart), "-n", ns, "--wait", "--timeout", TIMEOUT]))
                releases.append(name)
            else:
                files = [config.parent / f for f in c["manifests"]]
                steps.append(r.run(["kubectl", "apply", "-n", ns, *(a for f in files for a in ("-f", str(f)))]))
                for f in files:
                    for target in core.rollout_targets(yaml.safe_load_all(f.read_text())):
                        steps.append(r.run(["kubectl", "rollout", "status", "-n", ns, target, f"--timeout={TIMEOUT}"]))
        down = [r.run(["helm", "uninstall", rel, "-n", ns, "--wait"]) for rel in reversed(releases)]
        down.append(r.run(["kubectl", "delete", "namespace", ns, "--wait", "--timeout=5m"]))
    except BaseException:
        r.drop(ns)
        raise
    return {
        "wall": sum(d.wall for d in steps),
        "cpu": sum(d.cpu for d in steps),
        "teardown_wall": sum(d.wall for d in down),
        "teardown_cpu": sum(d.cpu for d in down),
    }


def stack_case(r: Runner, name: str, runs: int, nodes: str) -> dict[str, Any]:
    config = STACKS[name]
    samples: dict[str, dict[str, list[float]]] = {"envci": {}, "baseline": {}}
    fns = {"envci": envci_stack, "baseline": baseline_stack}
    for i, order in enumerate(core.alternating_order(runs)):
        for side in order:
            before = r.calls()
            got = fns[side](r, config)
            after = r.calls()
            got |= {f"{tool}_calls": float(after[tool] - before[tool]) for tool in r.COUNTED}
            extra = f", {got['requests']:.0f}+{got['teardown_requests']:.0f} API requests, {got['peak_rss_mb']:.0f} MB" if side == "envci" else ""
            log(f"{name} run {i + 1}/{runs} {side}: ready {got['wall']:.2f}s, cpu {got['cpu']:.2f}s, teardown {got['teardown_wall']:.2f}s{extra}")
            for k, v in got.items():
                samples[side].setdefault(k, []).append(v)
    return core.stack_result(samples, nodes=nodes)


# --- scale, janitor, start-up -----------------------------------------------------------------


def scale_case(r: Runner, n: int, commands: str = "one") -> dict[str, Any]:
    """n demo environments, provisioned and waited for all at once; per-environment time until ready,
    API requests (envci's own, and the API server's count of all clients') and envci's memory.
    `commands`: "one" runs `envci provision --wait` per environment, "two" `envci provision` then
    `envci wait-ready` (a second start-up of envci for each)."""
    names = [f"benchs{secrets.token_hex(2)}{i}" for i in range(n)]
    config = str(STACKS["demo"])
    requests = [0] * n

    def one(i: int) -> float:
        flags = ["-c", config, "--env", names[i]]
        if commands == "one":
            done = [r.run([*r.envci, "provision", "--wait", "--timeout", "10m", *flags])]
        else:
            done = [r.run([*r.envci, "provision", *flags]), r.run([*r.envci, "wait-ready", *flags, "--timeout", "10m"])]
        requests[i] = sum(core.count_requests(d.stderr) for d in done)
        return time.perf_counter() - start

    served0 = r.api_requests()
    start = time.perf_counter()
    c0 = child_cpu()
    try:
        with Memory(interval=0.2) as mem, ThreadPoolExecutor(max_workers=n) as pool:
            ready = list(pool.map(one, range(n)))
        all_ready = time.perf_counter() - start
        cpu = child_cpu() - c0
        served = core.delta(served0, r.api_requests())
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=min(n, 10)) as pool:
            list(pool.map(lambda nm: r.run([*r.envci, "teardown", "-c", config, "--env", nm]), names))
        teardown = time.perf_counter() - t0
    finally:
        for nm in names:
            if r.ns_exists(f"envci-{nm}"):
                r.drop(f"envci-{nm}")
    return {
        "nodes": "simulated",
        "environments": n,
        "commands": "envci provision --wait" if commands == "one" else "envci provision; envci wait-ready",
        "all_ready_s": all_ready,
        "p50_ready_s": core.percentile(ready, 50),
        "p95_ready_s": core.percentile(ready, 95),
        "cpu_s": cpu,
        "teardown_s": teardown,
        "envci_requests": sum(requests),
        "envci_requests_per_env": core.per_env(sum(requests), n),
        "cluster_requests": served,
        "cluster_requests_per_env": core.per_env(served, n),
        "peak_rss_total_mb": mem.mb("envci_kb"),
        "peak_rss_total_with_helm_mb": mem.mb("total_kb"),
        "peak_rss_process_mb": mem.mb("process_kb"),
        "peak_envci_processes": mem.peak.get("processes"),
        "memory_samples": mem.samples,
    }


def janitor_case(r: Runner, m: int) -> dict[str, Any]:
    """m environments (no components) whose TTL has passed, then one timed `envci reap` of them."""
    app = f"benchreap{secrets.token_hex(2)}"
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "envci.yaml"
        config.write_text(yaml.safe_dump({"name": app, "ttl": "1s", "components": []}))
        names = [f"{app}-{i}" for i in range(m)]
        try:
            with ThreadPoolExecutor(max_workers=4) as pool:
                list(pool.map(lambda nm: r.run([*r.envci, "provision", "-c", str(config), "--env", nm]), names))
            time.sleep(2)
            done = r.run([*r.envci, "reap", "--app", app, "-o", "json"])
            result = json.loads(done.stdout)
        finally:
            for nm in names:
                if r.ns_exists(f"envci-{nm}"):
                    r.drop(f"envci-{nm}")
    reaped = (result.get("counts") or {}).get("reaped", result.get("reaped"))
    requests = core.count_requests(done.stderr)
    return {
        "nodes": "simulated",
        "environments": m,
        "reaped": reaped if isinstance(reaped, int) else len(reaped or []),
        "reap_s": done.wall,
        "cpu_s": done.cpu,
        "per_environment_s": done.wall / m,
        "envci_requests": requests,
        "envci_requests_per_env": core.per_env(requests, m),
    }


def startup_cases(r: Runner, runs: int) -> dict[str, Any]:
    demo = str(STACKS["demo"])
    commands = {
        "startup-help": ["--help"],
        "startup-validate": ["validate", "-c", demo, "--env", "benchstartup"],
        "startup-status": ["status", "--env", f"benchnone{secrets.token_hex(2)}"],
    }
    reference = [sys.executable, "-c", "pass"]
    out: dict[str, Any] = {}
    for case, args in commands.items():
        walls, cpus, refs = [], [], []
        for order in core.alternating_order(runs):
            for side in order:
                if side == "envci":
                    d = r.run([*r.envci, *args], check=False, trace=False)
                    walls.append(d.wall)
                    cpus.append(d.cpu)
                else:
                    refs.append(r.run(reference).wall)
        s = core.summary(walls)
        out[case] = {
            "command": "envci " + " ".join(a if not a.endswith(".yaml") else Path(a).name for a in args),
            "runs": runs,
            "envci_wall_s": s["median"],
            "wall_min_s": s["min"],
            "wall_max_s": s["max"],
            "envci_cpu_s": core.summary(cpus)["median"],
            "baseline_wall_s": core.summary(refs)["median"],
        }
    # Where a command that talks to the cluster spends its start-up: the largest imports.
    p = subprocess.run([sys.executable, "-X", "importtime", *r.envci[1:], *commands["startup-status"]], env=r.plain_env, capture_output=True, text=True)
    out["startup-status"]["import_top_ms"] = dict(core.import_costs(p.stderr))
    return out


# --- main -------------------------------------------------------------------------------------


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="nox -s bench --", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a few minutes: 2 runs, scale 10, janitor 20")
    ap.add_argument("--runs", type=int, default=None, help="runs per stack and side (default 5; --quick 2)")
    ap.add_argument("--nodes", choices=["simulated", "real"], default="simulated", help="the nodes the stacks run on (scale and janitor always simulated)")
    ap.add_argument("--scale", type=int, nargs="*", default=None, help="environment counts (default 10 50 100; --quick 10)")
    ap.add_argument("--scale-commands", choices=["one", "two"], default="one",
                    help="scale: `envci provision --wait` (one), or `envci provision` then `envci wait-ready` (two)")
    ap.add_argument("--reap", type=int, default=None, help="expired environments for the janitor (default 200; --quick 20)")
    ap.add_argument("--cases", nargs="*", default=["stacks", "scale", "janitor", "startup"], choices=["stacks", "scale", "janitor", "startup"])
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    a = ap.parse_args(argv)
    a.runs = a.runs or (2 if a.quick else 5)
    a.scale = a.scale if a.scale is not None else ([10] if a.quick else [10, 50, 100])
    a.reap = a.reap or (20 if a.quick else 200)
    return a


def compile_envci() -> None:
    """envci's modules as bytecode, as pip leaves them when it installs a wheel: an editable checkout
    under PYTHONDONTWRITEBYTECODE (CI images often set it) would otherwise compile every module on
    every command, and the bench would time the compiler."""
    import compileall

    import envci

    compileall.compile_dir(str(Path(envci.__file__).parent), quiet=1)


def main(argv: Sequence[str] | None = None) -> int:
    a = parse(argv)
    results: dict[str, Any] = {}
    compile_envci()
    kube, bin_dir = cluster(a.nodes)
    r = Runner(kube, bin_dir)
    if "stacks" in a.cases:
        for name in STACKS:
            results[name] = stack_case(r, name, a.runs, a.nodes)
    sim = r if a.nodes == "simulated" else Runner(*cluster("simulated"))
    if "scale" in a.cases:
        for n in a.scale:
            log(f"scale: {n} environments at once")
            results[f"scale-{n}"] = scale_case(sim, n, a.scale_commands)
    if "janitor" in a.cases:
        log(f"janitor: reap of {a.reap} expired environments")
        results["janitor"] = janitor_case(sim, a.reap)
    if "startup" in a.cases:
        results.update(startup_cases(sim, max(a.runs, 5)))
    print(core.markdown(results))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        log(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
