"""Run one envci command as a GitHub Actions step.

The composite actions in actions/ call this file and nothing else: it installs envci (from the
action's own source by default, or a given version), runs `envci <stage> --output json`, and turns
the result into what GitHub shows: step outputs, a step summary, `::error` annotations that name the
file, line or workload, and `::add-mask::` for credentials. envci's exit code is the step's exit
code, so a failing test fails the job. Standard library only: it runs before envci is installed.

Before the stage, two small commands prepare the install: `find-python` names a Python >= 3.11 on
the runner (the actions run actions/setup-python only when there is none), and `prepare`, run by that
Python, names the virtualenv and the key actions/cache keeps it under. The container action
(actions/docker) runs this same file inside the envci image, with the envci it holds.

Inputs arrive as environment variables (ENVCI_STEP_*), never spliced into a script, so a branch
name or a PR title cannot inject shell code.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import venv
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

STAGES = ("provision", "wait-ready", "seed", "test", "teardown", "status")
MIN_PYTHON = (3, 11)
"""envci's `requires-python`: GitHub's ubuntu-22.04 runners have 3.10, so the actions set one up."""
PYTHON_NAMES = ("python3", "python3.13", "python3.12", "python3.11", "python")
EXIT_MEANING = {
    0: "succeeded",
    1: "tests failed",
    2: "bad input (envci.yaml, a file it names, or a flag)",
    3: "the environment did not become ready",
    4: "infrastructure error",
    5: "superseded by a newer build",
    130: "cancelled",
}
MAX_ANNOTATIONS = 10
# kubeconfig keys whose values are credentials: masked so no later log line can show them.
_CREDENTIAL_KEYS = re.compile(
    r"^\s*-?\s*(token|client-key-data|client-certificate-data|password|id-token|refresh-token|client-secret)\s*:\s*[\"']?([^\"'\s]+)",
    re.MULTILINE,
)
_FROM_ENV = re.compile(r"from_env\s*:\s*[\"']?([A-Za-z_][A-Za-z0-9_]*)")


# --- pure: what to print ---------------------------------------------------------------------------


def escape_data(text: str) -> str:
    """Workflow-command message escaping: a newline must not end the command early."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_command(kind: str, message: str, **props: Any) -> str:
    given = [f"{k}={escape_property(str(v))}" for k, v in props.items() if v not in (None, "")]
    return f"::{kind}{(' ' + ','.join(given)) if given else ''}::{escape_data(message)}"


def relative_file(path: str, workspace: str, cwd: str | None = None) -> str:
    """Annotations need a path relative to the repository root to attach to the file. envci names
    files as it was given them, relative to the directory it ran in (the working directory)."""
    if workspace:
        full = path if os.path.isabs(path) else os.path.join(cwd or os.getcwd(), path)
        try:
            rel = os.path.relpath(full, workspace)
        except ValueError:
            return path
        if not rel.startswith(".."):
            return rel
        return path if os.path.isabs(path) else os.path.normpath(path)
    return os.path.normpath(path)


def annotations(stage: str, payload: Mapping[str, Any], exit_code: int, workspace: str = "") -> list[str]:
    """`::error` lines for a failed stage: one per config problem (file, line) or failing workload."""
    if exit_code == 0:
        return []
    title = f"envci {stage}"
    out: list[str] = []
    for err in payload.get("errors") or []:
        message = ": ".join(x for x in (err.get("field"), err.get("message")) if x)
        if err.get("hint"):
            message += f"\nhint: {err['hint']}"
        out.append(workflow_command("error", message, title=title, file=relative_file(err["file"], workspace) if err.get("file") else None, line=err.get("line")))
    for f in payload.get("failures") or []:
        # wait-ready names a component's workload; test names a suite and a test case.
        what = " ".join(x for x in (f.get("component"), f.get("workload")) if x) or " > ".join(
            str(x) for x in (f.get("suite"), f.get("test")) if x
        ) or "?"
        reason = ": ".join(str(x) for x in (f.get("reason"), f.get("message")) if x)
        message = f"{what}: {reason}" if reason else what
        events = f.get("events") or []
        if events:
            message += "\n" + "\n".join(events[-3:])
        out.append(workflow_command("error", message, title=f"{title}: {what}"))
    if len(out) > MAX_ANNOTATIONS:  # GitHub shows only the first few per step anyway
        out = out[: MAX_ANNOTATIONS - 1] + [workflow_command("error", f"...and {len(out) - MAX_ANNOTATIONS + 1} more: see the log", title=title)]
    if not out:
        message = payload.get("error") or f"envci {stage} failed: {EXIT_MEANING.get(exit_code, f'exit code {exit_code}')}"
        if payload.get("hint"):
            message += f"\nhint: {payload['hint']}"
        out.append(workflow_command("error", message, title=title))
    return out


def summary(stage: str, payload: Mapping[str, Any], exit_code: int) -> str:
    """Markdown for the job summary page."""
    verdict = "succeeded" if exit_code == 0 else f"failed (exit {exit_code}: {EXIT_MEANING.get(exit_code, 'error')})"
    lines = [f"### {'✅' if exit_code == 0 else '❌'} envci {stage} {verdict}", ""]
    rows = [(k, payload[k]) for k in ("name", "namespace") if payload.get(k)]
    urls = payload.get("urls") or {}
    if rows or urls:
        lines += ["| | |", "|---|---|"]
        lines += [f"| {k} | `{v}` |" for k, v in rows]
        lines += [f"| {comp} | {url} |" for comp, url in urls.items()]
        lines.append("")
    if exit_code and payload.get("error"):
        lines += ["```", str(payload["error"]).strip(), "```", ""]
        if payload.get("hint"):
            lines += [f"hint: {payload['hint']}", ""]
    return "\n".join(lines) + "\n"


def step_outputs(payload: Mapping[str, Any], exit_code: int) -> dict[str, str]:
    out = {"exit-code": str(exit_code)}
    for key in ("name", "namespace", "url"):
        if isinstance(payload.get(key), str):
            out[key] = payload[key]
    if isinstance(payload.get("urls"), dict):
        out["urls"] = json.dumps(payload["urls"], sort_keys=True)
    return out


def secrets_to_mask(kubeconfig_text: str, config_text: str, env: Mapping[str, str]) -> list[str]:
    """Credential values in the kubeconfig, and the values of env vars envci.yaml reads secrets from."""
    values = [m.group(2) for m in _CREDENTIAL_KEYS.finditer(kubeconfig_text)]
    for name in _FROM_ENV.findall(config_text):
        values += [line for line in env.get(name, "").splitlines() if line.strip()]
    return [v for v in dict.fromkeys(values) if len(v) >= 4]


def install_spec(version: str, source: str) -> str:
    """What pip installs: the action's own source, `envci==<version>`, or a requirement as given."""
    version = version.strip()
    if version in ("", "source"):
        return source
    if re.fullmatch(r"v?\d[\w.+-]*", version):
        return f"envci=={version.lstrip('v')}"
    return version


def envci_args(stage: str, env: Mapping[str, str], kubeconfig: str | None) -> list[str]:
    args = [stage, "--output", "json"]
    if env.get("ENVCI_STEP_CONFIG"):
        args += ["--config", env["ENVCI_STEP_CONFIG"]]
    if env.get("ENVCI_STEP_ENV"):
        args += ["--env", env["ENVCI_STEP_ENV"]]
    if kubeconfig:
        args += ["--kubeconfig", kubeconfig]
    return args + shlex.split(env.get("ENVCI_STEP_ARGS", ""))


def parse_payload(stdout: str) -> dict[str, Any]:
    try:
        data = json.loads(stdout)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


# --- I/O ---------------------------------------------------------------------------------------------


def _append(path: str | None, text: str) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)


def source_digest(source: Path) -> str:
    """Content hash of an envci source tree: the same code installs once, whatever path it sits at
    (each action of a workflow is checked out to its own folder)."""
    h = hashlib.sha256()
    files = [source / "pyproject.toml", *sorted((source / "envci").rglob("*"))]
    for f in files:
        if f.is_file() and "__pycache__" not in f.parts:
            h.update(str(f.relative_to(source)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def python_at_least(exe: str, minimum: tuple[int, int] = MIN_PYTHON) -> bool:
    try:
        done = subprocess.run([exe, "-c", f"import sys; sys.exit(sys.version_info[:2] < {minimum!r})"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def find_python(env: Mapping[str, str]) -> str:
    """A Python >= 3.11 on PATH (this one first), or "" when the runner has none."""
    if sys.version_info[:2] >= MIN_PYTHON:
        return sys.executable
    for name in PYTHON_NAMES:
        found = shutil.which(name, path=env.get("PATH"))
        if found and python_at_least(found):
            return found
    return ""


def install_root(env: Mapping[str, str]) -> tuple[str, Path]:
    """What pip installs, and the virtualenv it goes to: in the runner's tool cache, keyed by the
    source's content or the requirement and by this Python's version (a virtualenv is bound to its
    interpreter), so the same key means the same install on any runner."""
    source = Path(env.get("ENVCI_STEP_ACTION_PATH") or Path(__file__).parent).resolve().parent.parent
    spec = install_spec(env.get("ENVCI_STEP_VERSION", ""), str(source))
    key = source_digest(source) if spec == str(source) else hashlib.sha256(spec.encode()).hexdigest()[:16]
    base = Path(env.get("RUNNER_TOOL_CACHE") or env.get("RUNNER_TEMP") or tempfile.gettempdir()) / "envci"
    return spec, base / f"{key}-py{platform.python_version()}"


def cache_key(root: Path) -> str:
    """actions/cache key of a virtualenv: its folder's key, with the system and machine it was built on."""
    return f"envci-{platform.system()}-{platform.machine()}-{root.name}"


def prepare(env: Mapping[str, str]) -> dict[str, str]:
    """Step outputs for the install: the Python to run with, and what actions/cache keeps (nothing
    when envci-version is 'installed')."""
    out = {"python": sys.executable, "cache-path": "", "cache-key": ""}
    if env.get("ENVCI_STEP_VERSION", "").strip() != "installed":
        _, root = install_root(env)
        out.update({"cache-path": str(root), "cache-key": cache_key(root)})
    return out


def install(env: Mapping[str, str]) -> str:
    """Path of an envci executable of the requested version, installed once per runner and version.

    The virtualenv lives in the runner's tool cache (kept between jobs on self-hosted runners, and
    restored by actions/cache on hosted ones); a lock keeps two jobs on one machine from installing at
    once. A restored virtualenv whose interpreter is gone is made anew.
    """
    version = env.get("ENVCI_STEP_VERSION", "").strip()
    if version == "installed":
        found = shutil.which("envci")
        if not found:
            print(workflow_command("error", "envci-version is 'installed' but no envci is on PATH", title="envci install"), flush=True)
            raise SystemExit(4)
        return found
    spec, root = install_root(env)
    exe = root / "bin" / "envci"
    marker = root / ".installed"
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and exe.exists() and (root / "bin" / "python").exists():
            return str(exe)
        print(f"::group::install envci ({spec})", flush=True)
        # System site packages: whatever the runner already has (kubernetes, pydantic, ...) is reused.
        venv.EnvBuilder(with_pip=True, system_site_packages=True, clear=True).create(root)
        cmd = [str(root / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", spec]
        done = subprocess.run(cmd, check=False)
        print("::endgroup::", flush=True)
        if done.returncode != 0 or not exe.exists():
            print(workflow_command("error", f"could not install envci from {spec!r} (pip exit {done.returncode})", title="envci install"), flush=True)
            raise SystemExit(4)
        marker.write_text(spec + "\n", encoding="utf-8")
    return str(exe)


@contextmanager
def _kubeconfig_file(env: Mapping[str, str]) -> Iterator[str | None]:
    """The kubeconfig to use; content from a secret lives in a private file for this step only."""
    content = env.get("ENVCI_STEP_KUBECONFIG_CONTENT", "")
    if not content.strip():
        yield env.get("ENVCI_STEP_KUBECONFIG") or None
        return
    # RUNNER_TEMP names a folder of the runner's host, which a container action does not see.
    temp = env.get("RUNNER_TEMP")
    fd, path = tempfile.mkstemp(prefix="envci-kubeconfig-", dir=temp if temp and os.path.isdir(temp) else None)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:  # mkstemp: mode 0600
            f.write(content)
        yield path
    finally:
        os.unlink(path)


def _read(path: str | None) -> str:
    try:
        return Path(path).read_text(encoding="utf-8") if path else ""
    except OSError:
        return ""


def run_stage(stage: str, env: Mapping[str, str]) -> int:
    exe = install(env)
    if env.get("ENVCI_STEP_WORKING_DIRECTORY"):  # the container action; composite steps set their own
        os.chdir(env["ENVCI_STEP_WORKING_DIRECTORY"])
    with _kubeconfig_file(env) as kubeconfig:
        for value in secrets_to_mask(
            _read(kubeconfig or env.get("KUBECONFIG")), _read(env.get("ENVCI_STEP_CONFIG") or "envci.yaml"), env
        ):
            print(f"::add-mask::{value}", flush=True)
        # Progress goes to stderr live; the JSON result on stdout is what the step reads.
        done = subprocess.run([exe, *envci_args(stage, env, kubeconfig)], stdout=subprocess.PIPE, text=True, check=False)
    payload = parse_payload(done.stdout)
    if done.stdout.strip():
        print(f"::group::envci {stage} result", flush=True)
        print(done.stdout.rstrip(), flush=True)
        print("::endgroup::", flush=True)
    for line in annotations(stage, payload, done.returncode, env.get("GITHUB_WORKSPACE", "")):
        print(line, flush=True)
    _append(env.get("GITHUB_OUTPUT"), "".join(f"{k}={v}\n" for k, v in step_outputs(payload, done.returncode).items()))
    if stage != "test" or not payload.get("counts"):  # `envci test` writes its own, fuller summary
        _append(env.get("GITHUB_STEP_SUMMARY"), summary(stage, payload, done.returncode))
    return done.returncode


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1 or argv[0] not in (*STAGES, "install", "find-python", "prepare"):
        print(f"usage: envci_step.py {{{'|'.join(STAGES)}|install|find-python|prepare}}", file=sys.stderr)
        return 2
    if argv[0] == "install":
        install(os.environ)
        return 0
    if argv[0] in ("find-python", "prepare"):
        out = {"python": find_python(os.environ)} if argv[0] == "find-python" else prepare(os.environ)
        print("\n".join(f"{k}: {v or '(none)'}" for k, v in out.items()), flush=True)
        _append(os.environ.get("GITHUB_OUTPUT"), "".join(f"{k}={v}\n" for k, v in out.items()))
        return 0
    return run_stage(argv[0], os.environ)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
