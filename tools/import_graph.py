"""Print the import graph of the ``detect`` package: cycles and upward imports.

Every ``import``/``from ... import`` is counted, at module level and inside functions,
so a cycle hidden behind a lazy import shows up too. Exit status 1 when there is a cycle,
or an import that climbs the layers (see LAYERS), 0 otherwise.

usage: python tools/import_graph.py [--root detect] [--edges]
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

# Layer of each top-level part of detect: a module may import its own layer or lower ones.
LAYERS: dict[str, int] = {
    "__init__": 0,
    "errors": 0,
    "torch_check": 0,
    "boxes": 1,
    "histology": 1,
    "io": 1,
    "dicomweb": 1,
    "lesions": 1,
    "lung": 1,
    "recipe": 1,
    "workers": 1,
    "shipped": 1,
    "dataset": 2,
    "device": 2,
    "predictions": 2,
    "runs": 2,
    "convert": 3,
    "models": 3,
    "synth": 3,
    "download": 4,
    "eval": 4,
    "export": 4,
    "predict": 4,
    "train": 4,
    "cli": 5,
    "demo": 5,
}

def module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)

def resolve(current: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = current.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)

def imports_of(path: Path, name: str, modules: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = resolve(name, is_package, node)
            targets = [f"{base}.{alias.name}" for alias in node.names]
            if any(target not in modules for target in targets):
                targets.append(base)  # a name defined in the package itself
        for target in targets:
            # the longest known module the target names ("detect.boxes.iou" -> "detect.boxes")
            parts = target.split(".")
            for cut in range(len(parts), 0, -1):
                candidate = ".".join(parts[:cut])
                if candidate in modules:
                    if candidate != name:
                        found.add(candidate)
                    break
    return found

def build_graph(root: Path) -> dict[str, set[str]]:
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    modules = set(files)
    return {name: imports_of(path, name, modules) for name, path in files.items()}

def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components of more than one module are cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterable[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return sorted(components)

def layer_of(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2:
        return LAYERS.get("__init__")
    return LAYERS.get(parts[1])

def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    found = []
    for source, targets in graph.items():
        source_layer = layer_of(source)
        for target in targets:
            target_layer = layer_of(target)
            if source_layer is None or target_layer is None:
                continue
            if target_layer > source_layer:
                found.append((source, target))
    return sorted(found)

def unlayered(graph: dict[str, set[str]]) -> list[str]:
    return sorted(m for m in graph if layer_of(m) is None)

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1] / "detect")
    parser.add_argument("--edges", action="store_true", help="print every import edge too")
    args = parser.parse_args(argv)
    graph = build_graph(args.root)
    if args.edges:
        for source in sorted(graph):
            for target in sorted(graph[source]):
                print(f"{source} -> {target}")
    cycles = strongly_connected(graph)
    upward = upward_imports(graph)
    missing = unlayered(graph)
    print(f"{len(graph)} modules, {sum(len(t) for t in graph.values())} imports")
    for cycle in cycles:
        print("cycle: " + " <-> ".join(cycle))
    for source, target in upward:
        print(f"upward: {source} -> {target}")
    for module in missing:
        print(f"no layer: {module} (add its top-level part to LAYERS)")
    print(f"{len(cycles)} cycles, {len(upward)} upward imports, {len(missing)} without a layer")
    return 1 if cycles or upward or missing else 0

if __name__ == "__main__":
    sys.exit(main())
