"""Imports point down only (docs/ARCHITECTURE.md): no module cycles, no upward or sideways imports.

Every ``import`` of the package is read with :mod:`ast`, those deferred into functions included (they
run as soon as the function does), so a lazy import cannot hide a dependency. Layers, bottom to top:

    infra    shared infrastructure and contracts: ``orchestration.infra``, ``proto``, and the bottom
             modules beside it in ``orchestration`` (config tree, security, Redis / Ray service handles)
    events   event arrays, formats, voxels, the synthetic world
    models   networks, training, evaluation
    nodes | gallery   siblings: they talk through ``proto`` and Redis, never by importing each other
    top      CLI (``orchestration.cli`` and every package's ``cli`` command module), demo, benchmarks,
             camera placement: nothing below imports them

A module may import its own layer or any layer below; there are no exceptions. The one cycle allowed
(``ALLOWED_CYCLES``, the model registry's, with its reason) must still occur: the test fails when it is
gone, so whoever removes it removes the entry too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = "anonreid"

#: bottom-layer modules of the ``orchestration`` folder (the brief fixes the top-level folders, so the
#: bottom layer lives there beside the top layer's CLI, demo and benchmarks); config, security and the
#: service handles move into ``orchestration/infra`` when nobody else is editing them
BOTTOM_IN_ORCHESTRATION = (
    "anonreid.orchestration.infra",
    "anonreid.orchestration.config",
    "anonreid.orchestration.redis_service",
    "anonreid.orchestration.ray_cluster",
    "anonreid.orchestration.security",
)

RANK = {"infra": 0, "events": 1, "models": 2, "nodes": 3, "gallery": 3, "top": 4}

#: import cycles that are allowed, with the reason
ALLOWED_CYCLES: dict[frozenset[str], str] = {
    frozenset({
        "anonreid.models.registry", "anonreid.models.anonymizer", "anonreid.models.inversion",
        "anonreid.models.reconstruction", "anonreid.models.reid",
    }): "the model registry imports each model family so that its entry points register (timm), and each "
        "family imports the registry's decorator; the registry imports the families only inside "
        "create_model, after both are loaded",
}

def _pipeline_folders() -> tuple[str, ...]:
    """The folders setup.py maps onto the namespace (read from setup.py, so a new folder is checked too)."""
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "PIPELINE_FOLDERS" for t in node.targets
        ):
            return tuple(ast.literal_eval(node.value))
    raise AssertionError("setup.py defines no PIPELINE_FOLDERS")


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for folder in _pipeline_folders():
        for path in sorted((REPO / folder).rglob("*.py")):
            if path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
                continue
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join([PACKAGE, *parts])] = path
    return out


MODULES = _modules()


def _known(name: str) -> str | None:
    """The module that ``name`` is or is defined in (``a.b.func`` -> ``a.b``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imported_names(module: str, path: Path) -> Iterator[tuple[str, int]]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):  # every scope, deferred imports too
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                yield f"{source}.{alias.name}", node.lineno


def _import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported module: first line}, within the package.

    Importing ``a.b.c`` also runs the ``__init__`` of ``a.b``, so when that ``__init__`` imports modules
    of its own (``events/__init__.py`` does) and the importer does not live inside ``a.b``, the package
    counts as imported too; an ``__init__`` that imports nothing adds no dependency.
    """
    direct: dict[str, dict[str, int]] = {}
    for module, path in MODULES.items():
        edges: dict[str, int] = {}
        for name, line in _imported_names(module, path):
            target = _known(name) if name.startswith(PACKAGE + ".") else None
            if target and target != module:
                edges.setdefault(target, line)
        direct[module] = edges
    graph: dict[str, dict[str, int]] = {}
    for module, edges in direct.items():
        graph[module] = dict(edges)
        for target, line in edges.items():
            parent = target.rpartition(".")[0]
            while parent in MODULES and direct[parent] and not (module + ".").startswith(parent + "."):
                graph[module].setdefault(parent, line)
                parent = parent.rpartition(".")[0]
    return graph


GRAPH = _import_graph()


def layer(module: str) -> str:
    parts = module.split(".")
    if parts[-1] == "cli" or module == "anonreid.orchestration.cli_common":
        return "top"
    if any(module == m or module.startswith(m + ".") for m in BOTTOM_IN_ORCHESTRATION):
        return "infra"
    return {"proto": "infra", "orchestration": "top"}.get(parts[1], parts[1])


def _violation(importer: str, imported: str) -> bool:
    low, high = layer(importer), layer(imported)
    return RANK[high] > RANK[low] or (RANK[high] == RANK[low] and high != low)


def _cycles(graph: dict[str, dict[str, int]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def _describe(component: frozenset[str]) -> str:
    edges = [f"  {a} -> {b} (line {GRAPH[a][b]})" for a in sorted(component) for b in sorted(GRAPH[a])
             if b in component]
    return "\n".join([f"cycle of {len(component)} modules:", *edges])


def test_the_graph_sees_deferred_and_relative_imports() -> None:
    # checkpoint's code_version reads the version inside a function; the registry's loop is deferred too
    assert "anonreid.orchestration.infra.version" in GRAPH["anonreid.models.checkpoint"]
    assert "anonreid.models.anonymizer" in GRAPH["anonreid.models.registry"]
    assert len(MODULES) > 100 and all(layer(m) in RANK for m in MODULES)


def test_the_checks_themselves() -> None:
    graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}, "d": {"a": 4}, "e": {}}
    assert _cycles(graph) == [frozenset({"a", "b", "c"})]
    assert _cycles({"a": {"b": 1}, "b": {}}) == []
    assert layer("anonreid.orchestration.security.tls") == layer("anonreid.proto.console_tiles") == "infra"
    assert layer("anonreid.nodes.cli") == layer("anonreid.orchestration.demo") == "top"
    assert not _violation("anonreid.nodes.camera", "anonreid.models.bundle")
    assert not _violation("anonreid.gallery.service", "anonreid.orchestration.redis_service")
    assert _violation("anonreid.models.checkpoint", "anonreid.orchestration.cli")  # the cycle's edge
    assert _violation("anonreid.nodes.camera", "anonreid.gallery.console.tiles")  # siblings
    assert _violation("anonreid.gallery.console.server", "anonreid.nodes.adversary.report")
    assert not _violation("anonreid.gallery.console.server", "anonreid.orchestration.infra.audit_log")
    assert _violation("anonreid.orchestration.config", "anonreid.events.types")  # bottom imports nothing above


def test_no_import_cycles() -> None:
    cycles = _cycles(GRAPH)
    unexpected = [c for c in cycles if c not in ALLOWED_CYCLES]
    assert not unexpected, "\n".join(_describe(c) for c in unexpected)
    gone = [sorted(c) for c in ALLOWED_CYCLES if c not in cycles]
    assert not gone, f"allowed cycles that no longer occur (remove them from ALLOWED_CYCLES): {gone}"


def test_imports_point_down_only() -> None:
    found = {(a, b): line for a, edges in GRAPH.items() for b, line in edges.items() if _violation(a, b)}
    bad = [f"  {a} ({layer(a)}) imports {b} ({layer(b)}), {MODULES[a].relative_to(REPO)}:{line}"
           for (a, b), line in sorted(found.items())]
    assert not bad, "imports that point up or sideways (docs/ARCHITECTURE.md):\n" + "\n".join(bad)


@pytest.mark.parametrize("module", BOTTOM_IN_ORCHESTRATION)
def test_listed_bottom_modules_exist(module: str) -> None:
    assert module in MODULES, f"{module} moved: update BOTTOM_IN_ORCHESTRATION"
