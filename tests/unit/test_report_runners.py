"""Suite runners without a cluster: a real pytest command, and the pure rules of job and helm-test."""

from __future__ import annotations

import io
import os
import shutil
import time
from pathlib import Path

import pytest
import yaml

from envci.config.loader import load_config
from envci.config.model import CommandSuite, HelmTestSuite, JobSuite, SuiteJob
from envci.errors import ConfigErrors
from envci.identity import CiContext
from envci.kube.jobs import JobResult
from envci.output import Reporter
from envci.report import files, summary
from envci.report.model import RunResult, SuiteResult
from envci.stages.test import groups, runner_environment, select
from envci.testing import command, helm_test, job
from envci.testing.base import SuiteContext

APP = Path(__file__).parent.parent / "data" / "test_stage" / "app"


@pytest.fixture
def app(tmp_path: Path) -> Path:
    dest = tmp_path / "app"
    shutil.copytree(APP, dest)
    return dest


def ctx_for(app: Path, tmp_path: Path) -> SuiteContext:
    cfg = load_config(app / "envci.yaml", CiContext(system="local"), env_override="unit")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    env = runner_environment(cfg.identity.name, cfg.identity.namespace, {"api": "http://api.ns.svc.cluster.local:8080/"}, str(kubeconfig))
    return SuiteContext(cfg, None, Reporter(err=io.StringIO()), env, tmp_path / "report")


def test_pytest_command_with_three_passing_and_one_failing_test(app: Path, tmp_path: Path) -> None:
    ctx = ctx_for(app, tmp_path)
    suite = ctx.cfg.spec.test[0]
    assert isinstance(suite, CommandSuite)
    suite = suite.model_copy(update={"command": [os.sys.executable, *suite.command[1:]]})  # type: ignore[attr-defined]
    res = command.run(suite, ctx)
    assert res.counts.as_tuple() == (4, 3, 1, 0, 0), [c.as_dict() for c in res.cases]
    assert res.outcome == "failed" and res.message == "exit code 1"
    assert res.junit_files == [str(app / "out" / "smoke.xml")]
    failed = next(c for c in res.cases if c.failed)
    assert failed.title == "checks.test_checkout_total" and "checkout total is off by one" in failed.message
    assert "test_checkout_total" in Path(res.log_file).read_text()
    run = RunResult("unit", "envci-tst-unit", suites=[res])
    paths = files.write_reports(run, tmp_path / "report")
    md = Path(paths["summary"]).read_text()
    assert "**4** tests, **3** passed, **1** failed" in md and "checks.test_checkout_total" in md


def test_stale_junit_files_are_ignored_and_a_missing_file_is_an_error(app: Path, tmp_path: Path) -> None:
    ctx = ctx_for(app, tmp_path)
    (app / "out").mkdir()
    old = app / "out" / "old.xml"
    old.write_text('<testsuite><testcase name="from-yesterday"/></testsuite>')
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    suite = CommandSuite(name="quiet", command="echo no tests here", junit="out/*.xml")
    res = command.run(suite, ctx)
    assert [c.status for c in res.cases] == ["error"]
    assert "no JUnit file matched 'out/*.xml' that was written by this run (1 older file(s) ignored" in res.cases[0].message
    assert "no tests here" in res.cases[0].detail


def test_a_command_failing_without_junit_is_one_failed_case_with_its_output_redacted(app: Path, tmp_path: Path) -> None:
    from envci import redact

    redact.register("tok-9f8e7d6c")
    ctx = ctx_for(app, tmp_path)
    res = command.run(CommandSuite(name="lint", command="echo using tok-9f8e7d6c; echo 'bad thing happened' >&2; exit 3"), ctx)
    (case,) = res.cases
    assert case.status == "failed" and case.message == "the command exited with code 3"
    assert "bad thing happened" in case.detail and "tok-9f8e7d6c" not in case.detail and "***" in case.detail
    assert "tok-9f8e7d6c" not in Path(res.log_file).read_text()


def test_a_passing_command_without_junit_is_one_passed_case_and_sees_the_environment(app: Path, tmp_path: Path) -> None:
    ctx = ctx_for(app, tmp_path)
    res = command.run(CommandSuite(name="env", command='test "$ENVCI_URL_API" = http://api.ns.svc.cluster.local:8080/ && test -f "$KUBECONFIG"'), ctx)
    assert [(c.name, c.status) for c in res.cases] == [("command", "passed")]


def test_a_command_that_outlives_its_timeout_is_stopped(app: Path, tmp_path: Path) -> None:
    ctx = ctx_for(app, tmp_path)
    t0 = time.monotonic()
    res = command.run(CommandSuite(name="slow", command="echo started; sleep 30", timeout="1s"), ctx)
    assert time.monotonic() - t0 < 10
    assert res.message == "timed out after 1s" and res.cases[0].status == "failed"
    assert "started" in res.cases[0].detail


def test_a_missing_program_is_an_error_case_with_a_hint(app: Path, tmp_path: Path) -> None:
    res = command.run(CommandSuite(name="x", command=["no-such-program-envci"]), ctx_for(app, tmp_path))
    assert res.cases[0].status == "error" and "cannot start no-such-program-envci" in res.cases[0].message
    assert "PATH" in res.cases[0].detail


def test_nonzero_exit_with_all_green_junit_still_fails() -> None:
    suite = CommandSuite(name="s", command="x", junit="r.xml")
    cases, _, _ = command.results(suite, returncode=2, output="segfault", fresh=[], stale=[], seconds=1, timeout="1m")
    assert cases[0].message.startswith("the command exited with code 2; no JUnit file matched")


# --- job suites --------------------------------------------------------------------------------


def test_job_command_is_wrapped_to_print_junit_between_markers() -> None:
    cmd, args, extra = job.container_command(SuiteJob(image="i", command=["pytest", "-k", "not slow"], junit="/r/*.xml"))
    assert cmd == ["sh", "-c", job.WRAPPER] and args is None
    assert extra == {"ENVCI_TEST_COMMAND": "pytest -k 'not slow'", "ENVCI_JUNIT": "/r/*.xml"}
    assert job.container_command(SuiteJob(image="i", command="make e2e")) == (["sh", "-c", "make e2e"], None, {})
    assert job.container_command(SuiteJob(image="i", args=["--all"])) == (None, ["--all"], {})


def test_job_wrapper_really_prints_the_files_and_keeps_the_exit_code(tmp_path: Path) -> None:
    import subprocess

    (tmp_path / "a.xml").write_text("<testsuite><testcase name='a'/></testsuite>")
    (tmp_path / "b.xml").write_text("<testsuite><testcase name='b'><failure message='no'/></testcase></testsuite>")
    env = {**os.environ, "ENVCI_TEST_COMMAND": "echo running; exit 7", "ENVCI_JUNIT": f"{tmp_path}/*.xml"}
    p = subprocess.run(["sh", "-c", job.WRAPPER], check=False, env=env, capture_output=True, text=True, timeout=10)
    assert p.returncode == 7
    blocks = job.extract_junit(p.stdout)
    assert len(blocks) == 2 and "name='b'" in blocks[1]
    assert job.strip_junit(p.stdout).strip() == "running"


def test_job_manifest_carries_the_facts_but_not_the_runners_kubeconfig() -> None:
    suite = JobSuite(name="E2E tests", job=SuiteJob(image="e2e:1", command=["run"], junit="/r.xml", env={"MODE": "fast"}, labels={"envci.io/simulate": "job-fail"}), timeout="2m")
    obj = job.job_manifest(suite, {"ENVCI_NAME": "n", "KUBECONFIG": "/home/runner/kc"}, env_name="n")
    assert obj["metadata"]["name"] == "envci-test-e2e-tests"
    pod = obj["spec"]["template"]
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["ENVCI_NAME"] == "n" and env["MODE"] == "fast" and env["ENVCI_JUNIT"] == "/r.xml" and "KUBECONFIG" not in env
    assert pod["metadata"]["labels"] == {"envci.io/simulate": "job-fail", "envci.io/test-suite": "e2e-tests"}
    assert obj["spec"]["activeDeadlineSeconds"] == 120 and pod["spec"]["restartPolicy"] == "Never"


JUNIT_LOG = f"""starting e2e
{job.BEGIN}
<testsuite name="e2e"><testcase name="login"/><testcase name="pay"><failure message="402"/></testcase></testsuite>
{job.END}
"""


def _job_result(state: str, reason: str = "") -> JobResult:
    return JobResult("envci-test-e2e", "ns", state, reason, "", pods=["envci-test-e2e-abc"])  # type: ignore[arg-type]


def test_job_results_come_from_the_log_and_a_failed_job_without_junit_explains_itself() -> None:
    suite = JobSuite(name="e2e", job={"image": "i", "command": ["x"], "junit": "/r.xml"})
    cases, msg = job.results(suite, _job_result("failed", "BackoffLimitExceeded"), JUNIT_LOG, "envci-test-e2e-abc")
    assert [(c.name, c.status) for c in cases] == [("login", "passed"), ("pay", "failed")] and msg == "Job failed: BackoffLimitExceeded"
    cases, _ = job.results(suite, _job_result("failed", "DeadlineExceeded"), "hanging...\n", "envci-test-e2e-abc")
    assert cases[0].status == "failed" and "DeadlineExceeded" in cases[0].message and "hanging..." in cases[0].detail
    cases, _ = job.results(suite, _job_result("succeeded", "Complete"), "all fine\n", "envci-test-e2e-abc")
    assert cases[0].status == "error" and "holds no JUnit" in cases[0].message
    no_junit = JobSuite(name="e2e", job=SuiteJob(image="i"))
    cases, _ = job.results(no_junit, _job_result("succeeded", "Complete"), "", "envci-test-e2e-abc")
    assert [(c.name, c.status) for c in cases] == [("job", "passed")]


def test_a_cut_log_with_broken_xml_is_an_error_case() -> None:
    suite = JobSuite(name="e2e", job={"image": "i", "command": ["x"], "junit": "/r.xml"})
    cases, _ = job.results(suite, _job_result("succeeded"), f"{job.BEGIN}\n<testsuite><testcase name='a'>", "p")
    assert cases[0].status == "error" and "not well-formed" in cases[0].message


# --- helm test ---------------------------------------------------------------------------------

HELM_OUT = """NAME: web
LAST DEPLOYED: Mon May  6 10:00:00 2024
NAMESPACE: envci-shop-pr-7
STATUS: deployed
REVISION: 1
TEST SUITE:     web-test-connection
Last Started:   Mon May  6 10:01:00 2024
Last Completed: Mon May  6 10:01:02 2024
Phase:          Succeeded
TEST SUITE:     web-test-db
Last Started:   Mon May  6 10:01:00 2024
Last Completed: Mon May  6 10:01:05 2024
Phase:          Failed

POD LOGS: web-test-db
psql: connection refused
NOTES:
thanks
"""


def test_helm_test_output_gives_a_case_per_hook_with_its_log() -> None:
    suite = HelmTestSuite(name="chart", helm_test="web")
    cases, _ = helm_test.results(suite, "web", 1, HELM_OUT, "Error: 1 error occurred:\n\t* pod web-test-db failed", 7.0)
    assert [(c.name, c.status) for c in cases] == [("web-test-connection", "passed"), ("web-test-db", "failed")]
    assert cases[1].detail == "psql: connection refused"
    cases, _ = helm_test.results(suite, "web", 1, "", "Error: release: not found", 0.2)
    assert cases[0].message == "helm test web exited with code 1" and "not found" in cases[0].detail
    cases, _ = helm_test.results(suite, "web", 0, "NAME: web\nTEST SUITE: None\n", "", 0.2)
    assert cases[0].status == "skipped"


# --- checks and ordering ------------------------------------------------------------------------


def _load_with_suites(tmp_path: Path, suites: list[dict]) -> ConfigErrors:
    spec = yaml.safe_load((APP / "envci.yaml").read_text())
    spec["test"] = suites
    shutil.copytree(APP, tmp_path / "app", dirs_exist_ok=True)
    (tmp_path / "app" / "envci.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(ConfigErrors) as ei:
        load_config(tmp_path / "app" / "envci.yaml", CiContext(system="local"), env_override="u")
    assert all(e.line for e in ei.value.errors), [str(e) for e in ei.value.errors]
    return ei.value


def test_suite_problems_are_reported_with_file_and_line_when_the_file_loads(tmp_path: Path) -> None:
    text = str(_load_with_suites(tmp_path, [{"name": "j", "job": {"command": 5, "junit": "rel/path.xml", "imagee": "x"}}]))
    assert "test[0].job.imagee: unknown key" in text
    assert "test[0].job.image: required field is missing" in text
    assert "test[0].job.command" in text
    assert "test[0].job.junit: 'rel/path.xml' is not an absolute path inside the container" in text
    text = str(_load_with_suites(tmp_path, [
        {"name": "a", "command": "true"},
        {"name": "A", "command": "true"},
        {"name": "h", "helm_test": "api"},
        {"name": "h2", "helm_test": "nope"},
    ]))
    assert "test[1].name: suite name 'A' is used twice (also test[0])" in text
    assert "component 'api' is installed from manifests" in text
    assert "test[3].helm_test: unknown component 'nope'" in text


def test_consecutive_parallel_suites_form_one_group_in_file_order() -> None:
    s = [CommandSuite(name=n, command="x", parallel=p) for n, p in (("a", False), ("b", True), ("c", True), ("d", False), ("e", True))]
    assert [[x.name for x in g] for g in groups(s)] == [["a"], ["b", "c"], ["d"], ["e"]]
    assert [x.name for x in select(s, ["E", "b"])] == ["b", "e"]
    with pytest.raises(Exception, match="no test suite named 'zz'"):
        select(s, ["zz"])


def test_summary_of_a_suite_result_names_its_failure() -> None:
    res = SuiteResult("smoke", "command", [])
    assert "envci tests passed" in summary.render(RunResult("n", "ns", suites=[res]))


def test_a_suite_that_cannot_reach_the_cluster_is_an_error_not_a_test_failure(app: Path, tmp_path: Path) -> None:
    from envci.stages.test import run_suite

    ctx = ctx_for(app, tmp_path)
    res = run_suite(JobSuite(name="e2e", job=SuiteJob(image="i")), ctx)  # no connection: InfrastructureError
    assert res.outcome == "error" and "needs the cluster" in res.error
    assert [c.status for c in res.cases] == ["error"]
    run = RunResult("n", "ns", suites=[SuiteResult("ok", "command", []), res])
    assert run.outcome == "error"
