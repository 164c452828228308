"""The benchmark's pure part: statistics, run order, the baseline's install order, parsing and formatting.

No subprocess, clock or cluster here, so every function is unit-tested (tests/unit/test_bench_core.py).
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

SIDES = ("envci", "baseline")


def alternating_order(runs: int) -> list[tuple[str, str]]:
    """Which side goes first in each run: envci first in even runs, the baseline first in odd ones.

    Alternating cancels what running second brings (a warm API server, cached images, a node still
    cleaning up the previous namespace) instead of giving it always to the same side.
    """
    return [SIDES if i % 2 == 0 else SIDES[::-1] for i in range(runs)]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between the closest ranks (as numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is not within 0..100")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summary(values: Sequence[float]) -> dict[str, float | int]:
    """Median and spread of one measure: min, max, and the spread (max - min) relative to the median."""
    if not values:
        raise ValueError("summary of no values")
    med = statistics.median(values)
    lo, hi = min(values), max(values)
    return {
        "median": med,
        "min": lo,
        "max": hi,
        "spread_pct": (hi - lo) / med * 100 if med else 0.0,
        "n": len(values),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing or b is zero (no ratio beats a made-up one)."""
    if a is None or b is None or b == 0:
        return None
    return a / b


def stack_result(samples: Mapping[str, Mapping[str, Sequence[float]]], *, nodes: str) -> dict[str, Any]:
    """One stack case's JSON object from its samples: `samples[side][measure]` lists one value per run.

    Measures: `wall` and `cpu` (from the first command to every workload ready), `teardown_wall`
    and `teardown_cpu`; for envci also `overhead` (its own start-up time, see `first_stamp`),
    `requests` and `teardown_requests` (API requests, see `count_requests`) and `peak_rss_mb`
    (the largest resident set of one envci process, see `rss_sample`).
    The top-level numbers are medians; `detail` keeps each measure's summary.
    """
    med = {side: {m: statistics.median(v) for m, v in measures.items() if v} for side, measures in samples.items()}
    e, b = med.get("envci", {}), med.get("baseline", {})
    runs = min((len(v) for measures in samples.values() for v in measures.values()), default=0)
    out: dict[str, Any] = {
        "nodes": nodes,
        "runs": runs,
        "envci_wall_s": e.get("wall"),
        "baseline_wall_s": b.get("wall"),
        "ratio_wall": ratio(e.get("wall"), b.get("wall")),
        "envci_cpu_s": e.get("cpu"),
        "baseline_cpu_s": b.get("cpu"),
        "ratio_cpu": ratio(e.get("cpu"), b.get("cpu")),
        "envci_teardown_s": e.get("teardown_wall"),
        "baseline_teardown_s": b.get("teardown_wall"),
        "ratio_teardown": ratio(e.get("teardown_wall"), b.get("teardown_wall")),
        "envci_overhead_s": e.get("overhead"),
        "envci_requests": e.get("requests"),
        "envci_teardown_requests": e.get("teardown_requests"),
        "envci_peak_rss_mb": e.get("peak_rss_mb"),
        "envci_processes": {t: e.get(f"{t}_calls") for t in ("helm", "kubectl") if f"{t}_calls" in e},
        "baseline_processes": {t: b.get(f"{t}_calls") for t in ("helm", "kubectl") if f"{t}_calls" in b},
        "detail": {side: {m: summary(v) for m, v in measures.items() if v} for side, measures in samples.items()},
    }
    return out


def dependency_order(components: Iterable[Mapping[str, Any]]) -> list[str]:
    """Component names in an order where each comes after everything in its `depends_on`, one at a time.

    The baseline installs this way, as a hand-written script does; ties keep the file's order.
    Raises ValueError on a cycle or an unknown dependency.
    """
    comps = list(components)
    names = [c["name"] for c in comps]
    deps = {c["name"]: list(c.get("depends_on") or []) for c in comps}
    for name, ds in deps.items():
        for d in ds:
            if d not in deps:
                raise ValueError(f"{name} depends on {d}, which is not a component")
    done: list[str] = []
    while len(done) < len(names):
        ready = [n for n in names if n not in done and all(d in done for d in deps[n])]
        if not ready:
            raise ValueError(f"dependency cycle among {sorted(set(names) - set(done))}")
        done.append(ready[0])
    return done


ROLLOUT_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


def rollout_targets(docs: Iterable[Mapping[str, Any] | None]) -> list[str]:
    """`kind/name` of every object in parsed manifests that `kubectl rollout status` can wait for."""
    return [f"{d['kind'].lower()}/{d['metadata']['name']}" for d in docs if d and d.get("kind") in ROLLOUT_KINDS]


_STAMP = re.compile(r"^\[\s*(\d+(?:\.\d+)?)s\]", re.MULTILINE)

_HTTP = re.compile(r"envci: http [A-Z]+ \S* -> .*? in \d+ ms\n?")
"""One request in envci's `ENVCI_DEBUG=http` trace (`envci: http GET /api/v1/namespaces/x -> 200 in 3 ms`).

Matched anywhere, not only at a line's start: threads print the trace and the progress lines, and a
print's text and its newline are two writes, so another thread's line can land between them."""


def count_requests(stderr: str) -> int:
    """The API requests an envci command sent, from its stderr under `ENVCI_DEBUG=http`."""
    return len(_HTTP.findall(stderr))


def without_requests(stderr: str) -> str:
    """stderr without the request trace: progress lines and errors only."""
    return _HTTP.sub("", stderr)


def first_stamp(stderr: str) -> float | None:
    """Seconds of envci's first progress line (`[   0.8s] provisioning ...`): the time a command spends
    starting (interpreter, imports, config, connecting) before it does any work on the cluster.
    The request trace is skipped, also where it split a progress line."""
    m = _STAMP.search(without_requests(stderr))
    return float(m.group(1)) if m else None


_SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?\s+(?P<value>\S+)(?:\s+-?\d+)?\s*$')


def metric_total(metrics: str, name: str = "apiserver_request_total") -> float | None:
    """The sum of a counter's samples over all label sets in Prometheus text (`kubectl get --raw /metrics`),
    or None when the text has no sample of it.

    For `apiserver_request_total`: every request the API server has completed since it started, from
    any client (a watch counts when it ends)."""
    total, found = 0.0, False
    for line in metrics.splitlines():
        if not line.startswith(name):
            continue
        m = _SAMPLE.match(line)
        if m and m.group("name") == name:
            total += float(m.group("value"))
            found = True
    return total if found else None


def delta(before: float | None, after: float | None) -> float | None:
    """after - before, or None when either is missing."""
    return None if before is None or after is None else after - before


def per_env(total: float | None, n: int) -> float | None:
    """total / n, or None for a missing total, a counter that went back (a restarted API server) or no environment."""
    if total is None or total < 0 or n <= 0:
        return None
    return total / n


# --- memory: /proc ------------------------------------------------------------------------------


class Proc(NamedTuple):
    """One process as /proc shows it: parent, command line (NULs as spaces), resident set and its peak (kB)."""

    ppid: int
    cmdline: str
    rss_kb: int
    hwm_kb: int


def stat_ppid(stat: str) -> int:
    """The parent's pid from /proc/PID/stat (`pid (comm) state ppid ...`; comm may hold spaces and parentheses)."""
    return int(stat[stat.rindex(")") + 1:].split()[1])


def status_kb(status: str, field: str) -> int:
    """A `kB` field of /proc/PID/status (`VmRSS:   81234 kB`); 0 where it is missing (a zombie has none)."""
    for line in status.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def descendants(ppids: Mapping[int, int], root: int) -> set[int]:
    """Every process below root (children, their children, ...), from a pid → parent pid map."""
    children: dict[int, list[int]] = {}
    for pid, ppid in ppids.items():
        children.setdefault(ppid, []).append(pid)
    out: set[int] = set()
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if pid not in out:
            out.add(pid)
            todo.extend(children.get(pid, []))
    return out


ENVCI_MARK = "envci.cli"


def rss_sample(procs: Mapping[int, Proc], mark: str = ENVCI_MARK) -> dict[str, int]:
    """Memory of the envci processes in one look at /proc: `procs` are the bench's descendants.

    An envci process is one whose command line holds `mark`. `envci_kb` sums their resident sets,
    `total_kb` adds every process below them (the helm processes they run), `process_kb` is the
    largest peak (VmHWM) of a single envci process, `processes` how many there were.
    """
    envci = {pid for pid, p in procs.items() if mark in p.cmdline}

    def under_envci(pid: int) -> bool:
        seen: set[int] = set()
        while pid in procs and pid not in seen:
            seen.add(pid)
            if pid in envci:
                return True
            pid = procs[pid].ppid
        return False

    return {
        "envci_kb": sum(procs[pid].rss_kb for pid in envci),
        "total_kb": sum(p.rss_kb for pid, p in procs.items() if under_envci(pid)),
        "process_kb": max((procs[pid].hwm_kb for pid in envci), default=0),
        "processes": len(envci),
    }


def peaks(samples: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """The largest value of each measure over samples (`rss_sample`'s, or earlier peaks)."""
    out: dict[str, int] = {}
    for s in samples:
        for k, v in s.items():
            out[k] = max(out.get(k, 0), v)
    return out


def mb(kb: float | None) -> float | None:
    """kB (as /proc counts) to MB (MiB), or None."""
    return None if kb is None else kb / 1024


def import_costs(importtime_stderr: str, top: int = 8) -> list[tuple[str, float]]:
    """The `top` largest cumulative import times (ms) from `python -X importtime`, top-level packages only
    (a package's cumulative time includes its submodules, so listing those too would count twice)."""
    costs: dict[str, float] = {}
    for line in importtime_stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = [p.strip() for p in line[len("import time:"):].split("|")]
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        name = parts[2]
        if name.startswith(" ") or "." in name:
            continue
        costs[name] = max(costs.get(name, 0.0), int(parts[1]) / 1000)
    return sorted(costs.items(), key=lambda kv: -kv[1])[:top]


def _fmt(v: Any, unit: str = "s") -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.2f}{unit}" if unit else f"{v:.2f}"
    return str(v)


def _num(v: float | None, unit: str = "", digits: int = 0) -> str:
    return "–" if v is None else f"{v:.{digits}f}{unit}"


def _spread(detail: Mapping[str, Any], side: str, measure: str) -> str:
    s = (detail.get(side) or {}).get(measure)
    return f"{s['min']:.2f}–{s['max']:.2f}" if s else "–"


def _procs(p: Mapping[str, float | None] | None) -> str:
    if not p:
        return "–"
    return " + ".join(f"{v:.0f} {t}" for t, v in p.items() if v is not None)


def markdown(results: Mapping[str, Mapping[str, Any]]) -> str:
    """The results as Markdown tables: stacks (envci beside the baseline), scale, janitor, start-up."""
    lines: list[str] = []
    stacks = {k: v for k, v in results.items() if "ratio_wall" in v}
    if stacks:
        lines += [
            "| case | nodes | runs | envci ready | baseline ready | ratio wall | envci CPU | baseline CPU | ratio CPU | envci teardown | baseline teardown | envci start-up | helm+kubectl processes (envci; baseline) | envci API requests (ready; teardown) | envci peak RSS |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name, r in stacks.items():
            d = r.get("detail", {})
            lines.append(
                f"| {name} | {r['nodes']} | {r['runs']} "
                f"| {_fmt(r['envci_wall_s'])} ({_spread(d, 'envci', 'wall')}) | {_fmt(r['baseline_wall_s'])} ({_spread(d, 'baseline', 'wall')}) "
                f"| {_fmt(r['ratio_wall'], '×')} | {_fmt(r['envci_cpu_s'])} | {_fmt(r['baseline_cpu_s'])} | {_fmt(r['ratio_cpu'], '×')} "
                f"| {_fmt(r['envci_teardown_s'])} | {_fmt(r['baseline_teardown_s'])} | {_fmt(r['envci_overhead_s'])} "
                f"| {_procs(r.get('envci_processes'))}; {_procs(r.get('baseline_processes'))} "
                f"| {_num(r.get('envci_requests'))}; {_num(r.get('envci_teardown_requests'))} | {_num(r.get('envci_peak_rss_mb'), ' MB')} |"
            )
        lines.append("")
    scale = {k: v for k, v in results.items() if "p95_ready_s" in v}
    if scale:
        lines += [
            "| case | commands | environments | all ready | p50 ready | p95 ready | CPU | teardown of all "
            "| envci API requests per env | all clients' API requests per env | peak RSS, all envci at once (+ helm) | peak RSS, one envci |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name, r in scale.items():
            lines.append(
                f"| {name} | `{r.get('commands', '')}` | {r['environments']} | {_fmt(r['all_ready_s'])} | {_fmt(r['p50_ready_s'])} | {_fmt(r['p95_ready_s'])} "
                f"| {_fmt(r['cpu_s'])} | {_fmt(r['teardown_s'])} "
                f"| {_num(r.get('envci_requests_per_env'), digits=1)} | {_num(r.get('cluster_requests_per_env'), digits=1)} "
                f"| {_num(r.get('peak_rss_total_mb'), ' MB')} ({_num(r.get('peak_rss_total_with_helm_mb'), ' MB')}) | {_num(r.get('peak_rss_process_mb'), ' MB')} |"
            )
        lines.append("")
    reap = {k: v for k, v in results.items() if "reap_s" in v}
    if reap:
        lines += ["| case | expired environments | envci reap | CPU | per environment | envci API requests (per env) |", "| --- | --- | --- | --- | --- | --- |"]
        for name, r in reap.items():
            lines.append(
                f"| {name} | {r['environments']} | {_fmt(r['reap_s'])} | {_fmt(r['cpu_s'])} | {_fmt(r['per_environment_s'])} "
                f"| {_num(r.get('envci_requests'))} ({_num(r.get('envci_requests_per_env'), digits=1)}) |"
            )
        lines.append("")
    startup = {k: v for k, v in results.items() if "command" in v}
    if startup:
        lines += ["| case | command | runs | wall (min–max) | CPU | `python -c pass` |", "| --- | --- | --- | --- | --- | --- |"]
        for name, r in startup.items():
            lines.append(
                f"| {name} | `{r['command']}` | {r['runs']} | {_fmt(r['envci_wall_s'])} ({r['wall_min_s']:.2f}–{r['wall_max_s']:.2f}) "
                f"| {_fmt(r['envci_cpu_s'])} | {_fmt(r['baseline_wall_s'])} |"
            )
        lines.append("")
    return "\n".join(lines)
