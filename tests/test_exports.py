"""Each subpackage's ``__init__`` imports, eagerly and plainly, exactly the names its modules' ``__all__`` declare."""

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nbhelpers"
SUBPACKAGES = ("utils", "data", "models", "training", "explain", "fairness", "reporting", "predict", "serve")
ENTRY_POINTS = {"__init__", "__main__", "cli", "evaluate_cli", "web_page", "run_notebooks"}  # run, not imported


def declared(module: Path) -> list[str]:
    """The names listed in ``__all__`` of a module's source."""
    for node in ast.parse(module.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(target, "id", "") == "__all__" for target in node.targets):
            return [element.value for element in node.value.elts]
    raise AssertionError(f"{module}: no __all__")


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_package_exports_equal_its_modules_all(name):
    package = importlib.import_module(f"nbhelpers.{name}")
    modules = [path for path in sorted((PACKAGE / name).glob("*.py")) if path.stem not in ENTRY_POINTS]
    expected = {export for module in modules for export in declared(module)}
    assert set(package.__all__) == expected
    assert all(hasattr(package, export) for export in package.__all__)
    init = (PACKAGE / name / "__init__.py").read_text()
    assert "__getattr__" not in init and "importlib" not in init  # plain imports, no lazy tables


def test_every_module_declares_all():
    missing = [str(path) for path in PACKAGE.rglob("*.py") if path.stem != "__main__" and "__all__" not in path.read_text()]
    assert missing == []
