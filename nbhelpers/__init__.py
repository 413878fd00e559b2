"""nbhelpers: the package behind the explainable face-gender notebook suite.

Importing the package has no side effects; import the submodules you need, e.g.
``from nbhelpers.data.manifest import read_manifest``.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
