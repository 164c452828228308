"""Import image archives into the local cluster's containerd with `ctr`, and only what is missing.

Kubernetes finds an image on the node by name in containerd's `k8s.io` namespace, so "loading" an image
is `ctr -n k8s.io images import` of its archive. Every archive is validated (`reader.read_archive`) before
the first import, so a bad file among several loads nothing. `ensure_loaded` asks containerd what it has
and imports only the archives that bring something new: an image it lacks, or one it holds under the same
name with other content (a rebuilt `envci.local/envci:<version>` after a source change keeps its tag).
`envci cluster up` calls it for the sandbox and DNS images on every start, and it costs a few `ctr` calls
when they are there.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from envci.errors import InfrastructureError, NotReadyError
from envci.images.reader import ArchiveImage, read_archive

NAMESPACE = "k8s.io"
"""The containerd namespace the kubelet's CRI plugin uses; images elsewhere are invisible to pods."""

LIST_TIMEOUT = 60.0
IMPORT_TIMEOUT = 900.0
"""Seconds; importing (and unpacking) a few hundred MB takes tens of seconds on a slow disk."""

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


def default_containerd_socket() -> Path:
    """Where the local cluster's real node serves containerd."""
    return Path("/run/envci/envci/containerd/containerd.sock")


def default_ctr() -> Path:
    """`ctr` from the local cluster's bin dir (built with containerd itself, so their APIs match)."""
    from envci.localcluster.cluster import binaries_dir

    return binaries_dir() / "ctr"


def normalize_reference(name: str) -> str:
    """The name containerd stores for `name`: `busybox` -> `docker.io/library/busybox:latest`.

    A first path component with a `.` or `:`, or `localhost`, is a registry; otherwise Docker Hub is implied.
    """
    if "@" in name:
        path, tag = name, ""
    else:
        last = name.rsplit("/", 1)[-1]
        path, tag = (name, "") if ":" in last else (name, ":latest")
    first, _, rest = path.partition("/")
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        path = f"docker.io/{path}" if rest else f"docker.io/library/{path}"
    return path + tag


def archives_to_import(
    contents: Mapping[Path, Sequence[ArchiveImage]], present: Iterable[str], stored_configs: Mapping[str, str] | None = None
) -> list[Path]:
    """Archives holding at least one named image containerd lacks or holds with another config, in the order given.

    `stored_configs` maps a stored name to its config digest where known; a name missing from it is
    taken to be up to date. An archive with no named image cannot be checked by name, so it is always
    imported.
    """
    have = {normalize_reference(n) for n in present}
    configs = {normalize_reference(n): d for n, d in (stored_configs or {}).items()}
    out = []
    for path, images in contents.items():
        named = [(normalize_reference(n), i.config_digest) for i in images for n in i.names]
        stale = any(n not in have or configs.get(n, digest) != digest for n, digest in named)
        if not named or stale:
            out.append(path)
    return out


def _ctr(ctr: Path, socket: Path, *args: str) -> list[str]:
    return [str(ctr), "--address", str(socket), "--namespace", NAMESPACE, *args]


def _check_node(socket: Path, ctr: Path) -> None:
    if not socket.exists():
        raise NotReadyError(
            f"the local cluster's real node is not running (no containerd socket at {socket})",
            hint="run `envci cluster up`",
        )
    if not ctr.is_file():
        raise InfrastructureError(f"ctr is not built (no {ctr})", hint="build the local cluster's binaries: bash envci/localcluster/build.sh")


def _call(cmd: list[str], what: str, timeout: float, run: Runner) -> str:
    try:
        result = run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise InfrastructureError(f"{what} did not finish in {timeout:.0f} s", hint="check that containerd is healthy: envci cluster status") from None
    except OSError as e:
        raise InfrastructureError(f"cannot run {cmd[0]} ({e})", hint="build the local cluster's binaries: bash envci/localcluster/build.sh") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()[-800:]
        raise InfrastructureError(f"{what} failed (exit {result.returncode}): {detail}", hint="check that containerd is healthy: envci cluster status")
    return result.stdout


def list_images(socket: Path, ctr: Path, *, run: Runner = subprocess.run) -> set[str]:
    """Names of the images containerd holds in the `k8s.io` namespace."""
    _check_node(socket, ctr)
    try:
        out = _call(_ctr(ctr, socket, "images", "ls", "-q"), "listing containerd's images", LIST_TIMEOUT, run)
    except InfrastructureError as e:
        if "connection refused" in e.message:  # a socket left by a node that stopped (or a reboot)
            raise NotReadyError(f"the local cluster's real node is not running (nothing answers on {socket})", hint="run `envci cluster up`") from None
        raise
    return {line.strip() for line in out.splitlines() if line.strip()}


def stored_config_digests(names: Iterable[str], socket: Path, ctr: Path, *, run: Runner = subprocess.run) -> dict[str, str]:
    """The config digest of each of `names` that containerd holds as a single-platform image.

    The config digest is the image's identity (the kubelet's image ID). A multi-platform image (an
    index) is left out: which of its platforms runs is containerd's choice, so it is never called stale.
    """
    wanted = {normalize_reference(n) for n in names}
    if not wanted:
        return {}
    listing = _call(_ctr(ctr, socket, "images", "ls"), "listing containerd's images", LIST_TIMEOUT, run)
    targets = {}
    for line in listing.splitlines()[1:]:  # REF TYPE DIGEST SIZE PLATFORMS LABELS
        fields = line.split()
        if len(fields) >= 3 and fields[0] in wanted and fields[2].startswith("sha256:"):
            targets[fields[0]] = fields[2]
    out = {}
    for name, target in targets.items():
        try:
            blob = _call(_ctr(ctr, socket, "content", "get", target), f"reading the manifest of {name}", LIST_TIMEOUT, run)
            config = (json.loads(blob).get("config") or {}).get("digest")
        except (InfrastructureError, ValueError, AttributeError):
            continue  # unknown: taken to be up to date, as before this check existed
        if isinstance(config, str):
            out[name] = config
    return out


def import_archive(archive: Path, socket: Path, ctr: Path, *, run: Runner = subprocess.run) -> None:
    """Import one archive (all platforms it holds, unpacked for the kubelet)."""
    _check_node(socket, ctr)
    _call(_ctr(ctr, socket, "images", "import", "--all-platforms", str(archive)), f"importing {archive}", IMPORT_TIMEOUT, run)


def load_archives(
    archives: Sequence[Path], socket: Path, ctr: Path, *, run: Runner = subprocess.run, progress: Callable[[str], None] = lambda _m: None
) -> dict[Path, list[ArchiveImage]]:
    """Validate every archive, then import each; returns what each held. A bad archive loads nothing."""
    contents = {Path(a): read_archive(Path(a)) for a in archives}
    _check_node(socket, ctr)
    for path, images in contents.items():
        progress(f"importing {path} ({path.stat().st_size / 1e6:.1f} MB): {', '.join(n for i in images for n in i.names) or 'unnamed images'}")
        import_archive(path, socket, ctr, run=run)
    return contents


def ensure_loaded(
    images: Sequence[Path], socket: Path, ctr: Path, *, run: Runner = subprocess.run, progress: Callable[[str], None] = lambda _m: None
) -> list[Path]:
    """Import those of the archives `images` whose images containerd lacks, or holds with other
    content under the same name; returns the archives imported.

    `images` are archive paths, e.g. `envci.images.build.build(Sources(), only=[...])`'s result.
    """
    contents = {Path(a): read_archive(Path(a)) for a in images}
    present = list_images(socket, ctr, run=run)
    have = {normalize_reference(n) for n in present}
    held = [n for imgs in contents.values() for i in imgs for n in i.names if normalize_reference(n) in have]
    todo = archives_to_import(contents, present, stored_config_digests(held, socket, ctr, run=run))
    for path in todo:
        progress(f"importing {path} ({path.stat().st_size / 1e6:.1f} MB)")
        import_archive(path, socket, ctr, run=run)
    return todo
