"""External resources: teardown finds each kind's deleter through the registry, never through a seeder."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from envci import buckets, external
from envci.errors import InfrastructureError

ROOT = Path(__file__).resolve().parents[2]


def envci_imports(module: str) -> set[str]:
    path = ROOT / (module.replace(".", "/") + ".py")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("envci"):
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("envci")}
    return out


def test_the_core_imports_no_plugin_and_the_plugin_not_the_core() -> None:
    assert not {m for m in envci_imports("envci.external") if m.startswith(("envci.seeders", "envci.buckets"))}
    assert not [m for m in external.PLUGINS.values() if m.startswith("envci.seeders")]  # teardown never loads a seeder
    assert not {m for m in envci_imports("envci.buckets") if m.startswith(("envci.external", "envci.seeders"))}  # no cycle


def test_every_known_kind_has_a_deleter_in_its_plugin_module() -> None:
    for kind in external.PLUGINS:
        assert external.deleter(kind) is not None, f"{external.PLUGINS[kind]} provides no deleter for {kind!r}"
    assert external.deleter(buckets.KIND) is buckets.delete_bucket  # what the s3 seeder records, teardown can delete


def test_tearing_down_a_bucket_loads_no_seeder() -> None:
    code = (
        "import sys, envci.stages.teardown as t, envci.external as x\n"
        "assert x.deleter('s3') is not None\n"
        "print(sorted(m for m in sys.modules if m.startswith('envci.seeders')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_an_unknown_kind_names_the_record_and_a_registered_deleter_is_called(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InfrastructureError, match="do not know how to delete external resource of type 'queue'"):
        external.delete({"type": "queue", "name": "q"})
    seen: list[dict[str, str]] = []
    monkeypatch.setitem(external._deleters, "queue", seen.append)
    external.delete({"type": "queue", "name": "q"})
    assert seen == [{"type": "queue", "name": "q"}]


def test_a_listed_module_that_provides_no_deleter_for_the_kind_is_an_unknown_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(external, "PLUGINS", {**external.PLUGINS, "topic": "envci.s3names"})
    assert external.deleter("topic") is None
    with pytest.raises(InfrastructureError, match="type 'topic'"):
        external.delete({"type": "topic"})
