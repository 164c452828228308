"""Slim a `pip install --target` directory down to what the program installed in it loads.

Each step leaves the directory a true record of itself: a distribution removed goes with its metadata,
and `refresh_records` rewrites every RECORD after the others ran (a deleted file leaves it, a rewritten
one gets its new hash and size), so `pip show -f` and `pip uninstall` in the image see what is there.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
import shutil
from collections.abc import Callable, Collection, Iterable
from email.parser import HeaderParser
from pathlib import Path

from envci.errors import ConfigError

REQUIREMENT_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical_name(name: str) -> str:
    """A distribution's name as PyPI compares them: `Aiohttp_Retry` and `aiohttp-retry` are one."""
    return re.sub(r"[-_.]+", "-", name).lower()


def distributions(site: Path) -> dict[str, Path]:
    """Canonical name -> the `*.dist-info` directory of every distribution installed in `site`."""
    out: dict[str, Path] = {}
    for info in sorted(site.glob("*.dist-info")):
        name = HeaderParser().parsestr((info / "METADATA").read_text(errors="replace")).get("Name")
        if name:
            out[canonical_name(name)] = info
    return out


def requirements(info: Path) -> set[str]:
    """The canonical names a distribution requires whatever extras are asked for. A requirement under an
    environment marker counts: it holds on some Python, and keeping too much is the safe mistake."""
    metadata = HeaderParser().parsestr((info / "METADATA").read_text(errors="replace"))
    out: set[str] = set()
    for line in metadata.get_all("Requires-Dist") or []:
        _spec, _, marker = line.partition(";")
        found = REQUIREMENT_NAME.match(line)
        if found and "extra" not in marker:
            out.add(canonical_name(found.group(1)))
    return out


def drop_distributions(site: Path, names: Iterable[str], *, required_by: Collection[str] = ()) -> list[str]:
    """Uninstall these distributions by their RECORD; returns the names that were installed.

    Fails, removing nothing, when one that stays requires one of them, unless it is named in
    `required_by` (a distribution whose part that needs them is removed as well)."""
    installed = distributions(site)
    doomed = {canonical_name(n) for n in names} & set(installed)
    allowed = {canonical_name(n) for n in required_by}
    for name, info in installed.items():
        if name in doomed or name in allowed:
            continue
        needed = sorted(requirements(info) & doomed)
        if needed:
            raise ConfigError(
                f"{name} requires {', '.join(needed)}, which would be left out",
                file="envci/images/definitions.py",
                field="ENVCI_DROPPED_DISTRIBUTIONS",
                hint=f"keep what {name} requires: take it off that list",
            )
    for name in sorted(doomed):
        _uninstall(site, installed[name])
    return sorted(doomed)


def _uninstall(site: Path, info: Path) -> None:
    root = site.resolve()
    parents: set[Path] = set()
    for path in _record_paths(info):
        target = (site / path).resolve()
        if root not in target.parents:
            continue  # a script pip put outside the target directory: not ours to delete
        if target.is_file() or target.is_symlink():
            target.unlink()
            parents.add(target.parent)
    shutil.rmtree(info, ignore_errors=True)
    # Packages' directories, emptied above, go too; deepest first, so a parent follows its children.
    for parent in sorted(parents, key=lambda p: len(p.parts), reverse=True):
        while parent != root and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent


def _record_paths(info: Path) -> list[str]:
    record = info / "RECORD"
    if not record.is_file():
        return []
    return [row[0] for row in csv.reader(io.StringIO(record.read_bytes().decode())) if row]


def remove_paths(site: Path, globs: Iterable[str]) -> list[str]:
    """Delete what each glob (relative to `site`) matches; returns the relative paths deleted."""
    gone: list[str] = []
    for pattern in globs:
        for path in sorted(site.glob(pattern)):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            gone.append(path.relative_to(site).as_posix())
    return gone


def keep_only(site: Path, parents: Iterable[str], keep: Collection[str]) -> list[str]:
    """In each of `parents` (relative to `site`), delete the subdirectories not named in `keep`; files
    stay. Returns the relative paths deleted."""
    gone: list[str] = []
    for parent in parents:
        folder = site / parent
        if not folder.is_dir():
            continue
        for child in sorted(folder.iterdir()):
            if child.is_dir() and not child.is_symlink() and child.name not in keep:
                shutil.rmtree(child)
                gone.append(child.relative_to(site).as_posix())
    return gone


Strip = Callable[[Path], None]


def strip_debug_info(site: Path, strip: Strip) -> list[str]:
    """Remove the debug information some wheels leave in their extension modules (PyYAML's is 2.7 MB, of
    which 2.4 MB are DWARF). Only modules that carry it are touched, and never the libraries auditwheel
    grafts into `*.libs` directories: they are patched ELF files that binutils may not rewrite faithfully."""
    done: list[str] = []
    for path in sorted(site.rglob("*.so")):
        if path.is_symlink() or any(part.endswith(".libs") for part in path.relative_to(site).parts):
            continue
        if b".debug_info" in path.read_bytes():
            strip(path)
            done.append(path.relative_to(site).as_posix())
    return done


def refresh_records(site: Path) -> int:
    """Rewrite each RECORD to list what is there: drop the files gone, rehash the files changed. Returns
    the number of RECORD files rewritten."""
    rewritten = 0
    for record in sorted(site.glob("*.dist-info/RECORD")):
        old = record.read_bytes().decode()  # as written: read_text would turn pip's CRLF into LF
        rows = [row for row in csv.reader(io.StringIO(old)) if row]
        kept: list[list[str]] = []
        for row in rows:
            path = site / row[0]
            if not (path.is_file() or path.is_symlink()):
                continue
            if len(row) >= 3 and row[1] and path.is_file():
                row = [row[0], _record_hash(path), str(path.stat().st_size)]
            kept.append(row)
        out = io.StringIO()
        csv.writer(out).writerows(kept)  # the dialect pip writes: quoted as needed, CRLF line ends
        if out.getvalue() != old:
            record.write_bytes(out.getvalue().encode())
            rewritten += 1
    return rewritten


def _record_hash(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).decode().rstrip("=")
