"""One image layer as a reproducible tar: same files in, same bytes (and so the same digest) out.

containerd stores layers by digest, so two images that share a layer share its bytes on the node only if
the layer is byte-identical each time it is written. Everything that varies between machines or runs is
therefore fixed here: entries are sorted, every mtime is `FIXED_MTIME`, owners are numeric (uid/gid 0
unless a source says otherwise), user and group names are empty, and the tar format is always PAX.

A layer is gathered as a `LayerContents` (path -> member) from three kinds of source: entries added one by
one, a directory tree, or an existing root filesystem tarball (what mmdebstrap writes). Then `write_layer`
writes it and returns its digest.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO

FIXED_MTIME = 946684800
"""2000-01-01T00:00:00Z: a round, obviously artificial date that no tool mistakes for "unset" (as some do 0)."""

Opener = Callable[[], IO[bytes]]


@dataclass(frozen=True)
class Blob:
    """A file written once and referred to by digest: a layer tar, or an image config."""

    path: Path
    digest: str
    """`sha256:<hex>` of the file's bytes."""
    size: int

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]


@dataclass
class Member:
    """One tar entry: its header, and for a regular file a way to open its content."""

    info: tarfile.TarInfo
    open: Opener | None = None


@dataclass
class LayerContents:
    """The files of one layer, keyed by normalised path (no leading `/` or `./`, no trailing `/`)."""

    members: dict[str, Member] = field(default_factory=dict)

    def add_dir(self, path: str, *, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
        info = _info(path, tarfile.DIRTYPE, mode, uid, gid)
        self._put(info, None)

    def add_file(self, path: str, source: Path | bytes, *, mode: int = 0o644, uid: int = 0, gid: int = 0) -> None:
        """Add a regular file from bytes or from a file on disk (read when the layer is written)."""
        info = _info(path, tarfile.REGTYPE, mode, uid, gid)
        if isinstance(source, bytes):
            data = source
            info.size = len(data)
            self._put(info, lambda: io.BytesIO(data))
        else:
            src = Path(source)
            info.size = src.stat().st_size
            self._put(info, lambda: src.open("rb"))

    def add_symlink(self, path: str, target: str, *, uid: int = 0, gid: int = 0) -> None:
        info = _info(path, tarfile.SYMTYPE, 0o777, uid, gid)
        info.linkname = target
        self._put(info, None)

    def add_tree(self, root: Path, dest: str, *, uid: int = 0, gid: int = 0, exclude: Callable[[str], bool] = lambda _n: False) -> None:
        """Copy a directory tree to `dest`, keeping modes and symlinks; owners become `uid`/`gid`.

        `exclude(name)` skips files and directories by name (caches such as `__pycache__`). Hard links
        are copied as separate files: trees added this way are small (an app, a staging dir).
        """
        self.add_dir(dest, mode=stat.S_IMODE(root.stat().st_mode), uid=uid, gid=gid)
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(n for n in dirnames if not exclude(n))
            base = Path(dirpath)
            rel = base.relative_to(root)
            for name in sorted(dirnames + [f for f in filenames if not exclude(f)]):
                src = base / name
                path = f"{dest}/{rel / name}" if str(rel) != "." else f"{dest}/{name}"
                st = src.lstat()
                mode = stat.S_IMODE(st.st_mode)
                if stat.S_ISLNK(st.st_mode):
                    self.add_symlink(path, os.readlink(src), uid=uid, gid=gid)
                elif stat.S_ISDIR(st.st_mode):
                    self.add_dir(path, mode=mode, uid=uid, gid=gid)
                elif stat.S_ISREG(st.st_mode):
                    self.add_file(path, src, mode=mode, uid=uid, gid=gid)
                # Sockets, fifos and devices have no place in an image layer: skipped.

    def add_tarball(self, tar_path: Path, *, exclude: Callable[[str], bool] = lambda _p: False) -> None:
        """Take every entry of a root filesystem tarball, keeping owners, modes, links and file capabilities.

        Device nodes are dropped (the runtime mounts its own /dev); `exclude(path)` drops more.
        """
        tar = tarfile.open(tar_path, "r:*")
        for src in tar.getmembers():
            path = normalise(src.name)
            if not path or exclude(path) or src.ischr() or src.isblk() or src.isfifo():
                continue
            info = _info(path, src.type, src.mode, src.uid, src.gid)
            info.pax_headers = {k: v for k, v in src.pax_headers.items() if k.startswith("SCHILY.xattr.")}
            if src.issym():
                info.linkname = src.linkname
            elif src.islnk():
                info.linkname = normalise(src.linkname)
            opener: Opener | None = None
            if src.isreg():
                info.size = src.size
                opener = _tar_opener(tar, src)
            self._put(info, opener)

    def _put(self, info: tarfile.TarInfo, opener: Opener | None) -> None:
        self.members[info.name] = Member(info, opener)


def normalise(name: str) -> str:
    """`./usr/bin/` and `/usr/bin` both become `usr/bin`; the root itself becomes ``."""
    while name.startswith("./"):
        name = name[2:]
    name = name.strip("/")
    return "" if name == "." else name


def _info(path: str, kind: bytes, mode: int, uid: int, gid: int) -> tarfile.TarInfo:
    name = normalise(path)
    if not name:
        raise ValueError(f"a layer entry needs a path below the root, not {path!r}")
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = stat.S_IMODE(mode)
    info.uid, info.gid = uid, gid
    info.uname = info.gname = ""
    info.mtime = FIXED_MTIME
    return info


def _tar_opener(tar: tarfile.TarFile, member: tarfile.TarInfo) -> Opener:
    def opener() -> IO[bytes]:
        f = tar.extractfile(member)
        assert f is not None  # a regular file always has content
        return f

    return opener


def ordered(contents: LayerContents) -> list[Member]:
    """Members in write order: sorted by path, missing parent directories added, hard links after their file.

    Sorting puts a directory before everything in it (its path is a prefix). A hard link must follow the
    file it names; when it would not, the first path of the group (in sort order) carries the content and
    the others link to it, which describes the same files.
    """
    members = dict(contents.members)
    for name in list(members):
        parent = name.rpartition("/")[0]
        while parent and parent not in members:
            members[parent] = Member(_info(parent, tarfile.DIRTYPE, 0o755, 0, 0))
            parent = parent.rpartition("/")[0]
    groups: dict[str, list[str]] = {}
    for name, m in members.items():
        if m.info.islnk():
            groups.setdefault(m.info.linkname, []).append(name)
    for target, links in groups.items():
        first = min([target, *links])
        if first == target or target not in members:
            continue
        holder = members[target]
        content = _renamed(holder.info, first)
        members[first] = Member(content, holder.open)
        for name in [target, *links]:
            if name != first:
                link = _renamed(members[name].info, name)
                link.type, link.linkname, link.size = tarfile.LNKTYPE, first, 0
                members[name] = Member(link)
    return [members[k] for k in sorted(members)]


def _renamed(info: tarfile.TarInfo, name: str) -> tarfile.TarInfo:
    new = _info(name, info.type, info.mode, info.uid, info.gid)
    new.size, new.linkname, new.pax_headers = info.size, info.linkname, dict(info.pax_headers)
    return new


class _HashingWriter(io.RawIOBase):
    """A write-only file that counts and hashes what passes through, so a blob is read only once."""

    def __init__(self, target: BinaryIO) -> None:
        self.target = target
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b: bytes | bytearray | memoryview) -> int:  # type: ignore[override]  # tarfile writes bytes only
        self.sha.update(b)
        self.size += len(b)
        return self.target.write(b)


def write_tar(members: Iterator[Member] | list[Member], out: Path) -> Blob:
    """Write members in the order given to `out` (atomically) and return its digest and size."""
    tmp = out.with_name(out.name + ".part")
    with tmp.open("wb") as f:
        hw = _HashingWriter(f)
        with tarfile.open(fileobj=hw, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for m in members:
                if m.open is None:
                    tar.addfile(m.info)
                else:
                    with m.open() as content:
                        tar.addfile(m.info, content)
        digest, size = f"sha256:{hw.sha.hexdigest()}", hw.size
    tmp.replace(out)
    return Blob(out, digest, size)


def write_layer(contents: LayerContents, out: Path) -> Blob:
    """Write one layer tar; its digest is also its diff_id (layers are stored uncompressed)."""
    return write_tar(ordered(contents), out)
