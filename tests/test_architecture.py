"""The architecture is enforced: the import-linter contracts of pyproject.toml hold (layers,
independent backends and step kinds, no subpackage cycles, verify apart from the trainer's
code), no two pot_zk modules import each other, directly or through others (function-local
imports count), and importing the auditor's core loads none of the trainer's modules."""

from __future__ import annotations

import json
import re
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


TRAINER_MODULES = (
    "pot_zk.config",
    "pot_zk.runs.session",
    "pot_zk.runs.train",
    "pot_zk.runs.lifecycle",
    "pot_zk.proving.pipeline",
    "pot_zk.proving.executors",
    "pot_zk.proving.handlers",
    "pot_zk.proving.strategies",
    "pot_zk.proving.parking",
)
"""What ``pot-zk verify`` must not load (the contract of pyproject.toml, checked at run time too:
registries and ``pot_zk/__init__`` import by name, which import-linter does not see)."""


def loaded_modules(code: str) -> list[str]:
    """The pot_zk modules a fresh interpreter has loaded after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in sys.modules if m == 'pot_zk' or m.startswith('pot_zk.'))))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def trainer_modules(loaded: list[str]) -> list[str]:
    return [m for m in loaded if any(m == t or m.startswith(t + ".") for t in TRAINER_MODULES)]


def test_importing_the_verifier_loads_none_of_the_trainers_modules_and_as_many_as_the_docs_say():
    loaded = loaded_modules("import pot_zk.verify.run")
    assert trainer_modules(loaded) == [], loaded
    assert "pot_zk.verify.run" in loaded and "pot_zk.bundle.layout" in loaded
    documented = re.search(r"importing `pot_zk.verify.run` loads (\d+) pot_zk modules", (ROOT / "docs" / "architecture.md").read_text())
    assert documented and int(documented.group(1)) == len(loaded), f"docs/architecture.md should say {len(loaded)}"


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


KIND_BRANCH_ALLOWED = {
    # the optimizer decides between two kinds of one model (plain SGD or SGD with momentum)
    "pot_zk/kinds/registry.py",
    "pot_zk/config/build.py",
    # the seed's API names its two kinds: prove_sgd_step, prove_lora_step and the LoRA -> SGD fallback
    "pot_zk/auto_prover.py",
    "pot_zk/prover.py",
}
"""Files outside a kind's own that may still name a concrete kind in a branch (each says why)."""


def concrete_kind_branches(root: Path, kinds: set[str]) -> list[str]:
    """Every ``x == "<kind>"``-style comparison and ``isinstance(x, <a kind's class>)`` in
    ``root``'s package outside that kind's own files (``kinds/<kind>/``,
    ``backends/<backend>/<kind>[.py|/]``)."""
    import ast

    found = []
    for path in sorted((root / "pot_zk").rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        parts = relative.split("/")
        own = {part.removesuffix(".py") for part in parts[1:]} & kinds
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                constants = [n.value for n in [node.left, *node.comparators] if isinstance(n, ast.Constant) and isinstance(n.value, str)]
                named = [c for c in constants if c in kinds and c not in own]
                if named and "kind" in ast.unparse(node).lower():
                    found.append(f"{relative}:{node.lineno}: {ast.unparse(node)}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance" and len(node.args) == 2:
                classes = ast.unparse(node.args[1])
                if any(name.lower() in classes.lower() for name in kinds - own) and ("Spec" in classes or "Statement" in classes or "Step" in classes):
                    found.append(f"{relative}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_branch_names_a_concrete_kind_outside_its_own_files():
    """Shared machinery asks the kind or the statement; only a kind's own files (and the listed
    exceptions) name it in a branch."""
    from pot_zk.kinds.registry import STEP_KINDS

    found = [line for line in concrete_kind_branches(ROOT, set(STEP_KINDS.names())) if line.split(":")[0] not in KIND_BRANCH_ALLOWED]
    assert found == []


def test_the_kind_branch_finder_finds_a_branch(tmp_path):
    """A finder that cannot fail proves nothing: a shared module comparing a kind with "lora"
    and testing for a LoRA statement class is found twice; the same lines in the kind's own
    statement file are not."""
    shared = tmp_path / "pot_zk" / "backends" / "groth16"
    (shared / "lora").mkdir(parents=True)
    branch = 'def f(spec):\n    if spec.kind == "lora":\n        return isinstance(spec, Groth16LoraStatement)\n'
    (shared / "prove.py").write_text(branch)
    (shared / "lora" / "statement.py").write_text(branch)
    assert concrete_kind_branches(tmp_path, {"sgd", "lora"}) == [
        "pot_zk/backends/groth16/prove.py:2: spec.kind == 'lora'",
        "pot_zk/backends/groth16/prove.py:3: isinstance(spec, Groth16LoraStatement)",
    ]
