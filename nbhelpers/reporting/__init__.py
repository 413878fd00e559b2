"""Reporting: ``summary.json``, HTML renderings, ``index.html`` and the papermill batch runner
(``python -m nbhelpers.reporting.run_notebooks``).

Every name of its modules' ``__all__`` is imported here (a test checks the two agree).
"""

from nbhelpers.reporting.model_card import (
    REAL_PHOTOS_DIR,
    best_run,
    default_model_run,
    real_photo_coverage,
    coverage_line,
    model_card,
    write_model_card,
)
from nbhelpers.reporting.notebook_parameters import PROFILES, NOTEBOOK_MODELS, profile_parameters
from nbhelpers.reporting.reports import read_summary, update_summary, collapse_streams, notebook_to_html, write_index

__all__ = [
    "REAL_PHOTOS_DIR",
    "best_run",
    "default_model_run",
    "real_photo_coverage",
    "coverage_line",
    "model_card",
    "write_model_card",
    "PROFILES",
    "NOTEBOOK_MODELS",
    "profile_parameters",
    "read_summary",
    "update_summary",
    "collapse_streams",
    "notebook_to_html",
    "write_index",
]
