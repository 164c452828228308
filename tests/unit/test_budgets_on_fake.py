"""Budgets in provision and `envci list`, on the fake adapter: a refusal changes nothing, a
re-provision always fits, reap-oldest-expired tears down only an expired environment, the
cluster's policy is read and the stricter budget applies."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakekube import FakeKube  # tests/ is on sys.path

from envci.cli import main
from envci.config.loader import LoadedConfig, load_config
from envci.errors import BudgetExceededError, ConfigError, EnvciError, ExitCode, InfrastructureError
from envci.identity import CiContext
from envci.namespace import rfc3339
from envci.output import Reporter
from envci.stages.provision import provision
from envci.stages.status import format_list, overview
from envci.stages.teardown import teardown

POLICY_NS = "envci-system"


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ENVCI_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.delenv("ENVCI_POLICY_NAMESPACE", raising=False)
    for var in ("GITHUB_OUTPUT", "GITHUB_ENV"):
        monkeypatch.delenv(var, raising=False)
    yield tmp_path


def write(app: Path, budget: str | None, name: str = "shop") -> Path:
    text = f"name: {name}\nttl: 1h\ncomponents: []\n" + (budget or "")
    path = app / f"{name}.envci.yaml"
    path.write_text(text)
    return path


def cfg_for(path: Path, env: str, *, repo: str = "acme/shop") -> LoadedConfig:
    return load_config(path, CiContext(system="local", repo=repo), env_override=env)


def no_helm() -> Any:
    raise EnvciError("helm is not installed")


class Teardowns:
    """teardown as provision calls it, without Helm; records which namespaces it was asked to remove."""

    def __init__(self) -> None:
        self.namespaces: list[str] = []

    def __call__(self, kube: Any, rep: Reporter, **kw: Any) -> dict[str, Any]:
        self.namespaces.append(kw["namespace"])
        return teardown(kube, rep, helm_factory=no_helm, **kw)


def up(kube: FakeKube, cfg: LoadedConfig, err: io.StringIO | None = None, teardowns: Teardowns | None = None) -> dict[str, Any]:
    out = provision(cfg, kube, Reporter(err=err or io.StringIO()), clock=kube.utcnow, teardown_fn=teardowns or Teardowns())
    kube.sleep(600)  # ten minutes between builds: each environment is older than the next
    return out


def expire(kube: FakeKube, namespace: str) -> None:
    past = rfc3339(kube.utcnow().replace(year=2025))
    kube.patch_merge("v1", "Namespace", namespace, {"metadata": {"annotations": {"envci.io/expires-at": past}}})


def policy(kube: FakeKube, text: str, namespace: str = POLICY_NS) -> None:
    kube.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    kube.add({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "envci-budgets", "namespace": namespace},
              "data": {"budgets.yaml": text}}, namespace)


BUDGET_3 = "budget:\n  max_environments: 3\n"


def test_over_budget_refuses_before_anything_is_created_naming_the_oldest(app: Path) -> None:
    kube = FakeKube()
    path = write(app, BUDGET_3)
    for i in (1, 2, 3):
        up(kube, cfg_for(path, f"shop-pr-{i}"))
    kube.calls.clear()
    with pytest.raises(BudgetExceededError) as caught:
        up(kube, cfg_for(path, "shop-pr-4"))
    e = caught.value
    assert isinstance(e, ConfigError) and e.exit_code == ExitCode.BAD_INPUT
    assert kube.calls == [] and not kube.exists("Namespace", "envci-shop-pr-4")
    assert (e.file, e.line, e.field) == (str(path), 5, "budget.max_environments")
    assert "would be the 4th of app shop, whose budget allows 3 (envci.yaml)" in e.message
    listed = [line.split(" (")[0].strip() for line in e.message.splitlines()[1:]]
    assert listed == ["shop-pr-1", "shop-pr-2", "shop-pr-3"]
    assert "shop-pr-1 (namespace envci-shop-pr-1): 30m old, expires at" in e.message
    assert e.hint and "envci teardown --env shop-pr-1" in e.hint
    assert [b["used"] for b in e.budgets] == [3] and [x["name"] for x in e.budgets[0]["environments"]] == listed


def test_an_environment_at_the_limit_may_always_be_provisioned_again(app: Path) -> None:
    kube = FakeKube()
    path = write(app, BUDGET_3)
    for i in (1, 2, 3):
        up(kube, cfg_for(path, f"shop-pr-{i}"))
    again = up(kube, cfg_for(path, "shop-pr-2"))
    assert again["budgets"] == [{"scope": "app", "key": "shop", "max_environments": 3, "source": "envci.yaml", "used": 3}]


def test_a_namespace_being_deleted_does_not_count(app: Path) -> None:
    kube = FakeKube(linger=100)  # the namespace controller is slow: it stays Terminating
    path = write(app, BUDGET_3)
    for i in (1, 2, 3):
        up(kube, cfg_for(path, f"shop-pr-{i}"))
    kube.delete("v1", "Namespace", "envci-shop-pr-2")
    assert kube.namespace("envci-shop-pr-2") is not None
    up(kube, cfg_for(path, "shop-pr-4"))


def test_reap_oldest_expired_tears_down_the_oldest_expired_one_and_goes_on(app: Path) -> None:
    kube = FakeKube()
    path = write(app, BUDGET_3 + "  when_exceeded: reap-oldest-expired\n")
    for i in (1, 2, 3):
        up(kube, cfg_for(path, f"shop-pr-{i}"))
    expire(kube, "envci-shop-pr-2")
    expire(kube, "envci-shop-pr-3")
    err, teardowns = io.StringIO(), Teardowns()
    out = up(kube, cfg_for(path, "shop-pr-4"), err, teardowns)
    assert teardowns.namespaces == ["envci-shop-pr-2"]  # the oldest expired; pr-1 is older but live
    assert kube.namespace("envci-shop-pr-2") is None and kube.namespace("envci-shop-pr-1") is not None
    assert kube.namespace("envci-shop-pr-4") is not None
    assert [r["name"] for r in out["reaped"]] == ["shop-pr-2"]
    assert "budget: tearing down environment shop-pr-2, expired at" in err.getvalue()


def test_reap_oldest_expired_never_takes_a_live_one(app: Path) -> None:
    kube = FakeKube()
    path = write(app, BUDGET_3 + "  when_exceeded: reap-oldest-expired\n")
    for i in (1, 2, 3):
        up(kube, cfg_for(path, f"shop-pr-{i}"))
    teardowns = Teardowns()
    with pytest.raises(BudgetExceededError, match="0 of them expired, too few to make room"):
        up(kube, cfg_for(path, "shop-pr-4"), teardowns=teardowns)
    assert teardowns.namespaces == [] and all(kube.namespace(f"envci-shop-pr-{i}") for i in (1, 2, 3))


def test_a_teardown_that_fails_while_making_room_is_an_infrastructure_error(app: Path) -> None:
    kube = FakeKube()
    path = write(app, BUDGET_3 + "  when_exceeded: reap-oldest-expired\n")
    for i in (1, 2, 3):
        up(kube, cfg_for(path, f"shop-pr-{i}"))
    expire(kube, "envci-shop-pr-1")

    def broken(kube: Any, rep: Reporter, **kw: Any) -> dict[str, Any]:
        raise InfrastructureError("Kubernetes API refused to delete Namespace envci-shop-pr-1: forbidden")

    with pytest.raises(InfrastructureError, match="could not tear down expired environment shop-pr-1") as caught:
        provision(cfg_for(path, "shop-pr-4"), kube, Reporter(err=io.StringIO()), clock=kube.utcnow, teardown_fn=broken)
    assert caught.value.hint and "envci teardown --env shop-pr-1" in caught.value.hint
    assert not kube.exists("Namespace", "envci-shop-pr-4")


def test_the_policy_is_read_from_the_cluster_and_the_stricter_applies(app: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kube = FakeKube()
    path = write(app, BUDGET_3)
    policy(kube, "apps: {shop: 2}\n", "platform")
    monkeypatch.setenv("ENVCI_POLICY_NAMESPACE", "platform")
    up(kube, cfg_for(path, "shop-pr-1"))
    out = up(kube, cfg_for(path, "shop-pr-2"))
    assert out["budgets"][0]["source"] == "policy platform/envci-budgets"
    with pytest.raises(BudgetExceededError, match=r"3rd of app shop, whose budget allows 2 \(policy platform/envci-budgets\)") as caught:
        up(kube, cfg_for(path, "shop-pr-3"))
    assert caught.value.hint and "ConfigMap platform/envci-budgets" in caught.value.hint
    assert caught.value.file is None  # nothing in envci.yaml to change


def test_a_repository_budget_of_the_policy_counts_every_app_of_the_repository(app: Path) -> None:
    kube = FakeKube()
    policy(kube, "repos: {acme/shop: 2}\n")
    up(kube, cfg_for(write(app, None, "shop"), "shop-pr-1"))
    up(kube, cfg_for(write(app, None, "blog"), "blog-pr-1"))
    up(kube, cfg_for(write(app, None, "blog"), "blog-pr-9", repo="acme/other"))
    with pytest.raises(BudgetExceededError, match="3rd of repository acme/shop"):
        up(kube, cfg_for(write(app, None, "shop"), "shop-pr-2"))


def test_a_team_budget_counts_the_team_label_envci_yaml_sets(app: Path) -> None:
    kube = FakeKube()
    team = "budget:\n  team: payments\n"
    up(kube, cfg_for(write(app, team, "shop"), "shop-pr-1"))
    assert kube.namespace("envci-shop-pr-1")["metadata"]["labels"]["envci.io/team"] == "payments"  # type: ignore[index]
    up(kube, cfg_for(write(app, "budget:\n  team: payments\n  max_environments: 2\n  scope: team\n", "blog"), "blog-pr-1"))
    up(kube, cfg_for(write(app, None, "wiki"), "wiki-pr-1"))  # no team: not counted
    with pytest.raises(BudgetExceededError, match="3rd of team payments, whose budget allows 2"):
        up(kube, cfg_for(write(app, "budget:\n  team: payments\n  max_environments: 2\n  scope: team\n", "blog"), "blog-pr-2"))


def test_an_unreadable_policy_is_warned_about_and_passed_over(app: Path) -> None:
    kube = FakeKube()
    kube.fail("get", InfrastructureError("Kubernetes API refused to read ConfigMap envci-budgets: forbidden"), times=1)
    err = io.StringIO()
    up(kube, cfg_for(write(app, None), "shop-pr-1"), err)
    assert "cannot read the cluster's budgets (ConfigMap envci-system/envci-budgets)" in err.getvalue()
    assert kube.namespace("envci-shop-pr-1") is not None


def test_a_broken_policy_is_bad_input_that_changes_nothing(app: Path) -> None:
    kube = FakeKube()
    policy(kube, "apps: {shop: lots}\n")
    kube.calls.clear()
    with pytest.raises(ConfigError, match=r"ConfigMap envci-system/envci-budgets, key budgets.yaml\) is not valid: apps\.shop") as caught:
        up(kube, cfg_for(write(app, None), "shop-pr-1"))
    assert caught.value.exit_code == ExitCode.BAD_INPUT and kube.calls == []


def test_list_shows_usage_against_each_budget(app: Path) -> None:
    kube = FakeKube()
    policy(kube, "apps: {shop: 10, blog: 4}\nteams: {payments: 6}\n")
    path = write(app, "budget:\n  max_environments: 5\n  team: payments\n")
    for i in (1, 2, 3):
        up(kube, cfg_for(path, f"shop-pr-{i}"))
    up(kube, cfg_for(write(app, None, "blog"), "blog-pr-1"))
    kube.delete("v1", "Namespace", "envci-shop-pr-3")

    res = overview(kube, now=kube.utcnow())  # type: ignore[arg-type]
    lines = format_list(res["environments"], res["budgets"]).splitlines()
    assert lines[-4:] == [
        "app blog: 1 of 4 environments (policy envci-system/envci-budgets)",
        "app shop: 2 of 5 environments (envci.yaml)",
        "app shop: 2 of 10 environments (policy envci-system/envci-budgets)",
        "team payments: 2 of 6 environments (policy envci-system/envci-budgets)",
    ]
    shop = overview(kube, app="shop", now=kube.utcnow())  # type: ignore[arg-type]
    assert [e["name"] for e in shop["environments"]] == ["shop-pr-1", "shop-pr-2"]
    assert [(b["scope"], b["key"], b["max_environments"]) for b in shop["budgets"]] == [("app", "shop", 5), ("app", "shop", 10), ("team", "payments", 6)]


@pytest.fixture
def cli_kube(monkeypatch: pytest.MonkeyPatch) -> FakeKube:
    kube = FakeKube()
    monkeypatch.setattr("envci.invocation.Invocation.kube", lambda self: kube)
    return kube


def test_the_cli_exits_2_with_the_budgets_in_json_and_list_prints_them(
    app: Path, cli_kube: FakeKube, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(app, "budget:\n  max_environments: 1\n")
    monkeypatch.setenv("ENVCI_REPORT_DIR", str(app / "report"))
    assert main(["provision", "-c", str(path), "--env", "shop-pr-1", "-o", "json"]) == 0
    capsys.readouterr()
    assert main(["provision", "-c", str(path), "--env", "shop-pr-2", "-o", "json"]) == ExitCode.BAD_INPUT
    out = capsys.readouterr()
    payload = json.loads(out.out)
    assert payload["type"] == "BudgetExceededError" and payload["exit_code"] == 2
    assert payload["budgets"][0]["environments"][0]["name"] == "shop-pr-1"
    assert "hint: tear one down with `envci teardown --env shop-pr-1`" in out.err
    assert main(["list", "-o", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["budgets"] == [{"scope": "app", "key": "shop", "max_environments": 1, "source": "envci.yaml", "used": 1, "over": False}]
    assert main(["list"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "app shop: 1 of 1 environments (envci.yaml)"
