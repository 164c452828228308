"""One way to the Kubernetes API: only envci/kube/client.py imports the Kubernetes client.

Everything else calls the `Kube` adapter's methods, which carry the retries, the timeouts and the
error mapping (API errors become InfrastructureError with the Status message only). A module that
imports `kubernetes`, or reaches into a `Kube` for a raw client object, would bypass all three; and
the stage tests on tests/fakekube.py would no longer cover it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from kubestub import transport  # tests/ is on sys.path

from envci.kube.client import Kube

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "envci"

ALLOWED: dict[str, str] = {
    "envci/kube/client.py": "the adapter itself: the one place envci talks to the Kubernetes API",
    "envci/localcluster/": "the embedded local cluster's own machinery (the node agent mirrors pods, services and "
    "policies onto the host's iptables); it runs inside the cluster it serves, not on envci's user-facing path",
}
"""Paths (a trailing / for a whole package) that may import `kubernetes`, and why."""

RAW_ATTRIBUTES = frozenset({
    "api", "core", "coordination", "batch", "apps", "networking", "rbac", "custom", "dyn", "dynamic", "api_client", "call", "resource",
})
"""What callers once took from a `Kube` to call the client directly: its ApiClient, the generated API
objects, the dynamic client, and the bare `call`/`resource` helpers."""


def allowed(rel: str) -> bool:
    return any(rel == path or (path.endswith("/") and rel.startswith(path)) for path in ALLOWED)


def modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        yield rel, ast.parse(path.read_text(encoding="utf-8"), filename=rel)


def kubernetes_imports(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Imports of the client: `import kubernetes...`, `from kubernetes... import`, and
    `importlib.import_module("kubernetes...")` / `__import__("kubernetes...")`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "kubernetes":
                    yield node.lineno, f"import {alias.name}"
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "kubernetes":
            yield node.lineno, f"from {node.module} import ..."
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            arg = node.args[0].value
            if name in ("import_module", "__import__") and isinstance(arg, str) and arg.split(".")[0] == "kubernetes":
                yield node.lineno, f"{name}({arg!r})"


def names_a_kube(node: ast.expr) -> bool:
    """`kube`, `self.kube`, `ctx.kube`, `self._kube`: how envci names a `Kube` wherever it holds one."""
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return name.lstrip("_") == "kube"


def raw_client_uses(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """`<a Kube>.core`, `<a Kube>.api`, ... and any private attribute of a Kube."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and names_a_kube(node.value):
            if node.attr in RAW_ATTRIBUTES or node.attr.startswith("_"):
                yield node.lineno, f"{ast.unparse(node)}"


def test_only_the_adapter_imports_the_kubernetes_client() -> None:
    found = [f"{rel}:{line}: {what}" for rel, tree in modules() if not allowed(rel) for line, what in kubernetes_imports(tree)]
    assert not found, "modules outside the Kube adapter import the Kubernetes client; add a method to Kube instead:\n" + "\n".join(found)


def test_no_module_reaches_into_a_kube_for_a_raw_client() -> None:
    found = [f"{rel}:{line}: {what}" for rel, tree in modules() if not allowed(rel) for line, what in raw_client_uses(tree)]
    assert not found, "modules call the Kubernetes client through a Kube's internals; add a method to Kube instead:\n" + "\n".join(found)


def test_the_adapter_exposes_no_raw_client_object() -> None:
    kube = Kube(transport())
    leaked = {
        name: type(value).__module__ for name in dir(kube) if not name.startswith("_")
        for value in [getattr(kube, name)] if type(value).__module__.split(".")[0] == "kubernetes"
    }
    assert not leaked, f"Kube hands out Kubernetes client objects: {leaked}"


def test_every_allowed_path_exists_and_still_needs_its_exception() -> None:
    for path, why in ALLOWED.items():
        assert why, f"{path} is allowed with no reason given"
        hits = [rel for rel, tree in modules() if (rel == path or rel.startswith(path)) and any(kubernetes_imports(tree))]
        assert hits, f"{path} imports no Kubernetes client any more: remove it from ALLOWED"


def test_the_checks_catch_what_they_are_for() -> None:
    caught = """
import kubernetes.client
from kubernetes.stream import stream
import importlib
importlib.import_module("kubernetes.watch")
x = ctx.kube.core.read_namespaced_pod("p", "ns")
y = self.kube.api.sanitize_for_serialization(z)
w = kube._dynamic()
"""
    tree = ast.parse(caught)
    assert sorted(line for line, _ in kubernetes_imports(tree)) == [2, 3, 5]
    assert sorted(line for line, _ in raw_client_uses(tree)) == [6, 7, 8]
    fine = "from envci.kube.client import Kube\nkube.get('v1', 'Pod', 'p', 'ns')\nself.kubeconfig\nhelm.api\n"
    assert not list(kubernetes_imports(ast.parse(fine))) and not list(raw_client_uses(ast.parse(fine)))


def test_only_the_adapter_uses_the_transport() -> None:
    """The transport carries no retries and no error mapping: the adapter adds both."""
    found = [
        f"{rel}:{node.lineno}" for rel, tree in modules() if rel not in ("envci/kube/client.py", "envci/kube/transport.py")
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "envci.kube.transport"
        or isinstance(node, ast.Import) and any(a.name == "envci.kube.transport" for a in node.names)
    ]
    assert not found, "modules use the HTTP transport directly; add a method to Kube instead:\n" + "\n".join(found)


def test_the_stages_start_without_the_kubernetes_package() -> None:
    """Importing the Kubernetes client costs more CPU than the rest of a command's start-up; only exec
    and port-forward need it (websockets), and they import it when called."""
    stages = ["provision", "wait_ready", "teardown", "seed", "test", "status", "reap"]
    code = "import sys\n" + "".join(f"import envci.stages.{s}\n" for s in stages) + "import envci.cli, envci.commands\n" \
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'kubernetes'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
