"""The Containerfile (the envci image for registries) against the project's pins and the offline image.

It cannot be built here (no registry), so what can drift is checked instead: the versions it installs
are the package's and the local cluster's pins (envci/localcluster/build.sh), and its final image is
the one envci/images/definitions.py builds offline: the same suite, Python, packages, user, files,
environment and entrypoint.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from envci import __version__
from envci.images import build as builder
from envci.images import definitions as d
from envci.localcluster import spec

REPO = Path(__file__).resolve().parents[2]
CONTAINERFILE = REPO / "Containerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        keyword, _, args = whole.partition(" ")
        out.append((keyword.upper(), " ".join(args.split())))
    return out


def stages(text: str) -> tuple[dict[str, str], list[list[tuple[str, str]]]]:
    """The global ARG defaults, and each stage's instructions (its FROM first)."""
    args: dict[str, str] = {}
    found: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions(text):
        if keyword == "FROM":
            found.append([])
        if not found:
            assert keyword == "ARG", f"only ARG may come before the first FROM, not {keyword}"
            name, _, value = rest.partition("=")
            args[name] = value
        else:
            found[-1].append((keyword, rest))
    return args, found


def localcluster_pins() -> dict[str, str]:
    """The versions build.sh pins, read back the project's way (the bin dir's name), overrides ignored."""
    env = {k: v for k, v in os.environ.items() if not re.fullmatch(r"ENVCI_[A-Z0-9]+_VERSION", k)}
    out = subprocess.run(["bash", str(REPO / "envci/localcluster/build.sh"), "--print-dir"], env=env, capture_output=True, text=True, check=True, timeout=30)
    pins = spec.versions_from_key(Path(out.stdout.strip()))
    assert pins, f"cannot read the pins from {out.stdout!r}"
    return pins


@pytest.fixture(scope="module")
def parsed() -> tuple[dict[str, str], list[list[tuple[str, str]]]]:
    return stages(CONTAINERFILE.read_text())


def test_the_pinned_versions_are_the_projects(parsed: tuple[dict[str, str], list]) -> None:
    args, _ = parsed
    pins = localcluster_pins()
    assert args == {"ENVCI_VERSION": __version__, "HELM_VERSION": pins["helm"], "KUBECTL_VERSION": pins["kubernetes"]}


def test_envci_is_installed_at_that_version_and_the_tools_at_theirs(parsed: tuple[dict[str, str], list]) -> None:
    _, (wheels, tools, final) = parsed
    [pip] = [rest for k, rest in wheels if k == "RUN" and "pip install" in rest]
    assert '"envci==${ENVCI_VERSION}"' in pip and "--no-cache-dir" in pip and "--only-binary=:all:" in pip
    [download] = [rest for k, rest in tools if k == "RUN" and "curl -fsSL" in rest]
    assert "helm-${HELM_VERSION}-linux-${TARGETARCH}.tar.gz" in download and "release/${KUBECTL_VERSION}/bin/linux" in download
    assert download.count("sha256sum -c -") == 2  # both checked against their published sums
    assert ("ARG", "ENVCI_VERSION") in final  # the label names the version too


def test_the_final_image_is_the_offline_one(parsed: tuple[dict[str, str], list]) -> None:
    _, (wheels, tools, final) = parsed
    offline = d.image_named(f"envci.local/envci:{__version__}")
    assert wheels[0] == ("FROM", f"python:{d.PYTHON_VERSION}-slim-{d.DEBIAN_SUITE} AS wheels")
    assert tools[0] == ("FROM", f"debian:{d.DEBIAN_SUITE}-slim AS tools")
    assert final[0] == ("FROM", f"debian:{d.DEBIAN_SUITE}-slim")

    [setup] = [rest for k, rest in final if k == "RUN"]  # one RUN: no layer keeps what another deletes
    installed = re.search(r"apt-get install -y --no-install-recommends ([^&]+)&&", setup)
    assert installed and tuple(installed.group(1).split()) == d.PYTHON_BASE_PACKAGES
    assert "rm -rf /var/lib/apt/lists/*" in setup
    assert f"useradd --uid {d.APP_UID} --user-group --create-home --home-dir /home/app" in setup
    script = re.search(r"printf '([^']*)' > /usr/local/bin/envci", setup)
    assert script and script.group(1).replace("\\n", "\n").encode() == builder.ENVCI_SCRIPT
    assert "chmod 0755 /usr/local/bin/envci" in setup

    copies = [rest for k, rest in final if k == "COPY"]
    assert copies == [
        "--from=tools /out/ /usr/local/bin/",
        f"--from=wheels /site/ /usr/local/lib/python{d.PYTHON_VERSION}/dist-packages/",
        f"{builder.GITHUB_STEP_SOURCE} /{d.GITHUB_STEP}",
    ]
    assert offline.needs == ("helm", "kubectl")

    config = offline.config
    [env] = [rest for k, rest in final if k == "ENV"]
    assert dict(pair.split("=", 1) for pair in shlex.split(env)) == dict(config.env)
    assert ("USER", config.user) in final and ("WORKDIR", config.working_dir) in final
    assert ("ENTRYPOINT", json.dumps(list(config.entrypoint))) in final
    assert ("CMD", json.dumps(list(config.cmd))) in final


def test_the_parser_sees_a_changed_pin(tmp_path: Path) -> None:
    """The checks above read what they claim to: a helm pin moved in the text is a different value."""
    args, _ = stages(CONTAINERFILE.read_text().replace("ARG HELM_VERSION=", "ARG HELM_VERSION=v0.0.1-"))
    assert args["HELM_VERSION"].startswith("v0.0.1-") and args["HELM_VERSION"] != localcluster_pins()["helm"]
