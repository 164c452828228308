"""How the GitLab jobs and the Jenkins steps find or install envci, run by sh and bash with stand-ins.

The default requirement is the wrappers' own release, envci==<version>; in envci's image (the GitLab
templates' default image, a Jenkins docker agent) the envci on PATH is that version, so nothing is
installed. Any other requirement goes into a virtualenv. A stand-in `envci` on PATH answers
`--version`; a stand-in `python3` records the virtualenv and the pip install it is asked for.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from wrapper_support import REPO

from envci import __version__

GITLAB_FILES = [*sorted((REPO / "gitlab" / "templates").glob("*.yml")), REPO / "gitlab" / "envci.gitlab-ci.yml"]
RUN_SH = REPO / "jenkins" / "resources" / "envci" / "run.sh"
SHELLS = [s for s in ("sh", "bash") if shutil.which(s)]

FAKE_ENVCI = """#!/bin/sh
if [ "$1" = --version ]; then echo "envci {version}"; else echo "envci on PATH ran: $*"; fi
"""
FAKE_PYTHON = """#!/bin/sh
# python3 -m venv --system-site-packages DIR: a virtualenv whose python installs a stand-in envci.
echo "python3 $*" >> "$CALLS"
dir="$4"
mkdir -p "$dir/bin"
cat > "$dir/bin/python" <<EOF
#!/bin/sh
echo "venv python \\$*" >> "$CALLS"
printf '#!/bin/sh\\necho "envci in the virtualenv ran: \\$*"\\n' > "$dir/bin/envci"
chmod +x "$dir/bin/envci"
EOF
chmod +x "$dir/bin/python"
"""


def gitlab_install_script(path: Path) -> str:
    docs = list(yaml.safe_load_all(path.read_text()))
    body = docs[-1]
    [script] = body[".envci-install"]
    return script


def test_every_gitlab_file_installs_the_same_way() -> None:
    scripts = {gitlab_install_script(p) for p in GITLAB_FILES}
    assert len(scripts) == 1


@pytest.fixture
def tools(tmp_path: Path) -> dict[str, Path]:
    path_with_envci = tmp_path / "with-envci"
    path_without = tmp_path / "without-envci"
    for d in (path_with_envci, path_without):
        d.mkdir()
        (d / "python3").write_text(FAKE_PYTHON)
        (d / "python3").chmod(0o755)
    (path_with_envci / "envci").write_text(FAKE_ENVCI.format(version=__version__))
    (path_with_envci / "envci").chmod(0o755)
    return {"with": path_with_envci, "without": path_without, "calls": tmp_path / "calls", "venv": tmp_path / "venv"}


def run(shell: str, script: str, tools: dict[str, Path], path: str, install: str | None, *extra: str) -> tuple[subprocess.CompletedProcess[str], str]:
    env = {"PATH": f"{tools[path]}:/usr/bin:/bin", "CALLS": str(tools["calls"]), "ENVCI_VENV": str(tools["venv"]), "HOME": str(tools["venv"].parent)}
    if install is not None:
        env["ENVCI_INSTALL"] = install
    for item in extra:
        k, _, v = item.partition("=")
        env[k] = v
    done = subprocess.run([shell, "-euc", script], env=env, capture_output=True, text=True, check=False, timeout=60)
    calls = tools["calls"].read_text() if tools["calls"].exists() else ""
    return done, calls


CASES = [
    # (requirement, PATH has envci <version>, expect the envci on PATH)
    (f"envci=={__version__}", "with", True),
    ("installed", "with", True),
    ("envci==99.0.0", "with", False),
    ("/checkout/of/envci", "with", False),
    (f"envci=={__version__}", "without", False),
]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(("install", "path", "on_path"), CASES)
def test_gitlab_jobs_use_the_envci_they_have_or_install_the_one_asked_for(
    shell: str, install: str, path: str, on_path: bool, tools: dict[str, Path]
) -> None:
    script = gitlab_install_script(GITLAB_FILES[0]) + '\necho "ENVCI_BIN=$ENVCI_BIN"\n"$ENVCI_BIN" provision\n'
    done, calls = run(shell, script, tools, path, install)
    assert done.returncode == 0, done.stderr
    if on_path:
        assert "ENVCI_BIN=envci\n" in done.stdout and "envci on PATH ran: provision" in done.stdout
        assert calls == ""
    else:
        assert f"ENVCI_BIN={tools['venv']}/bin/envci" in done.stdout and "envci in the virtualenv ran: provision" in done.stdout
        assert calls == f"python3 -m venv --system-site-packages {tools['venv']}\nvenv python -m pip install --quiet --disable-pip-version-check {install}\n"


@pytest.mark.parametrize(("install", "path", "on_path"), [*CASES, (None, "with", True), (None, "without", False)])
def test_the_jenkins_steps_use_the_envci_they_have_or_install_the_one_asked_for(
    install: str | None, path: str, on_path: bool, tools: dict[str, Path], tmp_path: Path
) -> None:
    """run.sh's default (no ENVCI_INSTALL) is envci==<this release>."""
    done, calls = run("sh", RUN_SH.read_text(), tools, path, install, "ENVCI_COMMAND=seed", f"ENVCI_OUTPUT_DIR={tmp_path}/out")
    assert done.returncode == 0, done.stderr
    if on_path:
        assert done.stdout == "envci on PATH ran: seed\n" and calls == ""
    else:
        assert done.stdout.endswith("envci in the virtualenv ran: seed\n")
        assert f"pip install --quiet --disable-pip-version-check {install or f'envci=={__version__}'}\n" in calls


def test_a_second_job_reuses_the_virtualenv(tools: dict[str, Path]) -> None:
    script = gitlab_install_script(GITLAB_FILES[0])
    for _ in range(2):
        done, calls = run("sh", script, tools, "without", "envci==99.0.0")
        assert done.returncode == 0, done.stderr
    assert calls.count("venv python -m pip install") == 1
    assert os.access(tools["venv"] / "bin" / "envci", os.X_OK)
