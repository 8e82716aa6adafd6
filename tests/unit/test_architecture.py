"""The package's shape: no import cycles between its modules, and every module says its one job in a docstring.

The layers themselves are import-linter contracts in pyproject.toml (``lint-imports``, run by ``tox -e lint``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

PACKAGE = Path(__file__).parents[2] / "mlflowkit"

# Modules of a cycle that is being broken now, by the branch that breaks it. A cycle among them alone is tolerated
# until it lands; a cycle that reaches any other module fails. Empty now: the spec wing imports nothing above it.
BEING_BROKEN: frozenset[str] = frozenset()


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Each import cycle once, as the modules along it (the first repeated at the end), shortest first."""
    seen: set[frozenset[str]] = set()
    cycles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer) if imported in graph.modules else None
            if back and frozenset(back) not in seen:
                seen.add(frozenset(back))
                cycles.append([importer, *back])
    return sorted(cycles, key=len)


def test_no_import_cycles() -> None:
    """Counting imports inside functions and under TYPE_CHECKING: a cycle of either kind is one to untangle."""
    graph = grimp.build_graph("mlflowkit")
    cycles = [c for c in import_cycles(graph) if not set(c) <= BEING_BROKEN]
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(m.removeprefix("mlflowkit.") for m in c) for c in cycles)


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for module in ("p", "p.a", "p.b", "p.c"):
        graph.add_module(module)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.c")
    assert import_cycles(graph) == []
    graph.add_import(importer="p.c", imported="p.a")
    assert [set(c) for c in import_cycles(graph)] == [{"p.a", "p.b", "p.c"}]


def test_every_module_says_its_job() -> None:
    """A docstring whose first line is a sentence, in every module of the package (STYLE.md)."""
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        first = (doc or "").strip().split("\n", 1)[0]
        if len(first) < 20:
            missing.append(str(path.relative_to(PACKAGE.parent)))
    assert not missing, "modules without a docstring saying their job: " + ", ".join(missing)
