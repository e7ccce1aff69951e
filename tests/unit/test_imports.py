"""The import graph of our packages, read with ``ast``: no cycles, counting imports inside functions.

An import inside a function hides a cycle from Python (it runs late) but not from a
reader: predictor/ once went backends -> export -> bundle -> evaluate -> classifier ->
backends that way. So every import statement counts here, wherever it is.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("contract", "runtime", "predictor", "modelbuild", "training", "transformer", "rollout", "harness", "bench", "load")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def imported(name: str, path: Path) -> set[str]:
    """Our modules that ``name`` imports, anywhere in its source (``from p import m`` counts as p.m if m is one)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:  # a.b.c -> the deepest module of ours it names
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: imported(name, path) for name, path in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path) per strongly connected component with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph[node]:
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
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


def reachable(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for succ in GRAPH[todo.pop()]:
            if succ not in seen:
                seen.add(succ)
                todo.append(succ)
    return seen


def test_the_graph_sees_function_level_imports():
    """The check itself: predictor/__main__.py imports its model inside main(), and the graph has it."""
    assert "predictor.model" in GRAPH["predictor.__main__"]


def test_no_import_cycle_in_our_packages():
    assert cycles(GRAPH) == []


def test_a_cycle_would_be_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_model_layout_imports_nothing_of_ours():
    assert GRAPH["modelbuild.layout"] == set()


@pytest.mark.parametrize("forbidden", ["training.evaluate", "training.train", "modelbuild.bake", "harness.random_model"])
def test_the_serving_path_does_not_import_the_tools(forbidden):
    assert forbidden not in reachable("predictor.__main__")


def test_backends_never_import_the_exporter():
    assert "modelbuild.export" not in reachable("predictor.backends")


def test_contract_does_not_depend_on_the_runtime():
    for name in MODULES:
        if name.startswith("contract"):
            assert not {m for m in reachable(name) if m.startswith("runtime")}, name


def imports_of(package: str) -> set[str]:
    return {target for name in MODULES if name.split(".")[0] == package for target in GRAPH[name]}


def test_imports_run_one_way_training_then_serving_then_model_building():
    """training -> predictor -> modelbuild: building never reaches up into serving or training."""
    assert {m.split(".")[0] for m in imports_of("modelbuild")} <= {"modelbuild", "contract"}
    assert not {m for m in imports_of("predictor") if m.startswith("training")}


def test_serving_reaches_model_building_only_for_names_and_the_start_up_restore():
    """predictor.files is the one door into modelbuild (merge/restore/export at start-up); the rest reads names."""
    for name in MODULES:
        if name.startswith("predictor") and name != "predictor.files":
            assert {m for m in GRAPH[name] if m.startswith("modelbuild")} <= {"modelbuild.layout"}, name


def test_shipped_code_never_imports_the_harness_or_the_benchmarks():
    for package in ("contract", "runtime", "predictor", "modelbuild", "training", "transformer", "rollout"):
        assert not {m for m in imports_of(package) if m.split(".")[0] in ("harness", "bench")}, package
