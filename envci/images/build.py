"""Build the project's images offline and cache them by a key of everything that goes into them.

Two cache levels keep rebuilds cheap:

- `images/layers/<layer>-<key>.tar`: each layer, keyed by its own inputs. The Debian base (about a minute
  of mmdebstrap) is rebuilt only when its package list or strip list changes; envci's own layer only when
  envci's source does.
- `images/<key>/<archive>.tar`: the archives, keyed by every layer key, every image config and this
  builder's own source. `--print` computes the key without building, so scripts can find the archives.

Inputs come from this machine only: Debian's mirror through mmdebstrap, PyPI through pip, gcc, the
`busybox-static` package and the local cluster's bin dir (coredns, helm, kubectl). Progress goes to stderr
with elapsed seconds; nothing runs silently for long.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from envci.errors import ConfigError, InfrastructureError
from envci.images import definitions as d
from envci.images import slim
from envci.images.archive import Image, canonical, write_archive
from envci.images.layer import Blob, LayerContents, write_layer

PACKAGE_DIR = Path(__file__).resolve().parent
REPO = PACKAGE_DIR.parent.parent
FILES = PACKAGE_DIR / "files"
IGNORED_NAMES = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})

Log = Callable[[str], None]


@dataclass(frozen=True)
class Sources:
    """Where the inputs live; tests point these at temporary directories."""

    repo: Path = REPO
    bin_dir: Path | None = None
    """The local cluster's binaries (coredns, helm, kubectl); None: ask `envci/localcluster/build.sh --print-dir`."""
    demo_api: Path | None = None
    """The demo app's source; None: `<repo>/examples/demo/api`."""
    busybox: Path | None = None
    """A static busybox; None: the `busybox-static` package's binary."""
    cache: Path | None = None
    """The cache root; None: `$ENVCI_CACHE_DIR` or `$XDG_CACHE_HOME/envci` or `~/.cache/envci`."""

    def cache_dir(self) -> Path:
        if self.cache:
            return self.cache / "images"
        from envci.cachedir import cache_root

        return cache_root() / "images"

    def bins(self) -> Path:
        if self.bin_dir:
            return self.bin_dir
        out = subprocess.run(["bash", str(self.repo / "envci/localcluster/build.sh"), "--print-dir"], capture_output=True, text=True, check=True, timeout=30)
        return Path(out.stdout.strip())

    def demo_dir(self) -> Path:
        return self.demo_api or self.repo / "examples/demo/api"

    def busybox_binary(self) -> Path:
        if self.busybox:
            return self.busybox
        try:
            listing = subprocess.run(["dpkg", "-L", "busybox-static"], capture_output=True, text=True, timeout=30).stdout
        except OSError:
            listing = ""
        for line in listing.splitlines():
            if line.endswith("/bin/busybox") and os.path.isfile(line):
                return Path(line)
        return Path("/bin/busybox")


# ---------------------------------------------------------------------------------------------------
# Keys: what each layer is made of, hashed.


def digest_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def digest_tree(root: Path, *, ignore: frozenset[str] = IGNORED_NAMES) -> str:
    """A digest of a tree's paths, exec bits, symlink targets and contents (not of mtimes or owners)."""
    if not root.is_dir():
        return "missing"
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(n for n in dirnames if n not in ignore)
        for name in sorted(filenames):
            if name in ignore or name.endswith(".pyc"):
                continue
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                h.update(f"L {rel} {os.readlink(path)}\n".encode())
            elif path.is_file():
                h.update(f"F {rel} {os.access(path, os.X_OK)} {digest_file(path)}\n".encode())
    return h.hexdigest()


def builder_digest() -> str:
    """This package's own source: a change to how images are written rebuilds the archives."""
    return digest_tree(PACKAGE_DIR)


def layer_format_digest() -> str:
    """How a layer tar is written (`layer.py`): a change there rebuilds every layer."""
    return digest_file(PACKAGE_DIR / "layer.py")


def key_of(material: Mapping[str, object]) -> str:
    return hashlib.sha256(canonical(material)).hexdigest()[:20]


def _tool_version(cmd: Sequence[str]) -> str:
    try:
        return subprocess.run(list(cmd), capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "missing"


# ---------------------------------------------------------------------------------------------------
# Running tools without ever going quiet.


@contextmanager
def _heartbeat(log: Log, what: str, every: float = 20.0) -> Iterator[Callable[[], None]]:
    """Say "still <what>" whenever nothing was printed for `every` seconds; yields a "something was said" hook."""
    last = [time.monotonic()]
    start = time.monotonic()
    done = threading.Event()

    def beat() -> None:
        while not done.wait(2.0):
            if time.monotonic() - last[0] >= every:
                log(f"still {what} ({time.monotonic() - start:.0f} s)")
                last[0] = time.monotonic()

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield lambda: last.__setitem__(0, time.monotonic())
    finally:
        done.set()
        thread.join()


def run_tool(cmd: Sequence[str], log: Log, what: str, *, env: Mapping[str, str] | None = None, echo: Callable[[str], bool] = lambda _l: True) -> None:
    """Run a build tool, passing the lines `echo` selects to the log; fail with its last lines."""
    tail: list[str] = []
    with _heartbeat(log, what) as said:
        try:
            proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(env) if env else None)
        except OSError as e:
            raise InfrastructureError(f"cannot run {cmd[0]} ({e})", hint=f"install it: {_INSTALL_HINT}") from None
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            tail = (tail + [line])[-15:]
            if line and echo(line):
                log(f"  {line}")
                said()
        code = proc.wait()
    if code != 0:
        raise InfrastructureError(f"{what} failed (exit {code}):\n  " + "\n  ".join(tail), hint="see the output above; re-run the build once the cause is fixed")


_INSTALL_HINT = "apt-get install -y mmdebstrap busybox-static gcc binutils (scripts/ci-deps/images.sh does it)"


# ---------------------------------------------------------------------------------------------------
# Layers: each has its key material and a function writing it.


@dataclass(frozen=True)
class Ctx:
    sources: Sources
    log: Log
    work: Path
    """A scratch directory, deleted after the build."""


def _base_material(s: Sources) -> dict[str, object]:
    return {
        "suite": d.DEBIAN_SUITE, "mirror": d.DEBIAN_MIRROR, "packages": d.BASE_PACKAGES, "exclude": d.BASE_EXCLUDES,
        "keep": d.BASE_KEEP, "remove": d.BASE_REMOVE, "uid": d.APP_UID, "hook": _customize_hook(), "mmdebstrap": _tool_version(["mmdebstrap", "--version"]),
    }


def _python_base_material(s: Sources) -> dict[str, object]:
    return {
        "suite": d.DEBIAN_SUITE, "mirror": d.DEBIAN_MIRROR, "variant": d.PYTHON_BASE_VARIANT, "packages": d.PYTHON_BASE_PACKAGES,
        "exclude": d.BASE_EXCLUDES, "keep": d.BASE_KEEP, "uid": d.APP_UID, "hook": _python_base_hook(),
        "hook_dirs": [d.MERGED_USR_HOOK], "mmdebstrap": _tool_version(["mmdebstrap", "--version"]),
    }


def _customize_hook(remove: Sequence[str] = d.BASE_REMOVE) -> str:
    globs = " ".join(remove)
    return (
        f'cd "$1" && rm -rf -- {globs} && find etc/ssl/certs -xtype l -delete && '
        f'chroot "$1" useradd --uid {d.APP_UID} --user-group --create-home --home-dir /home/app --shell /usr/sbin/nologin app'
    )


PYTHON_SMOKE_TEST = "import ctypes, sqlite3, ssl, venv; ssl.create_default_context()"
"""Run in the envci image's base after its purge: the modules whose libraries a wrong purge would take away."""


def _python_base_hook() -> str:
    """Purge what the envci image does not run, check that Python still starts, delete the rest, and add
    `app`. The Essential set has no useradd (it is in `passwd`, which would bring PAM back), so `app`'s
    lines are written the way base-passwd wrote the others: no password (`*`, and no shadow file), shell
    /usr/sbin/nologin. That shell went with `login`; a missing shell lets nobody log in either."""
    purge = " && ".join(f'chroot "$1" dpkg --purge --force-remove-essential --force-depends {" ".join(group)}' for group in d.PYTHON_BASE_PURGE)
    uid = d.APP_UID
    return (
        f'cd "$1" && {purge} && chroot "$1" python3 -B -c "{PYTHON_SMOKE_TEST}" && '
        f'rm -rf -- {" ".join(d.PYTHON_BASE_REMOVE)} && find {" ".join(d.PYTHON_BASE_BYTECODE)} -name __pycache__ -prune -exec rm -rf {{}} + && '
        'find etc/ssl/certs -xtype l -delete && '
        f"echo 'app:*:{uid}:{uid}::/home/app:/usr/sbin/nologin' >> etc/passwd && echo 'app:*:{uid}:' >> etc/group && "
        f"cp -a etc/skel home/app && chown -R {uid}:{uid} home/app"
    )


def _mmdebstrap(
    ctx: Ctx, out: Path, layer: str, packages: Sequence[str], hook: str, *, variant: str = "apt", hook_dirs: Sequence[str] = ()
) -> Blob:
    rootfs = ctx.work / f"{layer}.tar"
    cmd = [
        "mmdebstrap", f"--variant={variant}", "--format=tar", f"--include={','.join(packages)}",
        "--aptopt=APT::Install-Recommends \"false\"",
        *[f"--hook-dir={h}" for h in hook_dirs],
        *[f"--dpkgopt=path-exclude=/{p}" for p in d.BASE_EXCLUDES],
        *[f"--dpkgopt=path-include=/{p}" for p in d.BASE_KEEP],
        f"--customize-hook={hook}",
        d.DEBIAN_SUITE, str(rootfs), d.DEBIAN_MIRROR,
    ]
    started = time.monotonic()
    ctx.log(f"{layer}: mmdebstrap {d.DEBIAN_SUITE} with {', '.join(packages)} (about a minute)")
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(946684800)}
    run_tool(cmd, ctx.log, "running mmdebstrap", env=env, echo=lambda line: line.startswith(("I:", "E:", "W:")))
    ctx.log(f"{layer}: mmdebstrap took {time.monotonic() - started:.0f} s; writing the layer")
    contents = LayerContents()
    contents.add_tarball(rootfs, exclude=lambda p: p.startswith("dev/"))
    blob = write_layer(contents, out)
    rootfs.unlink()
    return blob


def _build_base(ctx: Ctx, out: Path) -> Blob:
    return _mmdebstrap(ctx, out, "debian-base", d.BASE_PACKAGES, _customize_hook())


def _build_python_base(ctx: Ctx, out: Path) -> Blob:
    return _mmdebstrap(ctx, out, "python-base", d.PYTHON_BASE_PACKAGES, _python_base_hook(), variant=d.PYTHON_BASE_VARIANT, hook_dirs=(d.MERGED_USR_HOOK,))


def _build_pause(ctx: Ctx, out: Path) -> Blob:
    binary = ctx.work / "pause"
    run_tool(["gcc", "-static", "-Os", "-s", "-Wall", "-Wextra", "-Werror", "-Wl,--build-id=none", "-o", str(binary), str(FILES / "pause.c")], ctx.log, "compiling pause")
    c = LayerContents()
    c.add_file("pause", binary, mode=0o755)
    return write_layer(c, out)


def _is_static(binary: Path) -> bool:
    """A dynamic ELF names its loader (`/lib64/ld-linux-x86-64.so.2`) near the start; a static one does not."""
    with binary.open("rb") as f:
        head = f.read(8192)
    return head.startswith(b"\x7fELF") and b"ld-linux" not in head


def _minimal_etc(c: LayerContents, extra_users: Sequence[tuple[str, int]] = ()) -> None:
    users = [("root", 0, "/root", "/bin/sh"), *((n, u, "/nonexistent", "/sbin/nologin") for n, u in extra_users), ("nobody", 65534, "/nonexistent", "/sbin/nologin")]
    c.add_file("etc/passwd", "".join(f"{n}:x:{u}:{u}:{n}:{h}:{s}\n" for n, u, h, s in users).encode())
    c.add_file("etc/group", "".join(f"{n}:x:{u}:\n" for n, u, _h, _s in users).encode())
    c.add_dir("tmp", mode=0o1777)
    c.add_dir("root", mode=0o700)


def _build_busybox(ctx: Ctx, out: Path) -> Blob:
    binary = ctx.sources.busybox_binary()
    if not binary.is_file() or not _is_static(binary):
        raise ConfigError(f"{binary} is not a static busybox", file=str(binary), hint=f"install Debian's busybox-static: {_INSTALL_HINT}")
    applets = subprocess.run([str(binary), "--list-full"], capture_output=True, text=True, check=True, timeout=30).stdout.split()
    c = LayerContents()
    c.add_file("bin/busybox", binary, mode=0o755)
    for applet in applets:
        if applet != "bin/busybox":
            c.add_symlink(applet, "/bin/busybox")
    _minimal_etc(c)
    c.add_dir("var/www")
    ctx.log(f"busybox: {binary} with {len(applets)} applets")
    return write_layer(c, out)


def _bin(ctx: Ctx, name: str) -> Path:
    path = ctx.sources.bins() / name
    if not os.access(path, os.X_OK):
        raise ConfigError(
            f"{name} is not built yet",
            file=str(path),
            hint="build the local cluster's binaries first: bash envci/localcluster/build.sh (or build the other images with --only)",
        )
    return path


def _build_coredns(ctx: Ctx, out: Path) -> Blob:
    c = LayerContents()
    c.add_file("coredns", _bin(ctx, "coredns"), mode=0o755)
    _minimal_etc(c)
    return write_layer(c, out)


def _build_postgres(ctx: Ctx, out: Path) -> Blob:
    c = LayerContents()
    c.add_file("usr/local/bin/postgres-entrypoint", FILES / "postgres-entrypoint.sh", mode=0o755)
    return write_layer(c, out)


def _build_demo_api(ctx: Ctx, out: Path) -> Blob:
    src = ctx.sources.demo_dir()
    if not src.is_dir():
        raise ConfigError("the demo app's source directory does not exist", file=str(src), hint="write examples/demo/api/ or pass --demo-api-dir")
    c = LayerContents()
    c.add_tree(src, "app", exclude=lambda name: name in IGNORED_NAMES or name.endswith(".pyc"))
    return write_layer(c, out)


def _build_kube_tools(ctx: Ctx, out: Path) -> Blob:
    c = LayerContents()
    for tool in ("helm", "kubectl"):
        c.add_file(f"usr/local/bin/{tool}", _bin(ctx, tool), mode=0o755)
    return write_layer(c, out)


GITHUB_STEP_SOURCE = "actions/_lib/envci_step.py"
ENVCI_SCRIPT = b"#!/usr/bin/python3\nimport sys\n\nfrom envci.cli import main\n\nsys.exit(main())\n"
WHEEL_PLATFORMS = ("manylinux_2_36_x86_64", "manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64")
"""glibc wheels bookworm (glibc 2.36) can load, newest first."""


def _envci_inputs(s: Sources) -> dict[str, object]:
    # The slimming lists live in envci/images/definitions.py, inside the digested tree.
    return {
        "envci": digest_tree(s.repo / "envci"),
        "github_step": _file_or_missing(s.repo / GITHUB_STEP_SOURCE),
        "pyproject": digest_file(s.repo / "pyproject.toml"),
        "python": d.PYTHON_VERSION,
        "platforms": WHEEL_PLATFORMS,
        "strip": _tool_version(["strip", "--version"]),
    }


def _build_envci(ctx: Ctx, out: Path) -> Blob:
    """envci and its dependencies as wheels for Debian's python3, installed under /usr/local."""
    repo = ctx.sources.repo
    src = ctx.work / "envci-src"
    # A copy, so building the wheel leaves no build/ or *.egg-info in the work tree.
    shutil.copytree(repo / "envci", src / "envci", ignore=shutil.ignore_patterns(*IGNORED_NAMES, "*.pyc"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (repo / name).is_file():
            shutil.copy2(repo / name, src / name)
    wheels = ctx.work / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    ctx.log("envci: building the wheel")
    run_tool([*pip, "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(src)], ctx.log, "building envci's wheel", echo=lambda _line: False)
    [wheel] = wheels.glob("envci-*.whl")
    site = ctx.work / "site"
    ctx.log(f"envci: installing {wheel.name} and its dependencies for python {d.PYTHON_VERSION} (wheels from PyPI)")
    platforms = [f"--platform={p}" for p in WHEEL_PLATFORMS]
    run_tool(
        [*pip, "install", "--target", str(site), "--only-binary=:all:", f"--python-version={d.PYTHON_VERSION}", "--implementation=cp",
         *platforms, "--no-compile", "--no-warn-script-location", "--no-warn-conflicts", "--progress-bar=off", str(wheel)],
        ctx.log, "installing envci's dependencies",
        echo=lambda line: line.startswith(("Successfully", "ERROR")),
    )
    shutil.rmtree(site / "bin", ignore_errors=True)  # scripts with this machine's interpreter in their #!
    _drop_direct_urls(site)
    _slim_site(ctx, site)
    c = LayerContents()
    c.add_tree(site, f"usr/local/lib/python{d.PYTHON_VERSION}/dist-packages", exclude=lambda name: name in IGNORED_NAMES or name.endswith(".pyc"))
    c.add_file("usr/local/bin/envci", ENVCI_SCRIPT, mode=0o755)
    c.add_file(d.GITHUB_STEP, repo / GITHUB_STEP_SOURCE, mode=0o644)
    return write_layer(c, out)


def _slim_site(ctx: Ctx, site: Path) -> None:
    """Leave out of the envci image what envci never loads (see the ENVCI_* and AWS_* lists in definitions)."""
    before = _tree_size(site)
    dropped = slim.drop_distributions(site, d.ENVCI_DROPPED_DISTRIBUTIONS, required_by=d.ENVCI_DROPPED_FOR)
    removed = slim.remove_paths(site, d.ENVCI_SITE_REMOVE)
    models = slim.keep_only(site, d.AWS_MODEL_DIRS, d.AWS_SERVICES)
    stripped = slim.strip_debug_info(site, lambda path: run_tool(["strip", "--strip-debug", str(path)], ctx.log, f"stripping {path.name}"))
    slim.refresh_records(site)
    ctx.log(
        f"envci: left out {len(dropped)} distributions ({', '.join(dropped) or 'none of them installed'}), {len(removed)} paths, "
        f"{len(models)} AWS service models and the debug information of {len(stripped)} extension modules: "
        f"{(before - _tree_size(site)) / 1e6:.0f} MB"
    )


def _tree_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _drop_direct_urls(site: Path) -> None:
    """pip records where a local wheel came from (a scratch path that differs on every build): forget it."""
    for record in site.glob("*.dist-info/direct_url.json"):
        record.unlink()
        listing = record.with_name("RECORD")
        if listing.is_file():
            lines = listing.read_text().splitlines(keepends=True)
            listing.write_text("".join(line for line in lines if not line.startswith(f"{record.parent.name}/direct_url.json,")))


@dataclass(frozen=True)
class LayerRecipe:
    """How to make one layer. Its key is `material` + `version` + `layer.py`, not this whole file, so that
    editing one recipe does not re-run mmdebstrap for the base: bump `version` when `build` changes."""

    material: Callable[[Sources], Mapping[str, object]]
    """Everything outside the code that decides the layer's bytes; hashed into its key."""
    build: Callable[[Ctx, Path], Blob]
    version: int = 1


LAYERS: dict[str, LayerRecipe] = {
    "debian-base": LayerRecipe(_base_material, _build_base),
    "python-base": LayerRecipe(_python_base_material, _build_python_base, version=2),
    "pause": LayerRecipe(lambda s: {"source": digest_file(FILES / "pause.c"), "gcc": _tool_version(["gcc", "--version"])}, _build_pause),
    "busybox": LayerRecipe(lambda s: {"busybox": _file_or_missing(s.busybox_binary())}, _build_busybox),
    # The bin dir's name encodes every pinned version, so it keys the binaries without reading them.
    "coredns": LayerRecipe(lambda s: {"bin": str(s.bins() / "coredns")}, _build_coredns),
    "kube-tools": LayerRecipe(lambda s: {"bin": str(s.bins()), "tools": ["helm", "kubectl"]}, _build_kube_tools),
    "postgres": LayerRecipe(lambda s: {"entrypoint": digest_file(FILES / "postgres-entrypoint.sh")}, _build_postgres),
    "demo-api": LayerRecipe(lambda s: {"tree": digest_tree(s.demo_dir())}, _build_demo_api),
    "envci": LayerRecipe(_envci_inputs, _build_envci, version=4),
}


def _file_or_missing(path: Path) -> str:
    return digest_file(path) if path.is_file() else "missing"


# ---------------------------------------------------------------------------------------------------
# Plan and build.


@dataclass(frozen=True)
class Plan:
    key: str
    out_dir: Path
    layer_keys: Mapping[str, str]
    archives: Mapping[str, tuple[d.ImageDef, ...]]

    def archive_paths(self) -> list[Path]:
        return [self.out_dir / f"{stem}.tar" for stem in self.archives]

    def layer_path(self, layer: str) -> Path:
        return self.out_dir.parent / "layers" / f"{layer}-{self.layer_keys[layer]}.tar"


def layer_sizes(p: Plan, name: str) -> dict[str, int]:
    """Layer -> bytes, of one image of the plan as built: the uncompressed layer tars, which is what a node
    stores for it (a layer it shares with another image counted in full). Read from the layer cache, so
    only after `build`."""
    found = [i for images in p.archives.values() for i in images if i.name == name]
    if not found:
        raise ConfigError(f"{name} is not among the images of this build", hint="plan the build with it (--only NAME)")
    sizes = {}
    for layer in found[0].layers:
        path = p.layer_path(layer)
        if not path.is_file():
            raise ConfigError(f"layer {layer} of {name} is not built yet", file=str(path), hint="run `python -m envci.images build` first")
        sizes[layer] = path.stat().st_size
    return sizes


def select(only: Sequence[str] = ()) -> dict[str, tuple[d.ImageDef, ...]]:
    """Archive stem -> images, limited to the images named in `only` (all when empty)."""
    unknown = [n for n in only if n not in {i.name for i in d.IMAGES}]
    if unknown:
        raise ConfigError(f"unknown image(s) {', '.join(unknown)}", field="--only", hint=f"choose from {', '.join(i.name for i in d.IMAGES)}")
    out: dict[str, tuple[d.ImageDef, ...]] = {}
    for stem, images in d.archives().items():
        chosen = tuple(i for i in images if not only or i.name in only)
        if chosen:
            out[stem] = chosen
    return out


def plan(sources: Sources, only: Sequence[str] = ()) -> Plan:
    """Compute every key (hashing inputs, building nothing)."""
    archives = select(only)
    layers = sorted({layer for images in archives.values() for image in images for layer in image.layers})
    builder = builder_digest()
    fmt = layer_format_digest()
    layer_keys = {
        layer: key_of({"layer": layer, "version": LAYERS[layer].version, "format": fmt, **LAYERS[layer].material(sources)}) for layer in layers
    }
    material = {
        "builder": builder,
        "layers": layer_keys,
        "archives": {stem: [[i.name, i.layers, repr(i.config)] for i in images] for stem, images in archives.items()},
    }
    key = key_of(material)
    return Plan(key, sources.cache_dir() / key, layer_keys, archives)


@contextmanager
def _locked(cache: Path) -> Iterator[None]:
    """One build at a time per cache: a second waits, then finds the work done."""
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _cached_layer(p: Plan, layer: str, ctx: Ctx) -> Blob:
    path = p.layer_path(layer)
    meta = path.with_suffix(".json")
    if path.is_file() and meta.is_file():
        info = json.loads(meta.read_text())
        if info.get("size") == path.stat().st_size:
            ctx.log(f"{layer}: cached ({info['size'] / 1e6:.1f} MB)")
            return Blob(path, info["digest"], info["size"])
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    ctx.log(f"{layer}: building")
    blob = LAYERS[layer].build(ctx, path)
    meta.write_text(json.dumps({"digest": blob.digest, "size": blob.size}))
    ctx.log(f"{layer}: {blob.size / 1e6:.1f} MB {blob.digest[:19]} in {time.monotonic() - started:.0f} s")
    return blob


def build(sources: Sources, only: Sequence[str] = (), log: Log | None = None) -> list[Path]:
    """Build (or find in the cache) every selected archive; returns their paths."""
    started = time.monotonic()
    say: Log = log or (lambda m: print(f"[images {time.monotonic() - started:5.0f}s] {m}", file=sys.stderr, flush=True))
    p = plan(sources, only)
    paths = p.archive_paths()
    if all(path.is_file() for path in paths) and (p.out_dir / "images.json").is_file():
        say(f"cached in {p.out_dir}")
        return paths
    with _locked(p.out_dir.parent), tempfile.TemporaryDirectory(prefix="envci-images-") as tmp:
        ctx = Ctx(sources, say, Path(tmp))
        blobs = {layer: _cached_layer(p, layer, ctx) for layer in p.layer_keys}
        p.out_dir.mkdir(parents=True, exist_ok=True)
        index: dict[str, dict[str, object]] = {}
        for stem, images in p.archives.items():
            path = p.out_dir / f"{stem}.tar"
            archive = write_archive([Image(i.name, tuple(blobs[layer] for layer in i.layers), i.config) for i in images], path)
            say(f"{path.name}: {', '.join(i.name for i in images)} ({archive.size / 1e6:.1f} MB)")
            for i in images:
                index[i.name] = {"archive": path.name, "layers": [blobs[layer].digest for layer in i.layers]}
        (p.out_dir / "images.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
        _prune(p, set(index), say)
    say(f"done in {time.monotonic() - started:.0f} s: {p.out_dir}")
    return paths


def _prune(p: Plan, names: set[str], say: Log) -> None:
    """Delete older builds of the same selection of images: each source change would otherwise leave
    another half-gigabyte behind. Builds of other selections (`--only`) are left alone."""
    for other in p.out_dir.parent.iterdir():
        index = other / "images.json"
        if other == p.out_dir or not index.is_file():
            continue
        try:
            same = set(json.loads(index.read_text())) == names
        except ValueError:
            continue
        if same:
            say(f"removing an older build of the same images: {other}")
            shutil.rmtree(other, ignore_errors=True)
