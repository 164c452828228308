"""actionlint (v1.7.12, built from its Go module) on every action, example and the project's workflows.

actionlint reads workflows, and checks a local action's metadata (inputs, outputs, required inputs)
where a workflow uses it. So the examples are linted as they are, and once more in a copy of the
repository where `envci/envci/actions/X@v0` is `./actions/X`, next to a workflow that uses every
action with every input and reads every output. It does not read a composite action's own steps:
those are linted as the steps of a reusable workflow with the action's inputs, which checks their
expressions, the step outputs they read and the inputs of the actions they use. The release workflow
(.github/workflows/release.yml) is linted as it is.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml
from wrapper_support import ACTIONLINT, REPO, require

ACTIONS = ("provision", "wait-ready", "seed", "test", "teardown", "run", "cleanup", "docker")
EXAMPLES = sorted((REPO / "examples" / "github").glob("*.yml"))
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


def every_action_workflow() -> str:
    steps = []
    for name in ACTIONS:
        meta = yaml.safe_load((REPO / "actions" / name / "action.yml").read_text())
        sid = name.replace("-", "_")
        with_ = {k: f"${{{{ vars.X_{k.upper().replace('-', '_')} }}}}" for k in meta["inputs"]}
        steps.append({"id": sid, "uses": f"./actions/{name}", "with": with_})
        env = {f"OUT_{k.upper().replace('-', '_')}": f"${{{{ steps.{sid}.outputs.{k} }}}}" for k in meta.get("outputs") or {}}
        if env:
            steps.append({"run": "env | grep '^OUT_'", "env": env})
    workflow = {"name": "every action", "on": {"push": None}, "jobs": {"all": {"runs-on": "ubuntu-latest", "steps": [{"uses": "actions/checkout@v4"}, *steps]}}}
    return yaml.safe_dump(workflow, sort_keys=False)


def composite_as_workflow(meta: dict) -> str:
    """A composite action's steps as the job of a reusable workflow whose inputs are the action's."""
    inputs = {k: {"type": "string", "required": False, "default": str(v.get("default", ""))} for k, v in meta["inputs"].items()}
    workflow = {"name": meta["name"], "on": {"workflow_call": {"inputs": inputs}}, "jobs": {"steps": {"runs-on": "ubuntu-22.04", "steps": meta["runs"]["steps"]}}}
    return yaml.safe_dump(workflow, sort_keys=False)


def lint(cwd: Path, *files: str) -> subprocess.CompletedProcess[str]:
    if not (cwd / ".git").exists():  # actionlint finds the project (and local actions) by its git root
        subprocess.run(["git", "init", "-q"], cwd=cwd, check=True, timeout=30)
    return subprocess.run([require(ACTIONLINT, "actionlint v1.7.12 (go install)"), "-no-color", *files], cwd=cwd, capture_output=True, text=True, check=False, timeout=120)


def test_examples_as_they_are() -> None:
    assert EXAMPLES
    done = lint(REPO, *[str(p.relative_to(REPO)) for p in EXAMPLES])
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_action_through_local_uses(tmp_path: Path) -> None:
    shutil.copytree(REPO / "actions", tmp_path / "actions")
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    for p in EXAMPLES:
        (workflows / p.name).write_text(p.read_text().replace("envci/envci/actions/", "./actions/").replace("@v0\n", "\n"))
    (workflows / "every-action.yml").write_text(every_action_workflow())
    done = lint(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_projects_workflows() -> None:
    assert [p.name for p in WORKFLOWS] == ["release.yml"]
    done = lint(REPO, *[str(p.relative_to(REPO)) for p in WORKFLOWS])
    assert done.returncode == 0, done.stdout + done.stderr


def write_composite_workflows(root: Path, change: tuple[str, str] | None = None) -> list[str]:
    workflows = root / ".github" / "workflows"
    workflows.mkdir(parents=True)
    names = []
    for name in ACTIONS:
        meta = yaml.safe_load((REPO / "actions" / name / "action.yml").read_text())
        if meta["runs"]["using"] != "composite":
            continue
        text = composite_as_workflow(meta)
        (workflows / f"{name}.yml").write_text(text.replace(*change) if change else text)
        names.append(name)
    return names


def test_the_steps_of_every_composite_action(tmp_path: Path) -> None:
    assert write_composite_workflows(tmp_path) == ["provision", "wait-ready", "seed", "test", "teardown", "run"]
    done = lint(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_misread_step_output_in_a_composite_action_is_reported(tmp_path: Path) -> None:
    """The check above is real: a step output setup-python does not have is an error."""
    write_composite_workflows(tmp_path, ("outputs.python-path", "outputs.python-pth"))
    done = lint(tmp_path)
    assert done.returncode != 0 and 'property "python-pth" is not defined' in done.stdout, done.stdout


def test_actionlint_catches_an_unknown_input(tmp_path: Path) -> None:
    """The check above is real: a misspelt input of a local action is reported."""
    shutil.copytree(REPO / "actions", tmp_path / "actions")
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "bad.yml").write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v4\n      - uses: ./actions/provision\n        with: {kubeconfg: x}\n"
    )
    done = lint(tmp_path)
    assert done.returncode != 0 and "kubeconfg" in done.stdout


def test_no_expression_is_spliced_into_a_script() -> None:
    """Inputs and event data reach `run:` through `env:` only: `${{ }}` inside a script is injectable."""
    files = [*(REPO / "actions").glob("*/action.yml"), *EXAMPLES, *WORKFLOWS]
    scripts = []
    for f in files:
        doc = yaml.safe_load(f.read_text())
        steps = (doc.get("runs") or {}).get("steps") or [s for job in (doc.get("jobs") or {}).values() for s in job.get("steps", [])]
        scripts += [(f.relative_to(REPO), s["run"]) for s in steps if "run" in s]
    assert len(scripts) >= 10
    assert [(f, run) for f, run in scripts if "${{" in run] == []
    # A container action has no script, but its arguments are still a place for an expression to land:
    # only the command, which envci_step.py checks against the commands it knows.
    docker = yaml.safe_load((REPO / "actions" / "docker" / "action.yml").read_text())
    assert docker["runs"]["args"] == ["${{ inputs.command }}"]
