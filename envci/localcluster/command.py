"""`envci cluster up|down|status|kubeconfig|load-image`: the local cluster from the command line.

Progress goes to stderr; stdout carries only the result, so `export KUBECONFIG=$(envci cluster up)`
works (the kubeconfig path is the last line `up` prints).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from envci.errors import ConfigError, EnvciError, ExitCode
from envci.localcluster import cluster, spec

ACTIONS = ("up", "down", "status", "kubeconfig", "load-image")


def _format_status(info: dict[str, Any]) -> str:
    processes = info.get("node_processes") or {}
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items()) or "unknown"
    nodes = ", ".join(f"{n['name']} ({'Ready' if n['ready'] else 'NotReady'})" for n in info["nodes"]) or "none"
    lines = [
        f"cluster:    {info['name']} ({info.get('flavour', 'real')} nodes, {'running' if info['running'] else 'not running'})",
        f"server:     {info['server'] or '-'}",
        f"kubeconfig: {info['kubeconfig'] or '-'}",
        f"nodes:      {nodes}",
        f"versions:   {versions}",
        *(["node:       " + ", ".join(f"{n} {'pid ' + str(p) if p else 'NOT RUNNING'}" for n, p in processes.items())] if processes else []),
        *([f"network:    pods {info['network']['pods']}, services {info['network']['services']}, "
           f"load balancers {info['network']['load_balancers']} (bridge {info['network']['bridge']})"] if info.get("network") else []),
        f"binaries:   {info['binaries']}"
        + (f" (missing: {', '.join(info['binaries_missing'])})" if info["binaries_missing"] else ""),
    ]
    return "\n".join(lines)


def _up(output: str, flavour: str) -> int:
    path = cluster.up(cluster.Settings(flavour=flavour))
    if output == "json":
        print(json.dumps(cluster.status(flavour), indent=2))
    else:
        print(path)
    return ExitCode.OK


def _down(output: str, flavour: str) -> int:
    cluster.down(cluster.Settings(flavour=flavour))
    if output == "json":
        print(json.dumps({"name": spec.cluster_name(flavour), "flavour": flavour, "running": False}))
    return ExitCode.OK


def _status(output: str, flavour: str) -> int:
    info = cluster.status(flavour)
    print(json.dumps(info, indent=2) if output == "json" else _format_status(info))
    # Scripts can ask "is it up?" with the exit code alone.
    return ExitCode.OK if info["running"] else ExitCode.NOT_READY


def _kubeconfig(output: str, flavour: str) -> int:
    path = cluster.kubeconfig_path(flavour)
    if not path.is_file():
        flag = "" if flavour == "real" else f" --nodes {flavour}"
        print(f"error: the local cluster is not running (no {path})\n  hint: run `envci cluster up{flag}`", file=sys.stderr)
        return ExitCode.NOT_READY
    print(json.dumps({"kubeconfig": str(path)}) if output == "json" else path)
    return ExitCode.OK


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _load_image(archives: Sequence[str], output: str, flavour: str) -> int:
    """Validate every archive, then import each into the real node's containerd."""
    from envci.images import containerd

    if not archives:
        raise ConfigError("load-image needs at least one archive", field="ARCHIVE", hint="envci cluster load-image image.tar [more.tar ...] (docker save or OCI layout)")
    loaded = containerd.load_archives(
        [Path(a) for a in archives], cluster.containerd_socket(), containerd.default_ctr(), progress=_stderr
    )
    rows = [{"archive": str(path), "images": list(image.names)} for path, images in loaded.items() for image in images]
    if output == "json":
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(f"{', '.join(row['images']) or '(unnamed image)'}\t{row['archive']}")
    return ExitCode.OK


HANDLERS = {"up": _up, "down": _down, "status": _status, "kubeconfig": _kubeconfig}


def main(action: str, output: str = "text", archives: Sequence[str] = (), flavour: str = "real") -> int:
    """Run one cluster action; returns an `ExitCode` (errors are printed, not raised)."""
    handler = partial(_load_image, archives) if action == "load-image" else HANDLERS.get(action)
    if archives and action != "load-image":
        print(f"error: `cluster {action}` takes no archive arguments; did you mean `cluster load-image`?", file=sys.stderr)
        return ExitCode.BAD_INPUT
    if handler is None:
        print(f"error: unknown cluster action {action!r}; expected one of {', '.join(ACTIONS)}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    try:
        if action == "load-image" and flavour != "real":
            print("error: images are loaded into the real node only; the simulated nodes run no container", file=sys.stderr)
            return ExitCode.BAD_INPUT
        return int(handler(output, flavour))
    except EnvciError as e:
        print(f"error: {e}", file=sys.stderr)
        return int(e.exit_code)
    except KeyboardInterrupt:
        return ExitCode.CANCELLED


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m envci.localcluster.command", description=__doc__)
    parser.add_argument("action", choices=ACTIONS)
    parser.add_argument("archives", nargs="*", metavar="ARCHIVE", help="load-image: image archives (docker save or OCI layout)")
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")
    parser.add_argument("--nodes", choices=("real", "simulated"), default="real", help="which local cluster")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = _parse(None)
    sys.exit(main(args.action, args.output, args.archives, flavour=args.nodes))
