"""Validate an image archive and list its images, before anything is imported.

Two formats are accepted, as `ctr images import` accepts them:

- `docker save` archives: `manifest.json` naming each image's config and layer files.
- OCI image layouts in a tar: `oci-layout` + `index.json`, blobs under `blobs/<alg>/<hex>`; image names come
  from the `io.containerd.image.name` or `org.opencontainers.image.ref.name` annotations.

Either may be gzip-compressed. Anything else (not a tar, a truncated tar, a tar of something else, a file
the manifest names but the tar lacks) is a `ConfigError` that names the file, what is wrong and the fix, so
a user never sees a half-imported archive or a traceback.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from envci.errors import ConfigError

_HINT = "pass an archive written by `docker save`, `ctr images export`, `python -m envci.images build` or another OCI image-layout tool"
_NAME_ANNOTATIONS = ("io.containerd.image.name", "org.opencontainers.image.ref.name")
_INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")
_MAX_JSON = 16 * 1024 * 1024
"""Largest manifest/config/index read into memory; real ones are a few kB."""


@dataclass(frozen=True)
class ArchiveImage:
    """One image found in an archive."""

    names: tuple[str, ...]
    """Its references as written in the archive (may be empty: an image saved by ID)."""
    config_digest: str
    layers: int
    format: Literal["docker", "oci"]


class _Archive:
    """The archive's members by normalised name, and a way to read a small one."""

    def __init__(self, path: Path, tar: tarfile.TarFile) -> None:
        self.path = path
        self.tar = tar
        self.members = {m.name.removeprefix("./").rstrip("/"): m for m in tar.getmembers()}

    def fail(self, what: str, hint: str = _HINT) -> ConfigError:
        return ConfigError(what, file=str(self.path), hint=hint)

    def file(self, name: str, *, why: str) -> tarfile.TarInfo:
        m = self.members.get(name.removeprefix("./"))
        if m is None or not m.isreg():
            raise self.fail(f"{why} names {name}, which the archive does not contain (truncated or incomplete archive?)")
        return m

    def read(self, name: str, *, why: str) -> bytes:
        m = self.file(name, why=why)
        if m.size > _MAX_JSON:
            raise self.fail(f"{name} is {m.size} bytes, far too large for {why}")
        f = self.tar.extractfile(m)
        assert f is not None
        return f.read()

    def json(self, name: str, *, why: str) -> Any:
        try:
            return json.loads(self.read(name, why=why))
        except (ValueError, UnicodeDecodeError) as e:
            raise self.fail(f"{name} is not valid JSON ({e})") from None


def read_archive(path: Path) -> list[ArchiveImage]:
    """Check that `path` is a complete docker-save or OCI archive and return its images."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("no such image archive", file=str(path), hint="check the path; build the project's archives with `python -m envci.images build`")
    try:
        with tarfile.open(path, "r:*") as tar:
            archive = _Archive(path, tar)
            _check_complete(path, tar)
            if "index.json" in archive.members:
                images = _read_oci(archive)
            elif "manifest.json" in archive.members:
                images = _read_docker(archive)
            else:
                raise archive.fail("not an image archive: no manifest.json or index.json")
    except ConfigError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise ConfigError(f"not a readable tar archive ({_tar_problem(e)})", file=str(path), hint=_HINT) from None
    if not images:
        raise ConfigError("the archive holds no image", file=str(path), hint=_HINT)
    return images


def _tar_problem(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    if "unexpected end" in text or isinstance(e, EOFError) or "end-of-stream" in text:
        return f"truncated tar: {text}"
    if "empty file" in text:
        return "empty file"
    if "could not be opened successfully" in text:
        return "not a tar file, nor a gzip, bzip2 or xz compressed one"
    return text


def _check_complete(path: Path, tar: tarfile.TarFile) -> None:
    """An uncompressed tar ends with two zero blocks after its last member; a cut-off copy does not."""
    if tar.fileobj is None or type(tar.fileobj).__name__ != "BufferedReader":
        return  # compressed: the decompressor reports a cut-off stream itself
    end = tar.offset + 2 * tarfile.BLOCKSIZE
    if path.stat().st_size < end:
        raise ConfigError(
            f"truncated tar: the archive ends at byte {path.stat().st_size} without the end-of-archive marker",
            file=str(path),
            hint="copy or build the archive again; it was cut short",
        )


def _read_docker(archive: _Archive) -> list[ArchiveImage]:
    manifest = archive.json("manifest.json", why="the archive")
    if not isinstance(manifest, list):
        raise archive.fail("manifest.json is not a list of images (is this a docker-save archive?)")
    images = []
    for i, entry in enumerate(manifest):
        where = f"manifest.json entry {i}"
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) or not isinstance(entry.get("Layers"), list):
            raise archive.fail(f"{where} lacks Config or Layers")
        config_name = entry["Config"]
        config = archive.json(config_name, why=where)
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") if isinstance(config, dict) else None
        if not isinstance(diff_ids, list) or len(diff_ids) != len(entry["Layers"]):
            raise archive.fail(f"{config_name}: rootfs.diff_ids does not list one digest per layer of {where}")
        for layer in entry["Layers"]:
            archive.file(str(layer), why=where)
        tags = entry.get("RepoTags") or []
        digest = "sha256:" + hashlib.sha256(archive.read(config_name, why=where)).hexdigest()
        images.append(ArchiveImage(tuple(str(t) for t in tags), digest, len(diff_ids), "docker"))
    return images


def _read_oci(archive: _Archive) -> list[ArchiveImage]:
    layout = archive.json("oci-layout", why="an OCI image layout") if "oci-layout" in archive.members else None
    if not isinstance(layout, dict) or "imageLayoutVersion" not in layout:
        raise archive.fail("index.json without an oci-layout file declaring imageLayoutVersion: not an OCI image layout")
    index = archive.json("index.json", why="the archive")
    images: list[ArchiveImage] = []
    _walk_index(archive, index, "index.json", (), images)
    return images


def _walk_index(archive: _Archive, index: Any, where: str, names: tuple[str, ...], out: list[ArchiveImage]) -> None:
    manifests = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(manifests, list):
        raise archive.fail(f"{where} has no manifests list")
    for i, desc in enumerate(manifests):
        here = f"{where} manifests[{i}]"
        blob = _blob(archive, desc, here)
        annotations = desc.get("annotations") or {}
        own = names or tuple(dict.fromkeys(str(annotations[k]) for k in _NAME_ANNOTATIONS if k in annotations))
        if desc.get("mediaType") in _INDEX_TYPES:
            _walk_index(archive, blob, here, own, out)
            continue
        config = blob.get("config") if isinstance(blob, dict) else None
        layers = blob.get("layers") if isinstance(blob, dict) else None
        if not isinstance(config, dict) or not isinstance(layers, list):
            raise archive.fail(f"{here}: the manifest has no config or layers")
        _blob(archive, config, f"{here} config", load=False)
        for j, layer in enumerate(layers):
            _blob(archive, layer, f"{here} layers[{j}]", load=False)
        out.append(ArchiveImage(own, str(config["digest"]), len(layers), "oci"))


def _blob(archive: _Archive, desc: Mapping[str, Any], where: str, *, load: bool = True) -> Any:
    """Check that a descriptor's blob is in the archive with the size it declares; parse it if asked."""
    digest = desc.get("digest") if isinstance(desc, Mapping) else None
    if not isinstance(digest, str) or ":" not in digest:
        raise archive.fail(f"{where} has no digest")
    alg, hexdigest = digest.split(":", 1)
    name = f"blobs/{alg}/{hexdigest}"
    member = archive.file(name, why=where)
    if isinstance(desc.get("size"), int) and member.size != desc["size"]:
        raise archive.fail(f"{name} is {member.size} bytes but {where} says {desc['size']} (truncated or altered blob)")
    if not load:
        return None
    data = archive.read(name, why=where)
    if alg == "sha256" and hashlib.sha256(data).hexdigest() != hexdigest:
        raise archive.fail(f"{name} does not match its digest (altered blob)")
    try:
        return json.loads(data)
    except ValueError as e:
        raise archive.fail(f"{name} ({where}) is not valid JSON ({e})") from None
