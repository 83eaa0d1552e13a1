"""#35.1: the package's layers, and imports that only point down them (docs/architecture.md).

Two checks. The import graph, read statically from every module (in-function imports
included; only ``if TYPE_CHECKING:`` blocks, which never run, are left out), has no cycle
and no import of a higher layer. And each layer really imports with every higher layer
(and, below train/, TensorFlow) made unimportable, in a fresh interpreter.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / "edgeshop"

# The layers, lowest first: a module may import its own layer and the ones before it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("edgeshop", "edgeshop.errors", "edgeshop._io", "edgeshop.utils", "edgeshop.native_logs",
              "edgeshop._vendor")),
    ("tflite", ("edgeshop.tflite",)),
    ("runtime", ("edgeshop.runtime",)),
    ("data", ("edgeshop.data",)),
    ("report", ("edgeshop.report",)),
    ("adapt", ("edgeshop.adapt",)),
    ("train", ("edgeshop.train",)),
    ("cli", ("edgeshop.cli", "edgeshop.__main__")),  # python -m edgeshop is the edgeshop command
]
TRAIN = [name for name, _ in LAYERS].index("train")
TENSORFLOW = ("tensorflow", "tf_keras", "tensorflow_model_optimization", "keras")

# The package's public names (edgeshop.Classifier, ...) are the runtime's, resolved on first use
# by the root __init__'s __getattr__ (PEP 562): the one import allowed to point up, because it
# runs only when a user asks for such a name, never when a lower layer is imported.
LAZY_FACADE = ("edgeshop", "__getattr__")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    best, found = -1, None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, found = len(prefix), index
    assert found is not None, f"{module} is in no layer: add it to LAYERS (and to docs/architecture.md)"
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_package: bool):
    """(imported edgeshop module, line) for every import that can run, at any depth."""

    def visit(node: ast.AST, function: str | None):
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                yield from visit(child, function)
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function = function or node.name
        if (module, function) == LAZY_FACADE:
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                # `from edgeshop.train import channels` imports a module; `from x import name` imports x.
                sub = f"{target}.{alias.name}"
                yield (sub if sub in MODULES else target), node.lineno
        for child in ast.iter_child_nodes(node):
            yield from visit(child, function)

    for target, line in visit(tree, None):
        if target == "edgeshop" or target.startswith("edgeshop."):
            while target not in MODULES:  # `import edgeshop.x.y` of a name: its module
                target = target.rsplit(".", 1)[0]
            yield target, line


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported edgeshop module: first line}."""
    graph: dict[str, dict[str, int]] = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        edges: dict[str, int] = {}
        for target, line in _imports(tree, module, path.name == "__init__.py"):
            if target != module:
                edges.setdefault(target, line)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, dict[str, int]] | dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strongconnect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                strongconnect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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
            strongconnect(node)
    return found


def package_of(module: str) -> str:
    if module == "edgeshop.__main__":  # the entry point of python -m edgeshop: a cli module, not the root package
        return module
    # A layer's own subpackages count as the layer (train/phases uses train's transforms and the trainer
    # drives the phases): cycles between modules are still refused everywhere, by the test below.
    return ".".join(module.split(".")[:2])


def test_every_module_is_in_a_layer():
    for module in MODULES:
        layer_of(module)


def test_no_import_points_up_a_layer():
    graph = import_graph()
    upward = [f"{MODULES[m].relative_to(REPO)}:{line}: {m} ({LAYERS[layer_of(m)][0]}) imports {t} "
              f"({LAYERS[layer_of(t)][0]})"
              for m, edges in graph.items() for t, line in edges.items() if layer_of(t) > layer_of(m)]
    assert not upward, "imports that point up the layers (move the shared code down):\n" + "\n".join(upward)


def test_no_import_cycle_between_modules_or_packages():
    graph = import_graph()
    assert not cycles(graph), f"import cycles between modules: {cycles(graph)}"
    packages: dict[str, set[str]] = defaultdict(set)
    for module, edges in graph.items():
        for target in edges:
            if package_of(target) != package_of(module):
                packages[package_of(module)].add(package_of(target))
    assert not cycles(packages), f"import cycles between packages: {cycles(packages)}"


def test_the_graph_reader_sees_what_it_must():
    """The static reader finds in-function imports, relative imports and submodule imports, and
    the cycle finder finds a cycle: without these the two tests above could pass on anything."""
    tree = ast.parse(textwrap.dedent("""
        from edgeshop.train import channels
        from . import exporter
        def f():
            from edgeshop.cli.train import main
        if TYPE_CHECKING:
            from edgeshop.cli import demo
    """))
    found = dict(_imports(tree, "edgeshop.train.fit", is_package=False))
    assert set(found) == {"edgeshop.train.channels", "edgeshop.train.exporter", "edgeshop.cli.train"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer_of("edgeshop.cli.train") > layer_of("edgeshop.train.fit") > layer_of("edgeshop.tflite.modelcard")


def _layer_modules(layer: int) -> list[str]:
    # __main__ runs the command when imported; its imports are checked by the static tests above
    return [m for m in MODULES if layer_of(m) == layer and not m.endswith(".__main__")]


@pytest.mark.parametrize("layer", range(len(LAYERS)), ids=[name for name, _ in LAYERS])
def test_each_layer_imports_with_the_higher_ones_blocked(layer: int):
    blocked = [prefix for _, prefixes in LAYERS[layer + 1:] for prefix in prefixes]
    if layer < TRAIN:
        blocked += TENSORFLOW
    script = textwrap.dedent(f"""
        import importlib, sys

        BLOCKED = {blocked!r}

        class Block:
            def find_spec(self, name, path=None, target=None):
                if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                    raise ImportError(f"{{name}} is blocked: it is above this layer")
                return None

        sys.meta_path.insert(0, Block())
        for module in {_layer_modules(layer)!r}:
            importlib.import_module(module)
        leaked = sorted(m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in BLOCKED))
        assert not leaked, leaked
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", (
        f"layer {LAYERS[layer][0]} does not import without {blocked}:\n{result.stderr[-3000:]}")


@pytest.mark.parametrize("folder", ["tools", "studies/grocery"])
def test_no_import_cycle_between_scripts(folder: str):
    """The scripts of tools/ and of the study import each other as top-level modules (their folder
    is on sys.path): no cycle there either."""
    scripts = {p.stem: p for p in sorted((REPO / folder).glob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in scripts.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                targets.add(node.module.split(".")[0])
        graph[name] = {t for t in targets if t in scripts and t != name}
    assert not cycles(graph), f"import cycles between the scripts of {folder}: {cycles(graph)}"
