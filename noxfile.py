"""Developer workflows. `nox -s cluster -- up|down|status|kubeconfig` manages the local cluster.

Every session runs in its own virtualenv with envci installed editable (`.[test]`), so a fresh
machine needs only Python and nox. Virtualenvs are kept between runs, and the install is skipped
while pyproject.toml is unchanged: a warm session starts in about a second. `nox --no-reuse-existing-virtualenvs`
(or deleting .nox/) rebuilds them.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import nox

nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).resolve().parent


def install(session: nox.Session) -> None:
    """`pip install -e .[test]` into the session's virtualenv, unless pyproject.toml is unchanged since
    the last install there. Editable: changes to envci's code need no reinstall, only its dependencies do."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    stamp = Path(session.virtualenv.location) / ".envci-installed"
    if stamp.is_file() and stamp.read_text() == digest:
        session.log("envci's dependencies are installed (pyproject.toml unchanged)")
        return
    session.install("-e", f"{ROOT}[test]")
    stamp.write_text(digest)


def system_deps(session: nox.Session, *names: str) -> None:
    """Debian packages and tools the session needs, from scripts/ci-deps (each one quick when all is present):
    node.sh (the real node's runc, CNI plugins, iptables), images.sh (the offline image builder), seed.sh
    (PostgreSQL and an S3 server for the seeders' tests), wrappers.sh (the local CI runners). None given: all."""
    scripts = [ROOT / "scripts" / "ci-deps" / f"{n}.sh" for n in names] if names else sorted((ROOT / "scripts" / "ci-deps").glob("*.sh"))
    for script in scripts:
        session.run("bash", str(script), external=True)


def local_cluster(session: nox.Session, *flags: str) -> str:
    """Start the local cluster (or reuse the running one) and return its kubeconfig path. Its progress
    is shown: a first start on a new machine builds the binaries and images for several minutes."""
    session.run("python", "-m", "envci.localcluster.command", "up", *flags)
    out = session.run("python", "-m", "envci.localcluster.command", "kubeconfig", *flags, silent=True)
    return str(out).strip().splitlines()[-1]


def typecheck(session: nox.Session) -> None:
    """mypy, strict, over envci/ as pyproject.toml configures it: about 7 s cold, under a second
    with its cache (.mypy_cache/)."""
    session.run("python", "-m", "mypy")


@nox.session
def cluster(session: nox.Session) -> None:
    """The embedded local cluster: up (default), down, status, kubeconfig; `-- status --output json`."""
    args = session.posargs or ["up"]
    install(session)
    if args[0] == "up":
        system_deps(session, "node", "images")
    session.run("python", "-m", "envci.localcluster.command", *args)


@nox.session
def tests(session: nox.Session) -> None:
    """Every test: unit, integration (real local cluster, PostgreSQL, S3), wrappers. `-- -k expr` narrows.
    The type check runs first: a type error fails the session in seconds."""
    install(session)
    typecheck(session)
    system_deps(session)
    session.run("python", "-m", "pytest", *(session.posargs or ["-q"]))


def demo_environment(env: dict[str, str]) -> dict[str, str]:
    """What the demo app needs from the runner, as a CI system's variables would give it.

    DEMO_DB_PASSWORD: the database's password (envci.yaml reads it with `from_env`); a random one
    per run unless set, so no password lives in the repository. DEMO_FAIL=1 becomes the override
    `demo_fail=1`, which deploys the API with its deliberate defect, and the tests catch it.
    """
    import secrets

    out = {"DEMO_DB_PASSWORD": env.get("DEMO_DB_PASSWORD") or secrets.token_hex(16)}
    if env.get("DEMO_FAIL") == "1":
        out["ENVCI_SET"] = f"{env.get('ENVCI_SET', '')} demo_fail=1".strip()
    return out


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: the demo app's whole pipeline (provision, wait-ready, seed, test, teardown) on the local cluster.

    `DEMO_FAIL=1 nox -s demo` deploys a defective API and fails its tests; `nox -s demo -- --keep`
    leaves the environment for a look (`envci teardown --env NAME` removes it).
    """
    install(session)
    system_deps(session, "node", "images")
    path = local_cluster(session)
    bin_dir = session.run("bash", "envci/localcluster/build.sh", "--print-dir", external=True, silent=True)
    env = {"KUBECONFIG": path, "PATH": f"{str(bin_dir).strip()}{os.pathsep}{os.environ['PATH']}", **demo_environment(dict(os.environ))}
    # Nothing is pulled on the local cluster: the project's images (the demo's among them) are built
    # offline, once and then cached, and imported into its node when it lacks them.
    session.run("python", "-m", "envci.images", "load")
    session.chdir("examples/demo")
    session.run("python", "-m", "envci.cli", "up", *session.posargs, env=env)


@nox.session
def ci(session: nox.Session) -> None:
    """What a CI pipeline runs: one envci command per stage, teardown always, on the local cluster.

    The CI context (GITHUB_*, CI_* of GitLab, BUILD_NUMBER/CHANGE_ID of Jenkins, or ENVCI_BRANCH/ENVCI_PR
    locally) comes from the environment, as in a real pipeline. `-- DIR` picks the app (default
    examples/demo). Fails with the first failing stage's exit code in its message.
    """
    import subprocess

    install(session)
    system_deps(session, "node", "images")
    workdir = session.posargs[0] if session.posargs else "examples/demo"
    kubeconfig = local_cluster(session)
    bin_dir = session.run("bash", "envci/localcluster/build.sh", "--print-dir", external=True, silent=True)
    python = str(Path(session.bin) / "python")
    env = {
        **os.environ,
        "KUBECONFIG": kubeconfig,
        "PATH": f"{session.bin}{os.pathsep}{str(bin_dir).strip()}{os.pathsep}{os.environ['PATH']}",
        **demo_environment(dict(os.environ)),
    }

    def envci(stage: str) -> int:
        session.log(f"envci {stage}")
        return subprocess.call([python, "-m", "envci.cli", stage], cwd=workdir, env=env)

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


@nox.session
def bench(session: nox.Session) -> None:
    """envci beside a hand-written kubectl/helm baseline on the local cluster (bench/): two stacks, N
    environments at once, the janitor, CLI start-up. Median and spread as Markdown; `-- --json PATH`,
    `-- --quick` (a few minutes), `-- --runs N`, `-- --nodes simulated|real`. See README, Performance."""
    install(session)
    args = session.posargs
    nodes = args[args.index("--nodes") + 1] if "--nodes" in args[:-1] else "simulated"
    if nodes == "real":
        system_deps(session, "node", "images")
    local_cluster(session, *([] if nodes == "real" else ["--nodes", "simulated"]))
    if nodes == "real":
        session.run("python", "-m", "envci.images", "load")  # the stacks' busybox image, never pulled
    session.run("python", "-m", "bench", *args)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the package, tests, the benchmark harness, the action helper and the demo app; mypy over envci/."""
    install(session)
    session.run("python", "-m", "ruff", "check", "envci", "tests", "bench", "actions", "examples", "noxfile.py")
    typecheck(session)
