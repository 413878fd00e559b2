"""Lazy re-exports for the subpackages' ``__init__``: ``from nbhelpers.training import run_training`` imports
only the module that defines the name, on first use (PEP 562 module ``__getattr__``), so importing a package
has no side effects and sibling packages never import each other in a cycle.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

__all__ = ["lazy_exports"]


def lazy_exports(package: str, table: str) -> tuple[Callable[[str], Any], list[str]]:
    """``(__getattr__, __all__)`` for ``package`` from a table of lines ``module: name name ...``."""
    owner = {name: module.strip() for line in table.strip().splitlines()
             for module, names in [line.split(":", 1)] for name in names.split()}

    def __getattr__(name: str) -> Any:
        if name not in owner:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{owner[name]}"), name)

    return __getattr__, sorted(owner)
