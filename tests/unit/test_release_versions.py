"""One version everywhere: a release bump (pyproject.toml and envci/__init__.py) must not leave an
image tag, a pinned requirement or a documented reference behind.

The wrappers install (or run the image of) their own release: the GitLab templates' default image
and requirement, the Jenkins steps' default requirement, the GitHub container action's image, the
Containerfile, the janitor chart's image tag and appVersion, and the examples and docs that show them.
Every such reference in those files is found by pattern and must name the package's version.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from envci import __version__

REPO = Path(__file__).resolve().parents[2]
ROOTS = ("README.md", "Containerfile", "docs", "examples", "gitlab", "jenkins", "charts", "actions", ".github")
SUFFIXES = {"", ".md", ".yml", ".yaml", ".groovy", ".txt", ".sh", ".py"}
PATTERNS = {
    "registry image": re.compile(r"ghcr\.io/envci/envci:([^\s\"'`<>)]+)"),
    "offline image": re.compile(r"envci\.local/envci:([^\s\"'`<>)]+)"),
    "pinned requirement": re.compile(r"\benvci==([0-9][^\s\"'`,)<>}]*)"),
    "GitLab component": re.compile(r"envci/(?:pipeline|provision|wait-ready|seed|test|teardown)@([^\s\"'`]+)"),
    "chart image tag": re.compile(r"(?<![\w.])image\.tag=([^\s\"'`]+)"),  # the janitor chart's, not a component's (api.image.tag=)
    "Containerfile pin": re.compile(r"^ARG ENVCI_VERSION=(\S+)", re.MULTILINE),
    "raw include at a tag": re.compile(r"/-/raw/v([^/\s]+)/"),
    "library tag": re.compile(r"a\s+tag \(e\.g\. `v([^`]+)`\)"),
}
MUST_MENTION = {
    "Containerfile": {"Containerfile pin"},
    "actions/docker/Dockerfile": {"registry image"},
    "gitlab/envci.gitlab-ci.yml": {"registry image", "pinned requirement"},
    "jenkins/resources/envci/run.sh": {"pinned requirement"},
    "charts/envci-janitor/values.yaml": {"chart image tag"},
    "charts/envci-janitor/README.md": {"chart image tag", "registry image"},
    "docs/ci.md": {"registry image", "pinned requirement", "GitLab component", "raw include at a tag", "library tag"},
    "examples/gitlab/.gitlab-ci.yml": {"pinned requirement", "GitLab component"},
    **{f"gitlab/templates/{p.name}": {"registry image", "pinned requirement"} for p in (REPO / "gitlab" / "templates").glob("*.yml")},
}


def files() -> list[Path]:
    out = []
    for root in ROOTS:
        path = REPO / root
        candidates = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        out += [p for p in candidates if p.suffix in SUFFIXES and "__pycache__" not in p.parts]
    return out


def references() -> list[tuple[str, int, str, str]]:
    """(file, line, kind, version named) of every reference to a version of envci."""
    found = []
    for path in files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for kind, pattern in PATTERNS.items():
            for m in pattern.finditer(text):
                found.append((str(path.relative_to(REPO)), text.count("\n", 0, m.start()) + 1, kind, m.group(1)))
    return found


def test_the_package_has_one_version() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["version"] == __version__


def test_every_reference_names_the_packages_version() -> None:
    stale = [r for r in references() if r[3] != __version__]
    assert stale == [], f"references to another version than {__version__}: {stale}"


def test_the_places_a_release_must_update_are_all_seen() -> None:
    """The scan is real: each file a bump must touch holds the references it is expected to."""
    seen: dict[str, set[str]] = {}
    for file, _line, kind, _version in references():
        seen.setdefault(file, set()).add(kind)
    missing = {f: kinds - seen.get(f, set()) for f, kinds in MUST_MENTION.items() if kinds - seen.get(f, set())}
    assert missing == {}


def test_the_wrappers_defaults_and_the_chart() -> None:
    for path in sorted((REPO / "gitlab" / "templates").glob("*.yml")):
        inputs = next(yaml.safe_load_all(path.read_text()))["spec"]["inputs"]
        assert inputs["image"]["default"] == f"ghcr.io/envci/envci:{__version__}", path.name
        assert inputs["envci"]["default"] == f"envci=={__version__}", path.name
    classic = yaml.safe_load((REPO / "gitlab" / "envci.gitlab-ci.yml").read_text())[".envci"]
    assert classic["image"]["name"] == f"ghcr.io/envci/envci:{__version__}"
    assert classic["variables"]["ENVCI_INSTALL"] == f"envci=={__version__}"
    assert f'ENVCI_INSTALL="${{ENVCI_INSTALL:-envci=={__version__}}}"' in (REPO / "jenkins/resources/envci/run.sh").read_text()
    assert (REPO / "actions/docker/Dockerfile").read_text().count(f"FROM ghcr.io/envci/envci:{__version__}\n") == 1
    chart = yaml.safe_load((REPO / "charts/envci-janitor/Chart.yaml").read_text())
    values = yaml.safe_load((REPO / "charts/envci-janitor/values.yaml").read_text())
    assert chart["appVersion"] == values["image"]["tag"] == __version__
