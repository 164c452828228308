"""Developer workflows. `nox -s cluster -- up|down|status|kubeconfig` manages the local cluster."""

from __future__ import annotations

import os
import sys

import nox


@nox.session(python=False)
def cluster(session: nox.Session) -> None:
    """The embedded local cluster: up (default), down, status, kubeconfig; `-- status --output json`."""
    args = session.posargs or ["up"]
    # python=False and sys.executable: the interpreter running nox, with envci installed, and no
    # virtualenv to build, so the session starts at once.
    session.run(sys.executable, "-m", "envci.localcluster.command", *args, external=True)


@nox.session(python=False)
def tests(session: nox.Session) -> None:
    """Every test: unit, integration (real local cluster, PostgreSQL, S3), wrappers. `-- -k expr` narrows."""
    session.run(sys.executable, "-m", "pytest", *(session.posargs or ["-q"]), external=True)


@nox.session(python=False)
def demo(session: nox.Session) -> None:
    """The main job: the demo app's whole pipeline (provision, wait-ready, seed, test, teardown) on the local cluster."""
    kubeconfig = session.run(sys.executable, "-m", "envci.localcluster.command", "up", external=True, silent=True)
    path = str(kubeconfig).strip().splitlines()[-1]
    bin_dir = session.run("bash", "envci/localcluster/build.sh", "--print-dir", external=True, silent=True)
    env = {"KUBECONFIG": path, "PATH": f"{str(bin_dir).strip()}{os.pathsep}{os.environ['PATH']}"}
    session.chdir("examples/demo")
    session.run(sys.executable, "-m", "envci.cli", "up", *session.posargs, external=True, env=env)


@nox.session(python=False)
def ci(session: nox.Session) -> None:
    """What a CI pipeline runs: one envci command per stage, teardown always, on the local cluster.

    The CI context (GITHUB_*, CI_* of GitLab, BUILD_NUMBER/CHANGE_ID of Jenkins, or ENVCI_BRANCH/ENVCI_PR
    locally) comes from the environment, as in a real pipeline. `-- DIR` picks the app (default
    examples/demo). Fails with the first failing stage's exit code in its message.
    """
    import subprocess

    workdir = session.posargs[0] if session.posargs else "examples/demo"
    kubeconfig = session.run(sys.executable, "-m", "envci.localcluster.command", "up", external=True, silent=True)
    bin_dir = session.run("bash", "envci/localcluster/build.sh", "--print-dir", external=True, silent=True)
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig).strip().splitlines()[-1],
        "PATH": f"{str(bin_dir).strip()}{os.pathsep}{os.environ['PATH']}",
    }

    def envci(stage: str) -> int:
        session.log(f"envci {stage}")
        return subprocess.call([sys.executable, "-m", "envci.cli", stage], cwd=workdir, env=env)

    failed: tuple[str, int] | None = None
    try:
        for stage in ("provision", "wait-ready", "seed", "test"):
            code = envci(stage)
            if code:
                failed = (stage, code)
                break
    finally:
        code = envci("teardown")  # always, as the pipelines' teardown jobs do
        failed = failed or (("teardown", code) if code else None)
    if failed:
        session.error(f"envci {failed[0]} failed with exit code {failed[1]}")


@nox.session(python=False)
def bench(session: nox.Session) -> None:
    """Benchmarks on the local cluster: time to ready, teardown, reap of many environments."""
    session.run(sys.executable, "benchmarks/run.py", *session.posargs, external=True)


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    """ruff over the package, tests, benchmarks and the action helper."""
    session.run(sys.executable, "-m", "ruff", "check", "envci", "tests", "benchmarks", "actions", "noxfile.py", external=True)
