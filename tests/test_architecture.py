"""The architecture is enforced: the import-linter contracts of pyproject.toml hold (layers,
independent backends and step kinds, no subpackage cycles), and no two pot_zk modules import
each other, directly or through others (function-local imports count)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def module_cycles(graph: grimp.ImportGraph, package: str) -> list[list[str]]:
    """The strongly connected components of more than one module among ``package``'s modules."""
    modules = sorted(m for m in graph.modules if m == package or m.startswith(package + "."))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if not (imported == package or imported.startswith(package + ".")):
                continue
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for module in modules:
        if module not in index:
            visit(module)
    return components


def test_the_import_contracts_hold():
    assert LINT_IMPORTS.exists(), f"lint-imports is not installed beside {sys.executable}: pip install '.[dev]'"
    linted = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert "0 broken" in linted.stdout


def test_no_pot_zk_modules_import_each_other_in_a_cycle():
    graph = grimp.build_graph("pot_zk", include_external_packages=False, cache_dir=None)
    assert module_cycles(graph, "pot_zk") == []


def test_the_cycle_finder_finds_a_cycle(tmp_path, monkeypatch):
    """A finder that cannot fail proves nothing: two modules importing each other, one of
    them only inside a function, are one cycle."""
    package = tmp_path / "cyclic"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from cyclic import b\n")
    (package / "b.py").write_text("def late():\n    from cyclic import a\n    return a\n")
    (package / "c.py").write_text("from cyclic import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("cyclic", include_external_packages=False, cache_dir=None)
    assert module_cycles(graph, "cyclic") == [["cyclic.a", "cyclic.b"]]
