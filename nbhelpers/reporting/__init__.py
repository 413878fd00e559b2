"""Reporting: ``summary.json``, HTML renderings, ``index.html`` and the papermill batch runner
(``python -m nbhelpers.reporting.run_notebooks``).

Every name below is importable from this package; it is imported from its module on first use.
"""

from nbhelpers.utils.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, """
    model_card: best_run model_card write_model_card
    reports: read_summary update_summary collapse_streams notebook_to_html write_index
    run_notebooks: numbered_notebooks run_notebook run_all
""")
