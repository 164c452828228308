"""Publish an environment's outputs where each CI system reads them.

Every system gets the same variables (`flat_outputs`) in `<output dir>/outputs.env`, which GitLab
reads as a dotenv report and the Jenkins steps read into `env`, and in `outputs.json` for scripts.
On GitHub the same variables also go to `$GITHUB_ENV` (later steps of the job see them) and the
step outputs `name`, `namespace`, `url`, `urls` to `$GITHUB_OUTPUT`.

The output and report folders sit at the root of the build's checkout in every CI system (the
working directory outside CI), so one envci.yaml gives the same files wherever it runs.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

from envci.ci.detect import workspace

OUTPUT_DIR = ".envci"
REPORT_DIR = "envci-report"


def env_key(name: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_")


def first_url(urls: Mapping[str, str]) -> str:
    """The environment's main URL: that of the first exposed component in envci.yaml."""
    return next(iter(urls.values()), "")


def flat_outputs(name: str, namespace: str, urls: Mapping[str, str]) -> dict[str, str]:
    out = {"ENVCI_NAME": name, "ENVCI_NAMESPACE": namespace, "ENVCI_URLS": json.dumps(dict(urls), sort_keys=True)}
    for comp, url in urls.items():
        out[f"ENVCI_URL_{env_key(comp)}"] = url
    if urls:
        out["ENVCI_URL"] = first_url(urls)
    return out


def step_outputs(name: str, namespace: str, urls: Mapping[str, str]) -> dict[str, str]:
    """GitHub step outputs of provision (and of the actions that report an environment)."""
    return {"name": name, "namespace": namespace, "url": first_url(urls), "urls": json.dumps(dict(urls), sort_keys=True)}


def _in_workspace(env: Mapping[str, str], override: str, default: str) -> Path:
    if env.get(override):
        return Path(env[override])
    root = workspace(env)
    return Path(root) / default if root else Path(default)


def output_dir(env: Mapping[str, str]) -> Path:
    """`$ENVCI_OUTPUT_DIR`, else `.envci` at the root of the checkout."""
    return _in_workspace(env, "ENVCI_OUTPUT_DIR", OUTPUT_DIR)


def report_dir(env: Mapping[str, str]) -> Path:
    """`$ENVCI_REPORT_DIR`, else `envci-report` at the root of the checkout (`envci test --output-dir` overrides it)."""
    return _in_workspace(env, "ENVCI_REPORT_DIR", REPORT_DIR)


def write_outputs(name: str, namespace: str, urls: Mapping[str, str], env: Mapping[str, str] | None = None) -> Path:
    """outputs.env and outputs.json; provision writes them before it creates anything (with no
    URLs yet), so a job that reads them after a failed provision still learns the environment's name."""
    env = os.environ if env is None else env
    d = output_dir(env)
    d.mkdir(parents=True, exist_ok=True)
    flat = flat_outputs(name, namespace, urls)
    (d / "outputs.env").write_text("".join(f"{k}={v}\n" for k, v in flat.items()), encoding="utf-8")
    (d / "outputs.json").write_text(
        json.dumps({"name": name, "namespace": namespace, "url": first_url(urls), "urls": dict(urls)}, indent=2, sort_keys=True) + "\n",
        encoding="utf-8",
    )
    return d


def publish(name: str, namespace: str, urls: Mapping[str, str], env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    d = write_outputs(name, namespace, urls, env)
    for var, lines in (("GITHUB_OUTPUT", step_outputs(name, namespace, urls)), ("GITHUB_ENV", flat_outputs(name, namespace, urls))):
        path = env.get(var)
        if path:
            with open(path, "a", encoding="utf-8") as f:
                f.write("".join(f"{k}={v}\n" for k, v in lines.items()))
    return d
