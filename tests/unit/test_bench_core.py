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
        "scale-10": {"environments": 10, "commands": "envci provision --wait", "all_ready_s": 9.0, "p50_ready_s": 5.0, "p95_ready_s": 8.0, "cpu_s": 20.0, "teardown_s": 7.0},
        "janitor": {"environments": 20, "reap_s": 4.0, "cpu_s": 1.0, "per_environment_s": 0.2},
        "startup-help": {"command": "envci --help", "runs": 5, "envci_wall_s": 0.1, "wall_min_s": 0.1, "wall_max_s": 0.2, "envci_cpu_s": 0.1, "baseline_wall_s": 0.03},
    }
    md = core.markdown(results)
    assert "| demo | real | 1 | 2.00s (2.00–2.00) | 1.00s (1.00–1.00) | 2.00× |" in md
    assert "| scale-10 | `envci provision --wait` | 10 | 9.00s | 5.00s | 8.00s |" in md
    assert "| janitor | 20 | 4.00s |" in md
    assert "| startup-help | `envci --help` | 5 |" in md
    assert "| – |" in md  # the missing teardown numbers


TRACE = (
    "envci: http GET /api/v1/namespaces/envci-x -> 404 in 3 ms\n"
    "[   0.4s] provisioning environment x\n"
    "envci: http POST /api/v1/namespaces -> 201 in 12 ms\n"
    "envci: http GET /apis/apps/v1/namespaces/envci-x/deployments?watch=true&resourceVersion=5 -> 200 in 1 ms\n"
    "envci: http DELETE /api/v1/namespaces/envci-x -> no answer in 5000 ms\n"
)


def test_count_requests_counts_the_trace_lines() -> None:
    assert core.count_requests(TRACE) == 4
    assert core.count_requests("[   0.4s] provisioning environment x\nerror: namespace is gone\n") == 0
    # A thread's trace line landing between another's progress text and its newline still counts once.
    split = "[   0.4s] installing apienvci: http GET /api/v1/pods -> 200 in 2 ms\n\n[   0.9s] ready\n"
    assert core.count_requests(split) == 1


def test_trace_does_not_disturb_first_stamp_or_errors() -> None:
    assert core.first_stamp(TRACE) == 0.4
    assert core.first_stamp("envci: http GET /version -> 200 in 2 ms[   0.7s] tearing down\n\n") == 0.7
    assert core.without_requests(TRACE) == "[   0.4s] provisioning environment x\n"


METRICS = """\
# HELP apiserver_request_total [STABLE] Counter of apiserver requests broken out for each verb.
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="namespaces",scope="resource",subresource="",verb="GET",version="v1"} 12
apiserver_request_total{code="201",component="apiserver",dry_run="",group="apps",resource="deployments",scope="resource",subresource="",verb="POST",version="v1"} 3.5e+01
apiserver_request_total{code="0",component="",dry_run="",group="",resource="",scope="",subresource="/healthz",verb="GET",version="",weird="a}b \\" c"} 1 1700000000000
apiserver_request_total_extra{code="200"} 1000
apiserver_request_duration_seconds_count{verb="GET"} 99
"""


def test_metric_total_sums_every_label_set_of_the_counter() -> None:
    assert core.metric_total(METRICS) == 48.0
    assert core.metric_total(METRICS, "apiserver_request_duration_seconds_count") == 99.0
    assert core.metric_total("# nothing here\n") is None


def test_per_env_and_delta_refuse_what_cannot_be_divided() -> None:
    assert core.per_env(250, 10) == 25.0
    assert core.per_env(None, 10) is None
    assert core.per_env(-3, 10) is None  # the API server restarted: its counter went back
    assert core.per_env(5, 0) is None
    assert core.delta(100.0, 160.0) == 60.0
    assert core.delta(None, 160.0) is None


def test_proc_parsing() -> None:
    assert core.stat_ppid("4242 (python3) S 17 4242 17 0 -1 4194560 ...") == 17
    assert core.stat_ppid("99 (a) b (c)) R 5 99 5 0") == 5
    status = "Name:\tpython3\nVmPeak:\t  300000 kB\nVmHWM:\t   90112 kB\nVmRSS:\t   81920 kB\n"
    assert core.status_kb(status, "VmRSS") == 81920
    assert core.status_kb(status, "VmHWM") == 90112
    assert core.status_kb("Name:\tzombie\nState:\tZ (zombie)\n", "VmRSS") == 0
    assert core.mb(2048) == 2.0 and core.mb(None) is None


def test_descendants_follow_the_tree() -> None:
    ppids = {1: 0, 10: 1, 11: 10, 12: 10, 13: 12, 20: 1, 21: 20}
    assert core.descendants(ppids, 10) == {11, 12, 13}
    assert core.descendants(ppids, 13) == set()


def test_rss_sample_sums_envci_processes_and_their_helm() -> None:
    procs = {
        11: core.Proc(10, "/usr/bin/python3 -m envci.cli provision -c demo.yaml", 80_000, 90_000),
        12: core.Proc(10, "/usr/bin/python3 -m envci.cli wait-ready -c demo.yaml", 60_000, 70_000),
        13: core.Proc(11, "/opt/bin/helm upgrade --install api", 50_000, 50_000),
        14: core.Proc(10, "/opt/bin/kubectl get namespace x", 40_000, 40_000),  # the bench's own check
    }
    s = core.rss_sample(procs)
    assert s == {"envci_kb": 140_000, "total_kb": 190_000, "process_kb": 90_000, "processes": 2}
    assert core.rss_sample({}) == {"envci_kb": 0, "total_kb": 0, "process_kb": 0, "processes": 0}
    assert core.peaks([s, {"envci_kb": 150_000, "total_kb": 100_000, "process_kb": 10, "processes": 3}]) == {
        "envci_kb": 150_000, "total_kb": 190_000, "process_kb": 90_000, "processes": 3,
    }


def test_requests_and_memory_reach_the_json_and_the_tables() -> None:
    samples = {"envci": {"wall": [1.0, 1.2], "requests": [40.0, 44.0], "teardown_requests": [9.0, 9.0], "peak_rss_mb": [70.0, 74.0]}}
    r = core.stack_result(samples, nodes="simulated")
    assert (r["envci_requests"], r["envci_teardown_requests"], r["envci_peak_rss_mb"]) == (42.0, 9.0, 72.0)
    assert "| 42; 9 | 72 MB |" in core.markdown({"demo": r})
    scale = {
        "environments": 10, "all_ready_s": 9.0, "p50_ready_s": 5.0, "p95_ready_s": 8.0, "cpu_s": 20.0, "teardown_s": 7.0,
        "envci_requests_per_env": 41.3, "cluster_requests_per_env": 60.0,
        "peak_rss_total_mb": 700.0, "peak_rss_total_with_helm_mb": 800.0, "peak_rss_process_mb": 75.5,
    }
    assert "| 7.00s | 41.3 | 60.0 | 700 MB (800 MB) | 76 MB |" in core.markdown({"scale-10": scale})
    janitor = {"environments": 20, "reap_s": 4.0, "cpu_s": 1.0, "per_environment_s": 0.2, "envci_requests": 130, "envci_requests_per_env": 6.5}
    assert "| 0.20s | 130 (6.5) |" in core.markdown({"janitor": janitor})
