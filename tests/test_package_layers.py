"""The package's shape: layers that import downward only, no import cycle, prediction free of training code,
every default defined once, and a reason beside every import made inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "refinenet_tf"
# Lower layers never import higher ones; a module may import its own layer.
LAYERS = (
    ("refinenet_tf.errors", "refinenet_tf.files", "refinenet_tf.defaults", "refinenet_tf.palette",
     "refinenet_tf.tf_quiet", "refinenet_tf.version", "refinenet_tf.progress"),
    ("refinenet_tf.description", "refinenet_tf.architectures"),
    # predict/graph.py builds the prediction graph: a piece (the memory estimate and validation build it too)
    ("refinenet_tf.models", "refinenet_tf.data", "refinenet_tf.weights", "refinenet_tf.checkpoints",
     "refinenet_tf.snapshots", "refinenet_tf.sessions", "refinenet_tf.hardware", "refinenet_tf.predict.graph"),
    ("refinenet_tf.train", "refinenet_tf.predict", "refinenet_tf.evaluate", "refinenet_tf.export",
     "refinenet_tf.quantize", "refinenet_tf.archive"),
    ("refinenet_tf.cli", "refinenet_tf.api", "refinenet_tf.demo", "refinenet_tf.__main__", "refinenet_tf"),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, ast.Module]:
    return {module_name(path): ast.parse(path.read_text(encoding="utf-8")) for path in PACKAGE.rglob("*.py")}


def imported(tree: ast.Module, known: set[str]) -> set[str]:
    """The package modules a module imports anywhere (inside functions and TYPE_CHECKING blocks too)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("refinenet_tf"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("refinenet_tf"):
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in known else node.module)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    trees = modules()
    return {name: imported(tree, set(trees)) - {name} for name, tree in trees.items()}


def layer_of(module: str) -> int:
    matches = [(len(prefix), index) for index, layer in enumerate(LAYERS) for prefix in layer
               if module == prefix or (prefix != "refinenet_tf" and module.startswith(prefix + "."))]
    assert matches, f"{module} belongs to no layer: add it to LAYERS"
    return max(matches)[1]


def test_every_import_points_to_the_same_layer_or_below(graph):
    upward = [f"{module} -> {target}" for module, targets in graph.items() for target in targets
              if layer_of(target) > layer_of(module)]
    assert not upward, upward


def test_only_the_command_line_imports_the_command_line(graph):
    outside = [module for module, targets in graph.items()
               if any(t.startswith("refinenet_tf.cli") for t in targets)
               and not module.startswith("refinenet_tf.cli") and module != "refinenet_tf.__main__"]
    assert not outside, outside


def test_there_is_no_import_cycle(graph):
    state: dict[str, str] = {}
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, cycles


@pytest.mark.parametrize("module", ["refinenet_tf.predict.predictor", "refinenet_tf.predict.inference_graph",
                                    "refinenet_tf.export"])
def test_prediction_reaches_no_training_code(graph, module):
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        for target in graph.get(current, ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    assert not [name for name in seen if name.startswith("refinenet_tf.train")], sorted(seen)


def test_every_default_is_defined_in_defaults_only():
    trees = modules()
    names = {target.id for node in trees["refinenet_tf.defaults"].body if isinstance(node, ast.Assign)
             for target in ast.walk(node) if isinstance(target, ast.Name)}
    again = [f"{module}: {target.id}" for module, tree in trees.items() if module != "refinenet_tf.defaults"
             for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
             for target in ast.walk(node.targets[0] if isinstance(node, ast.Assign) else node.target)
             if isinstance(target, ast.Name) and target.id in names]
    assert not again, again


def test_imports_inside_functions_say_why():
    silent = []
    for path in PACKAGE.rglob("*.py"):
        lines = path.read_text(encoding="utf-8").splitlines()
        for function in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and "#" not in lines[node.lineno - 1]:
                    silent.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not silent, silent
