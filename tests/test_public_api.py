"""#35.6: each layer's public API is its package's ``__all__``, and the study scripts, the
examples and the tools import only those names (``from edgeshop.train import train``, never
``from edgeshop.train.fit import train``): a study is written the way a user of the library would.

The import check reads the scripts' imports statically (in-function imports too), so it needs
neither TensorFlow nor a camera; the resolution check imports every public name for real.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO

# The packages whose __all__ is a public API: a script may import from these and from nothing deeper.
PUBLIC = ("edgeshop", "edgeshop.tflite", "edgeshop.data", "edgeshop.report", "edgeshop.adapt", "edgeshop.train")
# Where the rule holds: the studies (and their tests), the examples users copy from, the maintainer tools.
SCRIPT_FOLDERS = ("studies", "examples", "tools")
# Scripts whose job is edgeshop's own insides, with the reason.
INSIDERS = {
    "tools/docs_cli_reference.py": "renders the command line's own parsers (edgeshop.cli) into the docs",
}


def public_names(package: str) -> set[str]:
    """The package's ``__all__``, read from its source (a literal list, so tools see it too)."""
    path = REPO / Path(*package.split(".")) / "__init__.py"
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return set(ast.literal_eval(node.value))
    raise AssertionError(f"{path} has no literal __all__")


def private_imports(source: str, filename: str, exported: dict[str, set[str]]) -> list[str]:
    """One line per import of an edgeshop name that is not public, at any depth of the file."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "edgeshop" and alias.name not in exported:
                    found.append(f"{filename}:{node.lineno}: import {alias.name} (a private module)")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "edgeshop" and not node.level:
            if node.module not in exported:
                found.append(f"{filename}:{node.lineno}: from {node.module} import ... (a private module: "
                             f"import from one of {', '.join(PUBLIC)})")
                continue
            for alias in node.names:
                if alias.name not in exported[node.module]:
                    found.append(f"{filename}:{node.lineno}: from {node.module} import {alias.name} "
                                 f"(not in {node.module}.__all__)")
    return found


def scripts() -> list[Path]:
    return sorted(p for folder in SCRIPT_FOLDERS for p in (REPO / folder).rglob("*.py")
                  if str(p.relative_to(REPO)) not in INSIDERS)


def test_studies_and_examples_import_only_public_names():
    exported = {package: public_names(package) for package in PUBLIC}
    found = [line for path in scripts()
             for line in private_imports(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)), exported)]
    assert not found, ("imports of edgeshop internals (use a public name, promote the name to its package's "
                       "__all__, or move the helper into the study):\n" + "\n".join(found))


def test_the_import_check_sees_what_it_must():
    """In-function imports, private modules, names missing from __all__, and `import a.b.c` are
    all reported; public imports are not: without this the test above could pass on anything."""
    exported = {package: public_names(package) for package in PUBLIC}
    source = textwrap.dedent("""
        import edgeshop
        import edgeshop.train
        from edgeshop import Classifier
        from edgeshop.train import train, RunDir
        import edgeshop.train.fit
        from edgeshop.runtime.stream import open_source
        def f():
            from edgeshop.train import split_samples
            from edgeshop.train.fit import train
    """)
    found = private_imports(source, "study.py", exported)
    assert [line.split(":")[1] for line in found] == ["6", "7", "9", "10"], found
    assert len(scripts()) > 20  # the folders exist and were walked


@pytest.mark.parametrize("package", PUBLIC)
def test_every_public_name_resolves(package):
    module = importlib.import_module(package)
    assert module.__all__ == sorted(module.__all__) or package == "edgeshop.data", "keep __all__ sorted"
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing, f"{package}.__all__ names what it does not have: {missing}"


@pytest.mark.parametrize("package", PUBLIC)
def test_a_public_name_is_not_hidden_by_a_module_of_the_same_name(package):
    """Importing ``edgeshop.train.export`` would set ``edgeshop.train.export`` to the module, hiding
    a public function ``export``; so no public name may be a submodule's name."""
    folder = REPO / Path(*package.split("."))
    modules = {p.stem for p in folder.glob("*.py")} | {p.name for p in folder.iterdir() if (p / "__init__.py").exists()}
    assert not public_names(package) & modules


def test_the_facades_resolve_names_only_from_their_own_layer():
    """A layer's names come from its own modules (the root package's from the runtime and the
    model-file format): the import-graph rule, for the lookups the graph reader cannot see."""
    for package in PUBLIC[1:]:
        lazy = importlib.import_module(package).__dict__.get("_LAZY", {})
        assert all(target.startswith(package + ".") for target in lazy.values()), package
    root = importlib.import_module("edgeshop")._LAZY
    assert all(target.startswith(("edgeshop.runtime.", "edgeshop.tflite.", "edgeshop._io", "edgeshop.utils"))
               for target in root.values())


def test_importing_the_public_packages_loads_neither_tensorflow_nor_the_runtime():
    code = ("import sys, edgeshop, edgeshop.tflite, edgeshop.report, edgeshop.adapt, edgeshop.train\n"
            "heavy = [m for m in ('tensorflow', 'cv2', 'edgeshop.runtime') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
