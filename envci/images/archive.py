"""`docker save` archives: one or more images, each a config JSON and a list of layer tars.

The format is the one `docker save`, `docker load`, `ctr images import` and `podman load` all read:

    manifest.json            [{"Config": "<hex>.json", "RepoTags": ["name:tag"], "Layers": ["<hex>/layer.tar"]}]
    <config hex>.json        {"architecture": "amd64", "os": "linux", "config": {...}, "rootfs": {"diff_ids": [...]}}
    <layer hex>/layer.tar    an uncompressed layer; its digest is its diff_id

A layer shared by several images in one archive is written once. The JSON is canonical (sorted keys, no
spaces) and the outer tar is as reproducible as the layers (`layer.write_tar`), so the same images give
the same archive bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from envci.images.layer import FIXED_MTIME, Blob, Member, write_tar

_REFERENCE = re.compile(r"^[a-z0-9]+([._/-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class ImageConfig:
    """The runtime defaults of an image: what the OCI config's `config` object holds."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    user: str = ""
    """`uid[:gid]` or a name from the image's /etc/passwd; empty runs as root."""
    working_dir: str = ""
    exposed_ports: tuple[str, ...] = ()
    """`8080/tcp` style; documentation for people and tools, the runtime does not act on it."""
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Image:
    """One image to write: its `name:tag`, its layers bottom-up, its config."""

    name: str
    layers: tuple[Blob, ...]
    config: ImageConfig = ImageConfig()


def check_name(name: str) -> str:
    """A reference with an explicit tag (`envci.local/pause:3.10`); a tagless name would mean `latest`."""
    if not _REFERENCE.match(name):
        raise ValueError(f"image name {name!r} is not `[registry/]path:tag` in lower case")
    return name


def config_json(image: Image) -> bytes:
    """The image's config blob, canonical JSON (its sha256 is the image ID)."""
    c = image.config
    cfg: dict[str, object] = {}
    if c.env:
        cfg["Env"] = [f"{k}={v}" for k, v in c.env.items()]
    if c.entrypoint:
        cfg["Entrypoint"] = list(c.entrypoint)
    if c.cmd:
        cfg["Cmd"] = list(c.cmd)
    if c.user:
        cfg["User"] = c.user
    if c.working_dir:
        cfg["WorkingDir"] = c.working_dir
    if c.exposed_ports:
        cfg["ExposedPorts"] = {p: {} for p in c.exposed_ports}
    if c.labels:
        cfg["Labels"] = dict(c.labels)
    created = datetime.fromtimestamp(FIXED_MTIME, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    doc = {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": [b.digest for b in image.layers]},
        "history": [{"created": created, "created_by": f"envci images: layer {i + 1} of {image.name}"} for i in range(len(image.layers))],
    }
    return canonical(doc)


def canonical(doc: object) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def layer_path(blob: Blob) -> str:
    return f"{blob.hex}/layer.tar"


def manifest_json(images: Sequence[Image], configs: Sequence[bytes]) -> bytes:
    """manifest.json: one entry per image, in the order given, naming its config and layer files."""
    entries = [
        {
            "Config": f"{hashlib.sha256(cfg).hexdigest()}.json",
            "RepoTags": [image.name],
            "Layers": [layer_path(b) for b in image.layers],
        }
        for image, cfg in zip(images, configs)
    ]
    return canonical(entries)


def write_archive(images: Sequence[Image], out: Path) -> Blob:
    """Write a docker-save archive of `images` to `out` (atomically); layers shared between images once."""
    if not images:
        raise ValueError("an image archive needs at least one image")
    names = [check_name(i.name) for i in images]
    if len(set(names)) != len(names):
        raise ValueError(f"an image name appears twice in one archive: {sorted(names)}")
    configs = [config_json(i) for i in images]
    files: dict[str, Member] = {"manifest.json": _bytes_member("manifest.json", manifest_json(images, configs))}
    for cfg in configs:
        name = f"{hashlib.sha256(cfg).hexdigest()}.json"
        files[name] = _bytes_member(name, cfg)
    for image in images:
        for blob in image.layers:
            path = layer_path(blob)
            if path not in files:
                files[blob.hex] = _dir_member(blob.hex)
                files[path] = _file_member(path, blob)
    return write_tar([files[k] for k in sorted(files)], out)


def _header(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.mtime = kind, mode, size, FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _bytes_member(name: str, data: bytes) -> Member:
    return Member(_header(name, tarfile.REGTYPE, 0o644, len(data)), lambda: io.BytesIO(data))


def _dir_member(name: str) -> Member:
    return Member(_header(name, tarfile.DIRTYPE, 0o755))


def _file_member(name: str, blob: Blob) -> Member:
    return Member(_header(name, tarfile.REGTYPE, 0o644, blob.size), lambda: blob.path.open("rb"))
