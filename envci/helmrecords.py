"""Helm's release records, read from the cluster instead of by running `helm`, and the decisions made on them.

Helm 3 keeps each revision of a release as a Secret (its default storage driver) or a ConfigMap in the
release's namespace, labelled `owner=helm,name=<release>,version=<revision>`; its `release` field is the
release as gzipped, base64-encoded JSON (a Secret's data is base64 once more). Reading those records costs one
API call where `helm status`/`helm get values`/`helm history` each cost a process of ~0.1 s CPU, so whether a
release must be installed, upgraded, repaired or left alone is decided here, purely, on what they say.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from envci.errors import ConfigError

# Helm's storage drivers that keep records in the namespace, and the kind each uses.
RECORD_KINDS = {"": "Secret", "secret": "Secret", "secrets": "Secret", "configmap": "ConfigMap", "configmaps": "ConfigMap"}

# A release in one of these states was left by an interrupted helm: nothing can proceed until it is repaired.
_UNINSTALL_FIRST = {"pending-install", "uninstalling"}
_ROLLBACK_FIRST = {"pending-upgrade", "pending-rollback"}
# Hooks that only `helm uninstall` runs; a namespace deletion would skip them.
_DELETE_HOOKS = {"pre-delete", "post-delete"}

Plan = Literal["install", "upgrade", "keep", "uninstall-first", "rollback-first"]


@dataclass(frozen=True)
class ChartId:
    """What a release record says about its chart; version None when it cannot be known beforehand."""

    name: str
    version: str | None
    content: str | None = None
    """A local chart's templates and default values, digested as `record_content` digests a record's: a
    chart edited without a version bump is still an upgrade. None: not known beforehand (a remote chart)."""


UNVERIFIABLE = "unverifiable"
"""The content of a local chart with subcharts: its record does not keep theirs, so it never matches."""


def content_digest(templates: Iterable[tuple[str, bytes]], values: Any) -> str:
    """Pure: one digest of a chart's templates (name, bytes) and its default values."""
    h = hashlib.sha256()
    for name, data in sorted(templates):
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    h.update(json.dumps(_plain_numbers(values or {}), sort_keys=True, default=str).encode())
    return h.hexdigest()


def _plain_numbers(value: Any) -> Any:
    """Helm keeps values as JSON numbers, so a whole float reads back as an int: compare them so."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): _plain_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_numbers(v) for v in value]
    return value


def record_content(record: dict[str, Any]) -> str | None:
    """The digest of the chart a release record ran: its templates and default values."""
    chart = record.get("chart") or {}
    try:
        templates = [(str(t["name"]), base64.b64decode(t.get("data") or "")) for t in chart.get("templates") or []]
    except (KeyError, TypeError, binascii.Error):
        return None
    return content_digest(templates, chart.get("values"))


def decode_record(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The release JSON of one Secret or ConfigMap record; None when it is not one Helm could read either."""
    raw = (obj.get("data") or {}).get("release")
    if not isinstance(raw, str):
        return None
    try:
        text = base64.b64decode(raw) if obj.get("kind") == "Secret" else raw.encode()
        blob = base64.b64decode(text)
        if blob[:2] == b"\x1f\x8b":
            blob = gzip.decompress(blob)
        out = json.loads(blob)
    except (binascii.Error, ValueError, OSError, EOFError):
        return None
    return out if isinstance(out, dict) else None


def latest(records: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest revision among one release's decoded records."""
    best: dict[str, Any] | None = None
    for rec in records:
        if isinstance(rec.get("version"), int) and (best is None or rec["version"] > best["version"]):
            best = rec
    return best


def status_of(record: dict[str, Any]) -> str:
    return str((record.get("info") or {}).get("status") or "unknown")


def merge_values(layers: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Values files merged as `helm -f a -f b` merges them: maps key by key, anything else replaced."""
    from envci.config.overrides import merge  # here: teardown reads records without loading configuration code

    out: dict[str, Any] = {}
    for layer in layers:
        out = merge(out, layer)
    return out


def plan(current: dict[str, Any] | None, chart: ChartId, values: dict[str, Any]) -> Plan:
    """What to do so the release runs `chart` with `values`.

    Unchanged means: deployed, same chart name and version, same user values. A chart whose version
    cannot be known before installing it (a remote chart without a pinned version) is always upgraded."""
    if current is None:
        return "install"
    status = status_of(current)
    if status in _UNINSTALL_FIRST:
        return "uninstall-first"
    if status in _ROLLBACK_FIRST:
        return "rollback-first"
    if status != "deployed" or chart.version is None:
        return "upgrade"
    meta = (current.get("chart") or {}).get("metadata") or {}
    same_chart = meta.get("name") == chart.name and str(meta.get("version")) == chart.version
    if chart.content is not None and chart.content != record_content(current):
        same_chart = False  # edited in place, same version: what a chart in the application's repository does
    return "keep" if same_chart and (current.get("config") or {}) == values else "upgrade"


def needs_uninstall(record: dict[str, Any], namespace: str, namespaced: Callable[[str, str], bool | None]) -> str | None:
    """Why deleting the namespace is not enough to remove this release, or None when it is.

    A namespace deletion removes every namespaced object of a release and its records; `helm uninstall`
    is needed only for objects elsewhere (cluster-scoped, or in another namespace) and for delete hooks.
    `namespaced(apiVersion, kind)`: True/False from API discovery, None when the cluster does not know."""
    for hook in record.get("hooks") or []:
        if _DELETE_HOOKS & set(hook.get("events") or []):
            return f"its {hook.get('kind', 'hook')} {hook.get('name', '')} runs on delete"
    try:
        docs = list(yaml.safe_load_all(record.get("manifest") or ""))
    except yaml.YAMLError:
        return "its manifest cannot be read"
    for doc in docs:
        if not isinstance(doc, dict) or not doc.get("kind"):
            continue
        kind, api_version = str(doc["kind"]), str(doc.get("apiVersion", ""))
        meta = doc.get("metadata") or {}
        scope = namespaced(api_version, kind)
        if scope is None or scope is False:
            return f"{kind} {meta.get('name', '')} is cluster-scoped" if scope is False else f"{kind} is unknown to the cluster"
        if meta.get("namespace") not in (None, "", namespace):
            return f"{kind} {meta.get('name', '')} is in namespace {meta['namespace']}"
    return None


def local_chart_id(path: Path) -> ChartId:
    """Name, version and content from a chart directory or a packaged chart."""
    try:
        files = _chart_files(path)
        meta = yaml.safe_load(io.StringIO(files.get("Chart.yaml", b"").decode())) or {}
        values = yaml.safe_load(io.StringIO(files.get("values.yaml", b"").decode())) or {}
    except (OSError, StopIteration, tarfile.TarError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"chart {path}: cannot read its Chart.yaml: {e}", hint="a chart is a directory (or .tgz) with a Chart.yaml") from None
    if not isinstance(meta, dict) or not meta.get("name"):
        raise ConfigError(f"chart {path}: Chart.yaml has no name", file=str(path / "Chart.yaml") if path.is_dir() else str(path))
    subcharts = bool(meta.get("dependencies")) or any(name.startswith("charts/") for name in files)
    templates = [(name, data) for name, data in files.items() if name.startswith("templates/")]
    content = UNVERIFIABLE if subcharts else content_digest(templates, values)
    return ChartId(str(meta["name"]), str(meta["version"]) if meta.get("version") is not None else None, content)


def _chart_files(path: Path) -> dict[str, bytes]:
    """A chart's Chart.yaml, values.yaml, templates/ and charts/ files by their path in the chart."""

    def wanted(name: str) -> bool:
        return name in ("Chart.yaml", "values.yaml") or name.startswith(("templates/", "charts/"))

    if path.is_dir():
        if not (path / "Chart.yaml").is_file():
            raise OSError(f"no Chart.yaml in {path}")
        return {
            rel: f.read_bytes()
            for f in sorted(path.rglob("*")) if f.is_file() and wanted(rel := f.relative_to(path).as_posix())
        }
    out: dict[str, bytes] = {}
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            top, _, rel = member.name.partition("/")
            if member.isfile() and wanted(rel):
                extracted = tar.extractfile(member)
                out[rel] = extracted.read() if extracted else b""
    if "Chart.yaml" not in out:
        raise OSError(f"no Chart.yaml at the top of {path}")
    return out


def remote_chart_id(ref: str, version: str | None) -> ChartId:
    """A repository or OCI chart as its record will name it: the last path segment."""
    return ChartId(ref.rstrip("/").rsplit("/", 1)[-1].split(":", 1)[0] if ref.startswith("oci://") else ref.rsplit("/", 1)[-1], version)
