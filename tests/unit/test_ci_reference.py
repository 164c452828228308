"""docs/ci.md's tables of the wrappers' inputs and outputs are generated from the wrappers
(scripts/ci_reference.py), as README's envci.yaml reference is from the model: they must be current."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).parents[2]
_spec = importlib.util.spec_from_file_location("ci_reference", ROOT / "scripts" / "ci_reference.py")
assert _spec and _spec.loader
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)


def test_docs_ci_tables_are_current() -> None:
    text = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")
    assert ref.render(text) == text, "docs/ci.md's wrapper tables are stale: run `python scripts/ci_reference.py`"


def test_every_action_and_component_is_in_the_tables() -> None:
    assert sorted(ref.ACTIONS) == sorted(p.parent.name for p in (ROOT / "actions").glob("*/action.yml"))
    assert sorted(ref.COMPONENTS) == sorted(p.stem for p in (ROOT / "gitlab" / "templates").glob("*.yml"))
    github, gitlab = ref.github_markdown(), ref.gitlab_markdown()
    for meta in ref.actions().values():
        for name in [*meta["inputs"], *(meta.get("outputs") or {})]:
            assert f"| `{name}` |" in github, name
    for spec in ref.components().values():
        for name in spec["inputs"]:
            assert f"| `{name}` |" in gitlab, name


def test_a_changed_input_makes_the_tables_stale(tmp_path: Path) -> None:
    """The drift check is real: a description changed in an action.yml no longer matches the docs."""
    import shutil

    for part in ("actions", "gitlab"):
        shutil.copytree(ROOT / part, tmp_path / part)
    action = tmp_path / "actions" / "run" / "action.yml"
    action.write_text(action.read_text().replace("Directory to run envci in", "Folder to run envci in"))
    text = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")
    changed = ref.render(text, tmp_path)
    assert changed != text and "| `working-directory` | `run` | `.` | Folder to run envci in |" in changed
