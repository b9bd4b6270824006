"""The curated public API and the package layering (no import cycles between sub-packages)."""

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
