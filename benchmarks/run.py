"""Benchmarks on the embedded local cluster (or $KUBECONFIG): how fast envci gets a build to ready and back.

Measures, over several rounds: provision of the three-component test app, wait-ready, a no-change
re-provision, teardown, and a reap of many expired environments. Prints a table and writes
benchmarks/results.json. Numbers, never assertions: compare runs with the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from envci import localcluster  # noqa: E402
from envci.config.loader import load_config  # noqa: E402
from envci.identity import CiContext  # noqa: E402
from envci.kube.client import connect  # noqa: E402
from envci.namespace import rfc3339  # noqa: E402
from envci.output import Reporter  # noqa: E402
from envci.stages.provision import provision  # noqa: E402
from envci.stages.reap import reap  # noqa: E402
from envci.stages.teardown import teardown  # noqa: E402
from envci.stages.wait_ready import wait_ready  # noqa: E402

APP = ROOT / "tests" / "data" / "apps" / "shop" / "envci.yaml"


class Quiet(Reporter):
    def progress(self, message: str) -> None:
        pass


def timed(fn):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reap", type=int, default=20, help="environments in the reap benchmark")
    args = ap.parse_args()
    if "KUBECONFIG" not in os.environ:
        os.environ["KUBECONFIG"] = str(localcluster.up())
    os.environ["PATH"] = f"{localcluster.binaries_dir()}{os.pathsep}{os.environ['PATH']}"
    kube = connect()
    rep = Quiet()
    samples: dict[str, list[float]] = {k: [] for k in ("provision", "wait-ready", "re-provision (no change)", "teardown")}
    for _ in range(args.rounds):
        cfg = load_config(APP, CiContext(system="local"), env_override=f"bench-{secrets.token_hex(3)}")
        ns = cfg.identity.namespace

        def waves(names: list[str], cfg=cfg) -> None:  # type: ignore[no-untyped-def]
            wait_ready(cfg, kube, rep, components=names)

        samples["provision"].append(timed(lambda cfg=cfg, waves=waves: provision(cfg, kube, rep, wait_between_waves=waves)))
        samples["wait-ready"].append(timed(lambda cfg=cfg: wait_ready(cfg, kube, rep)))
        samples["re-provision (no change)"].append(timed(lambda cfg=cfg: provision(cfg, kube, rep)))
        samples["teardown"].append(timed(lambda ns=ns: teardown(kube, rep, namespace=ns)))
    tmp = ROOT / ".envci" / "bench"
    tmp.mkdir(parents=True, exist_ok=True)
    app = f"benchreap{secrets.token_hex(2)}"
    (tmp / "envci.yaml").write_text(yaml.safe_dump({"name": app, "components": []}))
    t0 = time.perf_counter()
    for i in range(args.reap):
        cfg = load_config(tmp / "envci.yaml", CiContext(system="local", pr=str(i)))
        provision(cfg, kube, rep)
        kube.patch_merge("v1", "Namespace", cfg.identity.namespace, {"metadata": {"annotations": {"envci.io/expires-at": rfc3339(datetime.now(timezone.utc) - timedelta(minutes=1))}}})
    create = time.perf_counter() - t0
    sweep = timed(lambda: reap(kube, rep, app=app))
    results = {
        "when": rfc3339(datetime.now(timezone.utc)),
        "rounds": args.rounds,
        "seconds": {k: {"median": statistics.median(v), "min": min(v), "max": max(v)} for k, v in samples.items()},
        "reap": {"environments": args.reap, "create_seconds": create, "sweep_seconds": sweep},
    }
    print(f"{'step':28} {'median':>8} {'min':>8} {'max':>8}")
    for k, v in results["seconds"].items():
        print(f"{k:28} {v['median']:8.2f} {v['min']:8.2f} {v['max']:8.2f}")
    print(f"reap of {args.reap} expired environments: {sweep:.2f}s (creating them took {create:.2f}s)")
    (ROOT / "benchmarks" / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
