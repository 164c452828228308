"""The archive reader: docker-save and OCI layouts accepted, anything else refused with file, cause and fix."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from envci.errors import ConfigError, ExitCode
from envci.images.archive import Image, write_archive
from envci.images.layer import LayerContents, write_layer
from envci.images.reader import read_archive


def _docker_archive(tmp_path: Path) -> Path:
    c = LayerContents()
    c.add_file("hello", b"hello\n")
    layer = write_layer(c, tmp_path / "layer.tar")
    return write_archive([Image("envci.local/hello:1", (layer,))], tmp_path / "hello.tar").path


def _tar(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _blob(data: bytes) -> tuple[str, bytes, dict[str, object]]:
    digest = hashlib.sha256(data).hexdigest()
    return f"blobs/sha256/{digest}", data, {"digest": f"sha256:{digest}", "size": len(data)}


def _oci(tmp_path: Path, *, layer_size: int | None = None, nested: bool = False) -> Path:
    layer_name, layer, layer_desc = _blob(b"not really a tar, the reader only checks presence and size")
    if layer_size is not None:
        layer_desc = {**layer_desc, "size": layer_size}
    cfg_name, cfg, cfg_desc = _blob(json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cfg_desc},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer_desc}]}
    man_name, man, man_desc = _blob(json.dumps(manifest).encode())
    files = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}', layer_name: layer, cfg_name: cfg, man_name: man}
    entry = {"mediaType": "application/vnd.oci.image.manifest.v1+json", **man_desc, "platform": {"architecture": "amd64", "os": "linux"}}
    if nested:
        inner_name, inner, inner_desc = _blob(json.dumps({"schemaVersion": 2, "manifests": [entry]}).encode())
        files[inner_name] = inner
        entry = {"mediaType": "application/vnd.oci.image.index.v1+json", **inner_desc}
    entry["annotations"] = {"io.containerd.image.name": "docker.io/library/alpine:3", "org.opencontainers.image.ref.name": "3"}
    files["index.json"] = json.dumps({"schemaVersion": 2, "manifests": [entry]}).encode()
    return _tar(tmp_path / "oci.tar", files)


def _refused(path: Path, *fragments: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        read_archive(path)
    err = info.value
    assert err.exit_code == ExitCode.BAD_INPUT
    assert str(path) in str(err)
    assert err.hint
    for fragment in fragments:
        assert fragment in str(err)
    return err


def test_a_docker_save_archive_is_listed(tmp_path: Path) -> None:
    [image] = read_archive(_docker_archive(tmp_path))
    assert image.names == ("envci.local/hello:1",) and image.layers == 1 and image.format == "docker"
    assert image.config_digest.startswith("sha256:")


def test_a_gzipped_docker_save_archive_is_listed(tmp_path: Path) -> None:
    plain = _docker_archive(tmp_path)
    zipped = tmp_path / "hello.tar.gz"
    zipped.write_bytes(gzip.compress(plain.read_bytes()))
    assert read_archive(zipped)[0].names == ("envci.local/hello:1",)


@pytest.mark.parametrize("nested", [False, True])
def test_an_oci_layout_archive_is_listed_with_its_annotated_name(tmp_path: Path, nested: bool) -> None:
    [image] = read_archive(_oci(tmp_path, nested=nested))
    assert image.names == ("docker.io/library/alpine:3", "3")
    assert image.format == "oci" and image.layers == 1


def test_an_oci_blob_of_the_wrong_size_is_refused(tmp_path: Path) -> None:
    _refused(_oci(tmp_path, layer_size=3), "bytes but", "truncated or altered blob")


def test_garbage_is_not_a_tar(tmp_path: Path) -> None:
    path = tmp_path / "garbage.tar"
    path.write_bytes(b"this is not an archive\n" * 100)
    _refused(path, "not a readable tar archive")


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.tar"
    path.write_bytes(b"")
    _refused(path, "not a readable tar archive", "empty file")


def test_an_empty_tar_is_not_an_image_archive(tmp_path: Path) -> None:
    _refused(_tar(tmp_path / "empty.tar", {}), "not an image archive: no manifest.json or index.json")


def test_a_tar_of_something_else_is_not_an_image_archive(tmp_path: Path) -> None:
    _refused(_tar(tmp_path / "src.tar", {"README.md": b"hello"}), "not an image archive: no manifest.json or index.json")


def _cut_points(path: Path) -> list[int]:
    """Cut inside a header, inside the last file's data, and exactly where the end-of-archive marker starts."""
    with tarfile.open(path) as tar:
        last = tar.getmembers()[-1]
    end_of_data = last.offset_data + -(-last.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
    return [last.offset + 100, last.offset_data + last.size // 2, end_of_data]


@pytest.mark.parametrize("cut", [0, 1, 2])
def test_a_truncated_archive_is_refused(tmp_path: Path, cut: int) -> None:
    full = _docker_archive(tmp_path)
    path = tmp_path / "cut.tar"
    path.write_bytes(full.read_bytes()[: _cut_points(full)[cut]])
    _refused(path, "truncated")


def test_a_truncated_gzip_archive_is_refused(tmp_path: Path) -> None:
    data = gzip.compress(_docker_archive(tmp_path).read_bytes())
    path = tmp_path / "cut.tar.gz"
    path.write_bytes(data[: len(data) // 2])
    _refused(path, "truncated")


def test_a_manifest_naming_a_missing_layer_is_refused(tmp_path: Path) -> None:
    manifest = json.dumps([{"Config": "c.json", "RepoTags": ["a:1"], "Layers": ["l/layer.tar"]}]).encode()
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": ["sha256:00"]}}).encode()
    _refused(_tar(tmp_path / "x.tar", {"manifest.json": manifest, "c.json": config}), "names l/layer.tar", "does not contain")


def test_a_manifest_that_is_not_json_is_refused(tmp_path: Path) -> None:
    _refused(_tar(tmp_path / "x.tar", {"manifest.json": b"{nope"}), "manifest.json is not valid JSON")


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    _refused(tmp_path / "nothing.tar", "no such image archive")
