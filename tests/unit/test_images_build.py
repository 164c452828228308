"""The offline image builder: names kept, keys that follow the inputs, small images built for real.

The Debian-based images need mmdebstrap and a mirror and take a minute; they are built by
`python -m envci.images build`, not here. The pause and busybox images need only gcc and busybox-static.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import tomllib
from pathlib import Path

import pytest

from envci import __version__
from envci.errors import ConfigError
from envci.images import build as builder
from envci.images import definitions
from envci.images.reader import read_archive

REPO = Path(__file__).resolve().parents[2]
PAUSE, BUSYBOX, DEMO = "envci.local/pause:3.10", "envci.local/busybox:1", "envci.local/demo-api:dev"


def test_the_image_names_other_code_relies_on() -> None:
    assert {i.name for i in definitions.IMAGES} == {
        "envci.local/pause:3.10", "envci.local/busybox:1", "envci.local/coredns:1.15.0",
        "envci.local/postgres:15", "envci.local/demo-api:dev", f"envci.local/envci:{__version__}",
    }
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert __version__ == pyproject["project"]["version"]


def test_debian_images_share_one_base_layer_in_one_archive() -> None:
    debian = [i for i in definitions.IMAGES if "debian-base" in i.layers]
    assert {i.name for i in debian} == {"envci.local/postgres:15", DEMO}
    assert {i.layers[0] for i in debian} == {"debian-base"}
    assert {i.archive for i in debian} == {"bookworm"}
    assert all(set(i.layers) <= set(builder.LAYERS) for i in definitions.IMAGES)


def test_the_envci_image_has_a_python_base_of_its_own_and_archive() -> None:
    """What users pull: no postgres, perl or ICU under it, as the Containerfile's image has none."""
    envci = definitions.image_named(f"envci.local/envci:{__version__}")
    assert envci.layers == ("python-base", "kube-tools", "envci") and envci.archive == "envci"
    assert [i.name for i in definitions.archives()["envci"]] == [envci.name]
    assert not {"postgresql-15", "python3-psycopg"} & set(definitions.PYTHON_BASE_PACKAGES)
    assert "python3-venv" in definitions.PYTHON_BASE_PACKAGES  # a job may still pip-install another envci


def test_each_base_is_keyed_by_its_own_package_list(tmp_path: Path) -> None:
    src = _sources(tmp_path)
    base, python = (builder.LAYERS[layer].material(src) for layer in ("debian-base", "python-base"))
    assert base["packages"] == definitions.BASE_PACKAGES and python["packages"] == definitions.PYTHON_BASE_PACKAGES
    assert python["hook_dirs"] == [definitions.MERGED_USR_HOOK] and "hook_dirs" not in base


def test_the_envci_images_base_is_purged_in_order_checked_then_trimmed(tmp_path: Path) -> None:
    """Each purge group's removal scripts need the next group's tools, Python must still start after the
    purge, and `app` is written by hand: the Essential set has no useradd."""
    hook = builder._python_base_hook()
    purges = [hook.index(f"--force-depends {' '.join(group)} ") for group in definitions.PYTHON_BASE_PURGE]
    assert purges == sorted(purges) and definitions.PYTHON_BASE_PURGE[-1] == ("perl-base",)
    assert purges[-1] < hook.index(builder.PYTHON_SMOKE_TEST) < hook.index("rm -rf -- ")
    assert "useradd" not in hook and "'app:*:10001:10001::/home/app:/usr/sbin/nologin' >> etc/passwd" in hook
    assert "-name __pycache__ -prune" in hook
    python = builder.LAYERS["python-base"].material(_sources(tmp_path))
    assert python["variant"] == "essential" and python["hook"] == hook
    assert "useradd" in builder.LAYERS["debian-base"].material(_sources(tmp_path))["hook"]  # the shared base is unchanged


def test_layer_sizes_are_those_of_the_cached_layer_tars(tmp_path: Path) -> None:
    src = _sources(tmp_path)
    envci = f"envci.local/envci:{__version__}"
    p = builder.plan(src, [envci])
    with pytest.raises(ConfigError, match="not built yet"):
        builder.layer_sizes(p, envci)
    for i, layer in enumerate(("python-base", "kube-tools", "envci")):
        p.layer_path(layer).parent.mkdir(parents=True, exist_ok=True)
        p.layer_path(layer).write_bytes(b"x" * (i + 1) * 512)
    assert builder.layer_sizes(p, envci) == {"python-base": 512, "kube-tools": 1024, "envci": 1536}
    with pytest.raises(ConfigError, match="not among the images"):
        builder.layer_sizes(p, PAUSE)


def test_non_root_images_run_as_the_app_user() -> None:
    for name in (DEMO, f"envci.local/envci:{__version__}"):
        assert definitions.image_named(name).config.user == "10001:10001"


def _sources(tmp_path: Path, demo: Path | None = None) -> builder.Sources:
    return builder.Sources(bin_dir=tmp_path / "bin", demo_api=demo or tmp_path / "demo", cache=tmp_path / "cache")


def test_the_key_follows_the_inputs_of_the_selected_images_only(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "api.py").write_text("print('v1')\n")
    src = _sources(tmp_path, demo)
    first = builder.plan(src, [DEMO, PAUSE])
    assert builder.plan(src, [DEMO, PAUSE]) == first
    assert first.out_dir.parent == tmp_path / "cache" / "images"
    assert [p.name for p in first.archive_paths()] == ["pause.tar", "bookworm.tar"]

    (demo / "__pycache__").mkdir()
    (demo / "__pycache__" / "api.cpython-311.pyc").write_bytes(b"cache")
    assert builder.plan(src, [DEMO, PAUSE]).key == first.key  # caches are not inputs

    (demo / "api.py").write_text("print('v2')\n")
    second = builder.plan(src, [DEMO, PAUSE])
    assert second.key != first.key
    assert second.layer_keys["pause"] == first.layer_keys["pause"]
    assert second.layer_keys["debian-base"] == first.layer_keys["debian-base"]
    assert second.layer_keys["demo-api"] != first.layer_keys["demo-api"]
    assert builder.plan(src, [PAUSE]).key != builder.plan(src, [PAUSE, BUSYBOX]).key


def test_an_unknown_image_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown image"):
        builder.plan(_sources(tmp_path), ["envci.local/nope:1"])


def test_a_missing_cluster_binary_is_named_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="coredns is not built yet") as info:
        builder.build(_sources(tmp_path), ["envci.local/coredns:1.15.0"], log=lambda _m: None)
    assert "envci/localcluster/build.sh" in str(info.value)


needs_tools = pytest.mark.skipif(
    not shutil.which("gcc") or not builder.Sources().busybox_binary().is_file() or not builder._is_static(builder.Sources().busybox_binary()),
    reason="needs gcc and Debian's busybox-static (scripts/ci-deps/images.sh installs them)",
)


@needs_tools
def test_pause_and_busybox_are_built_cached_and_reproducible(tmp_path: Path) -> None:
    lines: list[str] = []
    src = _sources(tmp_path)
    paths = builder.build(src, [PAUSE, BUSYBOX], log=lines.append)
    assert [p.name for p in paths] == ["pause.tar", "busybox.tar"]
    assert [i.names for p in paths for i in read_archive(p)] == [(PAUSE,), (BUSYBOX,)]
    assert json.loads((paths[0].parent / "images.json").read_text())[PAUSE]["archive"] == "pause.tar"

    with tarfile.open(paths[1]) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        config = json.load(outer.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
        layer = outer.extractfile(manifest[0]["Layers"][0])
        assert layer is not None
        with tarfile.open(fileobj=layer) as inner:
            members = {m.name: m for m in inner.getmembers()}
    assert config["config"]["Cmd"] == ["sh"]
    assert members["bin/busybox"].mode == 0o755
    for applet in ("sh", "nc", "wget", "sleep", "cat", "ls", "httpd"):
        link = next(m for name, m in members.items() if name.endswith(f"bin/{applet}"))
        assert link.issym() and link.linkname == "/bin/busybox"
    assert members["tmp"].mode == 0o1777
    assert "root:x:0:0" in inner_text(paths[1], "etc/passwd")

    pause_bytes = paths[0].read_bytes()
    lines.clear()
    assert builder.build(src, [PAUSE, BUSYBOX], log=lines.append) == paths
    assert lines == [f"cached in {paths[0].parent}"]

    older = paths[0].parent.with_name("0123456789abcdef0123")  # a previous build of the same images
    shutil.copytree(paths[0].parent, older)
    other = paths[0].parent.with_name("fedcba9876543210fedc")  # a build of another selection
    other.mkdir()
    (other / "images.json").write_text(json.dumps({PAUSE: {}}))
    (paths[0].parent / "images.json").unlink()  # makes the next call build again
    builder.build(src, [PAUSE, BUSYBOX], log=lambda _m: None)
    assert not older.exists() and other.exists()

    shutil.rmtree(tmp_path / "cache")  # a cold rebuild gives the same bytes
    assert builder.build(src, [PAUSE, BUSYBOX], log=lambda _m: None)[0].read_bytes() == pause_bytes


def inner_text(archive: Path, name: str) -> str:
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        layer = outer.extractfile(manifest[0]["Layers"][-1])
        with tarfile.open(fileobj=layer) as inner:
            f = inner.extractfile(name)
            assert f is not None
            return f.read().decode()


@needs_tools
def test_the_pause_program_sleeps_until_sigterm(tmp_path: Path) -> None:
    binary = tmp_path / "pause"
    subprocess.run(["gcc", "-static", "-Os", "-o", str(binary), str(builder.FILES / "pause.c")], check=True)
    proc = subprocess.Popen([str(binary)])
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=0.5)
    proc.terminate()
    assert proc.wait(timeout=5) == 0
