"""`python -m envci.images build|load|list [--print] [--only NAME]...`: the project's images, built offline.

build: build (or find in the cache) the archives; stdout carries only their paths, one a line, so
`ctr images import $(python -m envci.images build)` and `envci cluster load-image $(...)` work.
load: build, then import into the local cluster's real node those images it does not hold yet, or holds
from an older build under the same tag.
list: the images the project builds. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from envci.errors import EnvciError, ExitCode
from envci.images import build as builder
from envci.images.definitions import IMAGES


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m envci.images", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("build", "load", "list"), help="build or find the archives (load: and import the missing ones into the local node)")
    parser.add_argument("--print", action="store_true", help="print the archive paths (built or not) and exit")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="build only this image (repeatable)")
    parser.add_argument("--bin-dir", type=Path, default=None, help="the local cluster's bin dir (default: envci/localcluster/build.sh --print-dir)")
    parser.add_argument("--demo-api-dir", type=Path, default=None, help="the demo app's source (default: examples/demo/api)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.action == "list":
        for image in IMAGES:
            print(f"{image.name}\t{image.archive}.tar")
        return ExitCode.OK
    sources = builder.Sources(bin_dir=args.bin_dir, demo_api=args.demo_api_dir)
    try:
        paths = builder.plan(sources, args.only).archive_paths() if args.print else builder.build(sources, args.only)
        if args.action == "load" and not args.print:
            paths = _load(paths)
    except EnvciError as e:
        print(f"error: {e}", file=sys.stderr)
        return int(e.exit_code)
    except KeyboardInterrupt:
        return ExitCode.CANCELLED
    for path in paths:
        print(path)
    return ExitCode.OK


def _load(archives: Sequence[Path]) -> list[Path]:
    """Import into the local cluster's node the archives holding images it lacks; returns those imported."""
    from envci.images import containerd

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    imported = containerd.ensure_loaded(archives, containerd.default_containerd_socket(), containerd.default_ctr(), progress=say)
    if not imported:
        say("the local node holds every image already")
    return imported


if __name__ == "__main__":
    sys.exit(main())
