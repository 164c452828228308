"""Publish an environment's outputs where each CI system reads them.

GitHub reads `$GITHUB_OUTPUT`; GitLab reads a dotenv report and Jenkins an env file, both served by
`<output dir>/outputs.env`; every system also gets `outputs.json` for scripts.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path


def env_key(name: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_")


def flat_outputs(name: str, namespace: str, urls: Mapping[str, str]) -> dict[str, str]:
    out = {"ENVCI_NAME": name, "ENVCI_NAMESPACE": namespace, "ENVCI_URLS": json.dumps(dict(urls), sort_keys=True)}
    for comp, url in urls.items():
        out[f"ENVCI_URL_{env_key(comp)}"] = url
    if urls:
        out["ENVCI_URL"] = next(iter(urls.values()))
    return out


def output_dir(env: Mapping[str, str]) -> Path:
    return Path(env.get("ENVCI_OUTPUT_DIR", ".envci"))


def publish(name: str, namespace: str, urls: Mapping[str, str], env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    flat = flat_outputs(name, namespace, urls)
    d = output_dir(env)
    d.mkdir(parents=True, exist_ok=True)
    (d / "outputs.env").write_text("".join(f"{k}={v}\n" for k, v in flat.items()), encoding="utf-8")
    (d / "outputs.json").write_text(
        json.dumps({"name": name, "namespace": namespace, "urls": dict(urls)}, indent=2, sort_keys=True) + "\n",
        encoding="utf-8",
    )
    gh = env.get("GITHUB_OUTPUT")
    if gh:
        with open(gh, "a", encoding="utf-8") as f:
            f.write(f"name={name}\nnamespace={namespace}\nurls={json.dumps(dict(urls), sort_keys=True)}\n")
    return d
