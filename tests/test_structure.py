"""The package's structure: the import graph between openkb_git's top-level modules and
packages has no cycles and no upward edges (docs/CONTRACTS.md, "Layers")."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "openkb_git"

# The layers, lowest first: a module may import its own layer (without cycles) and the layers
# below, never one above. This list is the single source of truth; docs/CONTRACTS.md repeats it.
# A new shared helper used by low layers (importing nothing of ours but errors) goes first.
LAYERS = [
    {"errors", "frontmatter", "paths", "faults", "fsutil", "tether", "lock", "convert", "compiler"},
    {"merge"},
    {"git"},
    {"kb"},
    {"registry", "history", "hooks"},
    {"views"},
    {"protocol"},
    {"ops"},
    {"cli"},
    {"__main__"},
]
RANK = {unit: rank for rank, layer in enumerate(LAYERS) for unit in layer}


def units() -> set[str]:
    """openkb_git's top-level modules and packages (the package's own __init__ aside)."""
    return {p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py"} | \
        {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}


def imports_of(path: Path) -> set[str]:
    """The top-level units of openkb_git that the module at ``path`` imports, anywhere in it
    (function-level and TYPE_CHECKING imports included)."""
    module = path.relative_to(ROOT).with_suffix("").parts
    package = module[:-1]  # the package a relative import starts from (also for __init__.py)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name.split(".") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[:len(package) - node.level + 1]) if node.level else []
            target = base + (node.module.split(".") if node.module else [])
            # `from . import x` / `from openkb_git import x`: each name may be a unit.
            targets = [target + [alias.name] for alias in node.names] if len(target) == 1 else [target]
        else:
            continue
        for target in targets:
            if target[0] == "openkb_git" and len(target) > 1:
                found.add(target[1])
    return found


def graph() -> dict[str, set[str]]:
    """{unit: the other units it imports}."""
    edges: dict[str, set[str]] = {unit: set() for unit in units()}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).parts
        if rel == ("__init__.py",):
            continue
        unit = rel[0].removesuffix(".py")
        edges[unit] |= {target for target in imports_of(path) if target != unit and target in edges}
    return edges


def test_every_unit_has_a_layer():
    missing = sorted(units() - set(RANK))
    assert not missing, f"openkb_git/{missing} in no layer: add each to LAYERS here and in docs/CONTRACTS.md"


def test_no_upward_imports():
    upward = sorted(f"{unit} (layer {RANK[unit]}) imports {target} (layer {RANK[target]})"
                    for unit, targets in graph().items() for target in targets
                    if unit in RANK and target in RANK and RANK[target] > RANK[unit])
    assert not upward, upward


def test_no_import_cycles():
    edges = graph()
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(unit: str, path: list[str]) -> None:
        state[unit] = 1
        for target in sorted(edges[unit]):
            if state.get(target) == 1:
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[unit] = 2

    for unit in sorted(edges):
        if unit not in state:
            visit(unit, [unit])
    assert not cycles, cycles


def test_the_graph_is_read():
    """The parser sees the imports there are (a broken resolver would pass the tests above)."""
    edges = graph()
    assert {"kb", "errors", "compiler", "protocol"} <= edges["ops"]
    assert "cli" not in {t for targets in edges.values() for t in targets} - edges["__main__"]
    assert edges["errors"] == set()


def test_layers_in_contracts_match():
    """docs/CONTRACTS.md lists the same layers in the same order."""
    text = (ROOT / "docs" / "CONTRACTS.md").read_text(encoding="utf-8")
    line = next(line for line in text.splitlines() if line.startswith("Layers, lowest first:"))
    written = [set(part.strip(" `.").replace("`", "").split(", ")) for part in
               line.removeprefix("Layers, lowest first:").split(" < ")]
    assert written == LAYERS


def test_no_citation_of_a_document_outside_the_repository():
    """Doc comments and docs cite the repository's docs/ (docs/protocol.md, ...), not DESIGN §N."""
    cited = [f"{path.relative_to(ROOT)}:{n}" for folder in ("openkb_git", "docs", "tests")
             for path in sorted((ROOT / folder).rglob("*")) if path.suffix in (".py", ".md")
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if "DESIGN §" in line and path.name != "test_structure.py"]
    assert not cited, cited
