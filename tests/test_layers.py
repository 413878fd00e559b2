"""Layers point one way: utils <- data <- models <- training <- {explain, fairness, reporting} <- predict <- serve.

Every module's imports (module level and inside functions) are read with ``ast``; a subpackage may import its
own layer and the layers below it, never one above. The top-level modules (``nbhelpers/train.py``,
``evaluate.py``, ...) are entry points and may import anything.
"""

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "nbhelpers"
LAYERS = {"utils": 0, "data": 1, "models": 2, "training": 3, "explain": 4, "fairness": 4, "reporting": 4, "predict": 5, "serve": 6}
# Known upward imports the lead is removing; delete an entry when its import is gone (the test then keeps it gone).
PENDING: set[tuple[str, str]] = set()


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Every ``nbhelpers`` module that the file ``path`` (under ``root``) imports, relative imports resolved;
    ``from nbhelpers import training`` counts as ``nbhelpers.training``."""
    name = module_name(path, root).split(".")
    package = name if path.name == "__init__.py" else name[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            names.update([base] if layer(base) is not None else [f"{base}.{alias.name}" for alias in node.names])
    return {name for name in names if name == "nbhelpers" or name.startswith("nbhelpers.")}


def layer(module: str) -> int | None:
    """The layer of a module inside a subpackage; None for the package itself and its top-level modules."""
    parts = module.split(".")
    return LAYERS[parts[1]] if len(parts) > 1 and parts[1] in LAYERS else None


def upward_imports() -> set[tuple[str, str]]:
    found = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = module_name(path)
        if layer(importer) is None:
            continue  # an entry point
        for imported in imported_modules(path):
            if layer(imported) is not None and layer(imported) > layer(importer):
                found.add((importer, imported))
    return found


def test_every_subpackage_has_a_layer():
    subpackages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert subpackages == set(LAYERS), "give a new subpackage its place in LAYERS"


def test_imports_point_down_the_layers():
    upward = upward_imports()
    assert upward - PENDING == set(), "upward imports (importer, imported): move the code down or the caller up"
    assert PENDING - upward == set(), "these imports are gone: delete them from PENDING"


def test_the_checker_sees_upward_imports(tmp_path):
    """The parser finds module-level, function-level and relative imports."""
    (tmp_path / "nbhelpers" / "models").mkdir(parents=True)
    source = tmp_path / "nbhelpers" / "models" / "example.py"
    source.write_text("import numpy\nfrom nbhelpers.training.fit import fit_one_cycle\nfrom nbhelpers import fairness\n"
                      "def late():\n    from ..predict import cli\n    import nbhelpers.utils.atomic\n")
    assert imported_modules(source, tmp_path) == {"nbhelpers.training.fit", "nbhelpers.fairness", "nbhelpers.predict",
                                                  "nbhelpers.utils.atomic"}


@pytest.mark.parametrize("library", ["tqdm"])
def test_progress_bars_come_from_one_helper(library):
    """Only ``nbhelpers.utils.progress`` imports tqdm: every bar follows its headless / live choice."""
    importers = sorted(module_name(path) for path in PACKAGE.rglob("*.py")
                       if any(isinstance(node, (ast.Import, ast.ImportFrom)) and
                              any((getattr(node, "module", None) or alias.name).split(".")[0] == library
                                  for alias in node.names)
                              for node in ast.walk(ast.parse(path.read_text()))))
    assert importers == ["nbhelpers.utils.progress"]
