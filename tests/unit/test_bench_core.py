"""The benchmark harness's pure functions: statistics, run order, install order, parsing, formatting."""

from __future__ import annotations

import pytest

from bench import core


def test_alternating_order_swaps_sides_every_run() -> None:
    assert core.alternating_order(3) == [("envci", "baseline"), ("baseline", "envci"), ("envci", "baseline")]
    assert core.alternating_order(0) == []


def test_percentile_interpolates_between_ranks() -> None:
    xs = [4.0, 1.0, 3.0, 2.0]
    assert core.percentile(xs, 0) == 1.0
    assert core.percentile(xs, 100) == 4.0
    assert core.percentile(xs, 50) == 2.5
    assert core.percentile(list(range(1, 11)), 95) == pytest.approx(9.55)
    assert core.percentile([7.0], 95) == 7.0
    with pytest.raises(ValueError):
        core.percentile([], 50)
    with pytest.raises(ValueError):
        core.percentile([1.0], 101)


def test_summary_gives_median_and_spread() -> None:
    s = core.summary([2.0, 4.0, 3.0])
    assert s == {"median": 3.0, "min": 2.0, "max": 4.0, "spread_pct": pytest.approx(200 / 3), "n": 3}
    assert core.summary([0.0])["spread_pct"] == 0.0
    with pytest.raises(ValueError):
        core.summary([])


def test_ratio_refuses_missing_or_zero() -> None:
    assert core.ratio(3.0, 2.0) == 1.5
    assert core.ratio(None, 2.0) is None
    assert core.ratio(1.0, 0) is None


def test_stack_result_holds_medians_ratios_and_runs() -> None:
    samples = {
        "envci": {"wall": [10.0, 12.0, 11.0], "cpu": [2.0, 2.0, 2.0], "teardown_wall": [6.0, 6.0, 6.0], "overhead": [1.0, 1.0, 1.0]},
        "baseline": {"wall": [5.0, 5.0, 5.5], "cpu": [1.0, 0.5, 0.5], "teardown_wall": [3.0, 3.0, 3.0]},
    }
    r = core.stack_result(samples, nodes="simulated")
    assert r["runs"] == 3
    assert r["envci_wall_s"] == 11.0 and r["baseline_wall_s"] == 5.0
    assert r["ratio_wall"] == pytest.approx(2.2)
    assert r["envci_cpu_s"] == 2.0 and r["baseline_cpu_s"] == 0.5 and r["ratio_cpu"] == 4.0
    assert r["ratio_teardown"] == 2.0
    assert r["envci_overhead_s"] == 1.0
    assert r["envci_processes"] == {} and r["baseline_processes"] == {}
    counted = core.stack_result({"envci": {"wall": [1.0], "helm_calls": [3.0, 3.0], "kubectl_calls": [0.0]}}, nodes="real")
    assert counted["envci_processes"] == {"helm": 3.0, "kubectl": 0.0}
    assert "3 helm + 0 kubectl; –" in core.markdown({"demo": counted})
    assert r["detail"]["envci"]["wall"]["min"] == 10.0


def test_dependency_order_puts_dependencies_first_and_keeps_file_order() -> None:
    comps = [
        {"name": "front", "depends_on": ["svc-a", "svc-b"]},
        {"name": "db-a"},
        {"name": "svc-a", "depends_on": ["db-a", "queue"]},
        {"name": "db-b"},
        {"name": "queue"},
        {"name": "svc-b", "depends_on": ["db-b"]},
    ]
    assert core.dependency_order(comps) == ["db-a", "db-b", "queue", "svc-a", "svc-b", "front"]


def test_dependency_order_refuses_cycles_and_unknown_names() -> None:
    with pytest.raises(ValueError, match="cycle"):
        core.dependency_order([{"name": "a", "depends_on": ["b"]}, {"name": "b", "depends_on": ["a"]}])
    with pytest.raises(ValueError, match="not a component"):
        core.dependency_order([{"name": "a", "depends_on": ["x"]}])


def test_rollout_targets_are_the_workloads() -> None:
    docs = [
        {"kind": "Service", "metadata": {"name": "db"}},
        None,
        {"kind": "StatefulSet", "metadata": {"name": "db"}},
        {"kind": "Deployment", "metadata": {"name": "web"}},
    ]
    assert core.rollout_targets(docs) == ["statefulset/db", "deployment/web"]


def test_first_stamp_reads_envcis_first_progress_line() -> None:
    assert core.first_stamp("[   0.8s] provisioning environment x\n[   1.0s] installing db\n") == 0.8
    assert core.first_stamp("[  12.25s] ready\n") == 12.25
    assert core.first_stamp("no stamps\n") is None


def test_import_costs_keeps_top_level_packages_by_cumulative_time() -> None:
    text = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:       100 |        300 |   yaml.reader\n"
        "import time:       200 |      50000 | yaml\n"
        "import time:        10 |     120000 |     kubernetes.client\n"
        "import time:       500 |     150000 | kubernetes\n"
        "import time:        50 |       1000 | json\n"
    )
    assert core.import_costs(text, top=2) == [("kubernetes", 150.0), ("yaml", 50.0)]


def test_markdown_has_a_row_per_case() -> None:
    stack = core.stack_result({"envci": {"wall": [2.0], "cpu": [1.0]}, "baseline": {"wall": [1.0], "cpu": [1.0]}}, nodes="real")
    results = {
        "demo": stack,
        "scale-10": {"environments": 10, "all_ready_s": 9.0, "p50_ready_s": 5.0, "p95_ready_s": 8.0, "cpu_s": 20.0, "teardown_s": 7.0},
        "janitor": {"environments": 20, "reap_s": 4.0, "cpu_s": 1.0, "per_environment_s": 0.2},
        "startup-help": {"command": "envci --help", "runs": 5, "envci_wall_s": 0.1, "wall_min_s": 0.1, "wall_max_s": 0.2, "envci_cpu_s": 0.1, "baseline_wall_s": 0.03},
    }
    md = core.markdown(results)
    assert "| demo | real | 1 | 2.00s (2.00–2.00) | 1.00s (1.00–1.00) | 2.00× |" in md
    assert "| scale-10 | 10 | 9.00s | 5.00s | 8.00s |" in md
    assert "| janitor | 20 | 4.00s |" in md
    assert "| startup-help | `envci --help` | 5 |" in md
    assert "| – |" in md  # the missing teardown numbers
