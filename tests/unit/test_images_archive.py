"""Image layers and docker-save archives: reproducible bytes, shared layers once, readable back."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from pathlib import Path

import pytest

from envci.images.archive import Image, ImageConfig, check_name, config_json, write_archive
from envci.images.layer import FIXED_MTIME, LayerContents, write_layer
from envci.images.reader import read_archive


def _tree(root: Path) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_bytes(b"#!/bin/sh\necho hi\n")
    (root / "bin" / "tool").chmod(0o755)
    (root / "bin" / "alias").symlink_to("tool")
    (root / "etc").mkdir()
    (root / "etc" / "conf").write_text("a=1\n")
    (root / "etc" / "conf").chmod(0o600)
    return root


def _layer(tmp: Path, name: str, data: bytes) -> LayerContents:
    c = LayerContents()
    c.add_file(f"{name}/data", data)
    return c


def _members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_a_tree_becomes_a_sorted_layer_with_modes_links_and_fixed_owners(tmp_path: Path) -> None:
    src = _tree(tmp_path / "src")
    os.utime(src / "etc" / "conf", (1, 1))
    c = LayerContents()
    c.add_tree(src, "opt/app")
    c.add_dir("tmp", mode=0o1777)
    blob = write_layer(c, tmp_path / "layer.tar")

    with tarfile.open(blob.path) as tar:
        names = tar.getnames()
        members = {m.name: m for m in tar.getmembers()}
    assert names == sorted(names)
    assert names[:2] == ["opt", "opt/app"]  # parents are added before what they hold
    assert members["opt/app/bin/tool"].mode == 0o755
    assert members["opt/app/etc/conf"].mode == 0o600
    assert members["opt/app/bin/alias"].issym() and members["opt/app/bin/alias"].linkname == "tool"
    assert members["tmp"].mode == 0o1777
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members.values()} == {(0, 0, "", "", FIXED_MTIME)}
    assert blob.digest == "sha256:" + hashlib.sha256(blob.path.read_bytes()).hexdigest()
    assert blob.size == blob.path.stat().st_size


def test_the_same_inputs_give_the_same_bytes(tmp_path: Path) -> None:
    def build(root: Path, out: Path) -> tuple[str, str]:
        c = LayerContents()
        c.add_tree(_tree(root), "app", uid=10001, gid=10001)
        layer = write_layer(c, out.with_suffix(".layer"))
        archive = write_archive([Image("envci.local/x:1", (layer,), ImageConfig(cmd=("sh",)))], out)
        return layer.digest, archive.digest

    first = build(tmp_path / "a", tmp_path / "a.tar")
    os.utime(tmp_path / "a" / "bin" / "tool", (5, 5))  # a different mtime on disk must not matter
    second = build(tmp_path / "b", tmp_path / "b.tar")
    assert first == second
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_a_rootfs_tarball_keeps_owners_and_hard_links_and_drops_devices(tmp_path: Path) -> None:
    src = tmp_path / "rootfs.tar"
    with tarfile.open(src, "w") as tar:
        def add(name: str, kind: bytes, **kw: object) -> None:
            info = tarfile.TarInfo(name)
            info.type = kind
            for k, v in kw.items():
                setattr(info, k, v)
            data = kw.get("size") and b"x" * int(kw["size"])  # type: ignore[arg-type]
            tar.addfile(info, __import__("io").BytesIO(data) if data else None)

        add("./", tarfile.DIRTYPE, mode=0o755)
        add("./dev/", tarfile.DIRTYPE, mode=0o755)
        add("./dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3)
        add("./usr/bin/zeta", tarfile.REGTYPE, size=4, mode=0o755)
        add("./usr/bin/alpha", tarfile.LNKTYPE, linkname="./usr/bin/zeta")  # sorts before its target
        add("./var/lib/db/", tarfile.DIRTYPE, mode=0o700, uid=105, gid=107)
    c = LayerContents()
    c.add_tarball(src)
    blob = write_layer(c, tmp_path / "layer.tar")

    members = _members(blob.path)
    assert "dev/null" not in members and "dev" in members
    assert members["var/lib/db"].uid == 105 and members["var/lib/db"].mode == 0o700
    assert members["usr/bin/alpha"].isreg() and members["usr/bin/alpha"].size == 4
    assert members["usr/bin/zeta"].islnk() and members["usr/bin/zeta"].linkname == "usr/bin/alpha"
    tmp_out = tmp_path / "out"
    with tarfile.open(blob.path) as tar:
        tar.extractall(tmp_out, filter="tar")
    assert os.path.samefile(tmp_out / "usr/bin/alpha", tmp_out / "usr/bin/zeta")


def test_an_archive_writes_a_shared_layer_once_and_reads_back(tmp_path: Path) -> None:
    base = write_layer(_layer(tmp_path, "base", b"base"), tmp_path / "base.layer")
    app = write_layer(_layer(tmp_path, "app", b"app"), tmp_path / "app.layer")
    db = write_layer(_layer(tmp_path, "db", b"db"), tmp_path / "db.layer")
    config = ImageConfig(
        entrypoint=("python3", "/app/api.py"), env={"PATH": "/usr/bin", "PORT": "8080"}, user="10001",
        working_dir="/app", exposed_ports=("8080/tcp",),
    )
    images = [Image("envci.local/app:dev", (base, app), config), Image("envci.local/db:15", (base, db))]
    out = write_archive(images, tmp_path / "images.tar")

    members = _members(out.path)
    layer_files = [n for n in members if n.endswith("/layer.tar")]
    assert sorted(layer_files) == sorted(f"{b.hex}/layer.tar" for b in (base, app, db))
    with tarfile.open(out.path) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        cfg = json.load(tar.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
    assert [m["RepoTags"] for m in manifest] == [["envci.local/app:dev"], ["envci.local/db:15"]]
    assert manifest[0]["Layers"] == [f"{base.hex}/layer.tar", f"{app.hex}/layer.tar"]
    assert cfg["architecture"] == "amd64" and cfg["os"] == "linux"
    assert cfg["rootfs"] == {"type": "layers", "diff_ids": [base.digest, app.digest]}
    assert cfg["config"] == {
        "Entrypoint": ["python3", "/app/api.py"], "Env": ["PATH=/usr/bin", "PORT=8080"], "User": "10001",
        "WorkingDir": "/app", "ExposedPorts": {"8080/tcp": {}},
    }
    assert manifest[0]["Config"] == hashlib.sha256(config_json(images[0])).hexdigest() + ".json"

    listed = read_archive(out.path)
    assert [(i.names, i.layers, i.format) for i in listed] == [
        (("envci.local/app:dev",), 2, "docker"),
        (("envci.local/db:15",), 2, "docker"),
    ]


@pytest.mark.parametrize("name", ["envci.local/pause:3.10", "localhost:5000/a/b:v1", "busybox:1"])
def test_names_with_a_tag_are_accepted(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["envci.local/pause", "Envci.local/x:1", "x:", ""])
def test_names_without_a_tag_or_in_upper_case_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="is not"):
        check_name(name)


def test_one_archive_refuses_the_same_name_twice(tmp_path: Path) -> None:
    layer = write_layer(_layer(tmp_path, "a", b"a"), tmp_path / "a.layer")
    with pytest.raises(ValueError, match="appears twice"):
        write_archive([Image("envci.local/a:1", (layer,)), Image("envci.local/a:1", (layer,))], tmp_path / "x.tar")
