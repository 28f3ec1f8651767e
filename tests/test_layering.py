"""The layering the README and ``faceledger/ports.py`` describe, checked on the source tree.

Every module under ``src/faceledger`` is parsed with :mod:`ast` (nothing is imported) and
its imports are collected: module-level ones, ones inside functions (a deferred import is
still a dependency, often one written to dodge a cycle), and ones under
``if TYPE_CHECKING:``. All three kinds count for the layer rules and for cycles: a
type-only import still couples two modules. The two type-only edges that close a cycle
today are listed in ``TYPE_ONLY_CYCLE_EDGES`` with the reason each is allowed, and the
test checks that each is still there and still type-only, so the list cannot go stale.

``from package import name`` depends on ``package.name`` when that is a module, otherwise
on ``package`` itself. A submodule's implicit import of its own parent package is not an
edge.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "faceledger"

LAYERS_ABOVE_DOMAIN = ("adapters", "services", "web", "cli", "pipeline", "audit", "library")
APPLICATION = ("web", "cli", "library")

TYPE_ONLY_CYCLE_EDGES = {
    ("faceledger.errors", "faceledger.domain.policy"): (
        "PermissionDeniedError.decision is typed as the policy's Decision; errors.py never imports "
        "the domain at run time"
    ),
    ("faceledger.adapters.models.dlib_backend", "faceledger.adapters.models.dlib_flip_helper"): (
        "the backend's constructor is typed with the helper it may be given; the helper imports the "
        "backend only inside its own subprocess entry point"
    ),
}


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    kind: str  # "module", "local" (inside a function) or "type" (under TYPE_CHECKING)
    line: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line} imports {self.target} ({self.kind})"


def _module_names() -> dict[str, tuple[Path, bool]]:
    names: dict[str, tuple[Path, bool]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        names[".".join(parts)] = (path, is_package)
    return names


MODULES = _module_names()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports_of(name: str) -> Iterator[Import]:
    path, is_package = MODULES[name]
    package = name if is_package else name.rpartition(".")[0]

    def targets(node: ast.Import | ast.ImportFrom) -> Iterator[tuple[str, int]]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
            return
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            module = ".".join([*base, node.module] if node.module else base)
        else:
            module = node.module or ""
        submodules = [a.name for a in node.names if f"{module}.{a.name}" in MODULES]
        if len(submodules) < len(node.names):
            yield module, node.lineno
        for sub in submodules:
            yield f"{module}.{sub}", node.lineno

    def walk(node: ast.AST, kind: str) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                for target, line in targets(child):
                    yield Import(name, target, kind, line)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), "type")
                for stmt in child.orelse:
                    yield from walk(ast.Module(body=[stmt], type_ignores=[]), kind)
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                yield from walk(child, "type" if kind == "type" else "local")
            else:
                yield from walk(child, kind)

    yield from walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), "module")


IMPORTS = [imp for name in MODULES for imp in _imports_of(name)]


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _in(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _violations(source_layer: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        str(imp)
        for imp in IMPORTS
        if _layer(imp.source) == source_layer and _in(imp.target, *(f"faceledger.{f}" for f in forbidden))
    ]


def test_the_tree_is_what_the_checks_read() -> None:
    # The parser must see the tree it claims to check: a broken walk would pass every rule below.
    assert {"faceledger.domain.models", "faceledger.services.datadir", "faceledger.web.app"} <= MODULES.keys()
    assert ("faceledger.services.datadir", "faceledger.services.audit") in _edges()
    assert any(imp.kind == "type" for imp in IMPORTS)
    assert any(imp.kind == "local" for imp in IMPORTS)


def test_domain_imports_only_the_standard_library_numpy_and_itself() -> None:
    bad = _violations("domain", LAYERS_ABOVE_DOMAIN)
    allowed_roots = set(sys.stdlib_module_names) | {"numpy", "faceledger"}
    bad += [
        str(imp)
        for imp in IMPORTS
        if _layer(imp.source) == "domain" and imp.target.split(".")[0] not in allowed_roots
    ]
    assert bad == []


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("services", APPLICATION),
        ("adapters", ("services", *APPLICATION)),
        ("pipeline", ("services", *APPLICATION)),
        ("audit", ("services", "pipeline", *APPLICATION)),
    ],
)
def test_lower_layers_do_not_import_higher_ones(layer: str, forbidden: tuple[str, ...]) -> None:
    assert _violations(layer, forbidden) == []


def test_web_and_cli_reach_the_store_only_through_the_services() -> None:
    # Records the web shows (SubjectSummary, FaceInfo, ...) are domain records, not store rows.
    assert _violations("web", ("adapters.store",)) + _violations("cli", ("adapters.store",)) == []


def test_only_the_services_ask_the_door() -> None:
    # The web, the CLI and the library call services that take the person; the services decide
    # (faceledger.services.authorization). A front end asking the door itself would decide beside it.
    bad = [
        str(imp)
        for imp in IMPORTS
        if _in(imp.target, "faceledger.services.authorization") and not _in(imp.source, "faceledger.services")
    ]
    assert bad == []
    assert any(_in(imp.target, "faceledger.services.authorization") for imp in IMPORTS)


def test_sqlalchemy_is_used_only_by_the_store_adapter_and_the_services() -> None:
    # What faceledger/ports.py says: the store owns engine, tables and migrations; the services
    # build SQLAlchemy Core statements on the store's connection; nothing else touches it.
    bad = [
        str(imp)
        for imp in IMPORTS
        if _in(imp.target, "sqlalchemy", "alembic")
        and not _in(imp.source, "faceledger.adapters.store", "faceledger.services")
    ]
    bad += [
        str(imp)
        for imp in IMPORTS
        if _in(imp.target, "alembic") and not _in(imp.source, "faceledger.adapters.store")
    ]
    assert bad == []


def _cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for source, target in edges:
        graph[source].add(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _edges() -> set[tuple[str, str]]:
    return {
        (imp.source, imp.target)
        for imp in IMPORTS
        if imp.target in MODULES
        and imp.target != imp.source
        and not imp.source.startswith(imp.target + ".")  # a submodule's parent package
    }


def test_no_import_cycles_between_faceledger_modules() -> None:
    assert _cycles(_edges() - TYPE_ONLY_CYCLE_EDGES.keys()) == []


@pytest.mark.parametrize("edge", sorted(TYPE_ONLY_CYCLE_EDGES))
def test_each_allowed_cycle_edge_is_still_there_and_type_only(edge: tuple[str, str]) -> None:
    kinds = {imp.kind for imp in IMPORTS if (imp.source, imp.target) == edge}
    assert kinds == {"type"}, TYPE_ONLY_CYCLE_EDGES[edge]
    others = TYPE_ONLY_CYCLE_EDGES.keys() - {edge}
    closes = any(set(edge) <= set(cycle) for cycle in _cycles(_edges() - others))
    assert closes, "the edge no longer closes a cycle: take it off the list"
