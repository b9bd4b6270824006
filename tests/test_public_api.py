"""The curated public API and the layering: no import cycles (between sub-packages or modules), and project
modules imported at module level, not inside functions (docs/architecture.md, "Import rule")."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "debiaskit"
PACKAGES = ["data", "models", "methods", "train", "experiments", "metrics", "leakage", "generative", "report",
            "audit"]

#: the function-local ``debiaskit`` imports that stay, as (file under src/debiaskit, imported module), each with
#: its reason. Everything else imports project modules at module level; a cycle is broken by moving code to
#: the layer where it belongs. (The CLI's one lazy import of a command module is ``importlib.import_module``.)
LOCAL_IMPORTS_ALLOWED = {
    # `import debiaskit` stays free of torch: debiaskit.fit / debiaskit.RunResult load the API on first use
    ("__init__.py", "debiaskit"),
}


@pytest.mark.parametrize("pkg", PACKAGES)
def test_every_subpackage_has_a_curated_all(pkg):
    mod = importlib.import_module(f"debiaskit.{pkg}")
    assert mod.__doc__, pkg
    names = getattr(mod, "__all__", None)
    assert names, f"debiaskit.{pkg} has no __all__"
    missing = [n for n in names if not hasattr(mod, n)]
    assert not missing, f"debiaskit.{pkg}.__all__ names missing attributes: {missing}"


def test_documented_imports_work_in_a_fresh_process():
    code = ("from debiaskit.data import BiasedDataset, get_splits; "
            "import debiaskit.methods, debiaskit.generative, debiaskit.leakage; "
            "from debiaskit.generative import least_norm_edit, paired_latents, fit_hyperplane, train_gan")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=SRC.parents[1])


def _runtime_imports(tree: ast.Module) -> list[str]:
    """Project modules imported at module level (not inside functions or ``if TYPE_CHECKING``)."""
    out: list[str] = []

    def visit(nodes):
        for n in nodes:
            if isinstance(n, ast.Import):
                out.extend(a.name for a in n.names)
            elif isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
                out.append(n.module)
            elif isinstance(n, ast.If):
                if isinstance(n.test, ast.Name) and n.test.id == "TYPE_CHECKING":
                    continue
                visit(n.body)
                visit(n.orelse)
            elif isinstance(n, ast.Try):
                visit(n.body)
                for h in n.handlers:
                    visit(h.body)
    visit(tree.body)
    return [m for m in out if m == "debiaskit" or m.startswith("debiaskit.")]


def _node(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "<root>"


def test_no_import_cycles_between_subpackages():
    edges: dict[str, set[str]] = defaultdict(set)
    for f in SRC.rglob("*.py"):
        rel = f.relative_to(SRC).with_suffix("").parts
        mod = ".".join(("debiaskit", *rel)).removesuffix(".__init__")
        for imp in _runtime_imports(ast.parse(f.read_text(encoding="utf-8"))):
            a, b = _node(mod), _node(imp)
            if a != b and b != "<root>":  # debiaskit/__init__ holds only the version and lazy attributes
                edges[a].add(b)
    cycles = []
    for start in list(edges):
        stack = [(start, [start])]
        while stack:
            n, path = stack.pop()
            for m in edges.get(n, ()):
                if m == start:
                    cycles.append(" -> ".join([*path, m]))
                elif m not in path:
                    stack.append((m, [*path, m]))
    assert not cycles, "package-level import cycles:\n" + "\n".join(sorted(set(cycles)))


def _module_name(f: Path) -> str:
    return ".".join(("debiaskit", *f.relative_to(SRC).with_suffix("").parts)).removesuffix(".__init__")


def test_no_import_cycles_between_modules():
    """Module granularity, every import (also inside functions): ``from debiaskit.x import y`` is an edge to
    ``debiaskit.x.y`` when that is a module."""
    files = {_module_name(f): f for f in SRC.rglob("*.py")}
    edges: dict[str, set[str]] = defaultdict(set)
    for mod, f in files.items():
        if mod == "debiaskit":  # holds only the version and the lazy debiaskit.fit (see LOCAL_IMPORTS_ALLOWED)
            continue
        tree = ast.parse(f.read_text(encoding="utf-8"))
        for n in ast.walk(tree):
            if isinstance(n, ast.ImportFrom) and n.level == 0 and n.module in files:
                edges[mod].update(f"{n.module}.{a.name}" if f"{n.module}.{a.name}" in files else n.module
                                  for a in n.names)
            elif isinstance(n, ast.Import):
                edges[mod].update(a.name for a in n.names if a.name in files)
    cycles, done = [], set()

    def visit(m: str, path: list[str]) -> None:
        for nxt in sorted(edges.get(m, ())):
            if nxt in path:
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in done:
                visit(nxt, [*path, nxt])
        done.add(m)

    for m in sorted(files):
        if m not in done:
            visit(m, [m])
    assert not cycles, "module import cycles:\n" + "\n".join(sorted(set(cycles)))


def _function_local_imports(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, module) of every ``debiaskit`` (or relative) import inside a function or class body."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for n in ast.walk(node):
            if isinstance(n, ast.Import):
                out.extend((n.lineno, a.name) for a in n.names if a.name.split(".")[0] == "debiaskit")
            elif isinstance(n, ast.ImportFrom) and (n.level or (n.module or "").split(".")[0] == "debiaskit"):
                out.append((n.lineno, "." * n.level + (n.module or "")))
    return sorted(set(out))


def test_project_modules_are_imported_at_module_level():
    found = []
    for f in sorted(SRC.rglob("*.py")):
        rel = f.relative_to(SRC).as_posix()
        for line, mod in _function_local_imports(ast.parse(f.read_text(encoding="utf-8"))):
            if (rel, mod) not in LOCAL_IMPORTS_ALLOWED:
                found.append(f"src/debiaskit/{rel}:{line}: import of {mod} inside a function")
    assert not found, ("project modules are imported at module level (docs/architecture.md, 'Import rule'); "
                       "move the import to the top, or the code to the layer where it belongs:\n" + "\n".join(found))


def test_the_local_import_checker_sees_nested_and_relative_imports():
    tree = ast.parse("import os\nfrom debiaskit.io import write_json\n"
                     "def f():\n    from debiaskit.data import get_splits\n    import numpy\n"
                     "class C:\n    def g(self):\n        if True:\n            from . import errors\n"
                     "            import debiaskit.io as io\n")
    assert _function_local_imports(tree) == [(4, "debiaskit.data"), (9, "."), (10, "debiaskit.io")]
