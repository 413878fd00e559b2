"""Progress bars that read well live and in executed notebooks: ``progress_bar(iterable, desc=...)``.

``progress_bar`` is ``tqdm.auto.tqdm`` (an ipywidgets bar in a live Jupyter frontend, a text bar in a
terminal) unless the environment variable ``NBHELPERS_TEXT_PROGRESS`` is ``1``: then it is tqdm's text bar
(``tqdm.std.tqdm``, https://tqdm.github.io). Headless runs set it: ``nbhelpers.reporting.run_notebooks``
wraps papermill in ``text_progress_bars()``, and the kernel inherits the variable. A kernel that papermill
drives has no frontend to draw a widget, and an executed notebook keeps only a widget's *first* frame as
text; a text bar's frames are ``\\r``-separated, and Jupyter's stream rendering and nbconvert's
``CoalesceStreamsPreprocessor`` collapse them to the last frame, so a report shows the bar's final state.

In text mode every bar draws on one line (``position=0``: no cursor movement between nested bars), on
stdout (the stream of the lines a loop prints, so that a bar hidden by ``leave=False`` is overwritten by
the next printed line instead of leaving a blank stream behind), at most once a second.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from tqdm.auto import tqdm as auto_tqdm
from tqdm.std import tqdm as text_tqdm

__all__ = ["TEXT_PROGRESS_VARIABLE", "text_progress_requested", "text_progress_bars", "progress_bar"]

TEXT_PROGRESS_VARIABLE = "NBHELPERS_TEXT_PROGRESS"
TEXT_DEFAULTS: dict[str, Any] = {"position": 0, "mininterval": 1.0}


def text_progress_requested() -> bool:
    """True when ``NBHELPERS_TEXT_PROGRESS`` is ``1`` (or ``true`` / ``yes``, any case)."""
    return os.environ.get(TEXT_PROGRESS_VARIABLE, "").strip().lower() in {"1", "true", "yes"}


@contextmanager
def text_progress_bars() -> Iterator[None]:
    """Within the block, ``NBHELPERS_TEXT_PROGRESS=1`` (kernels started in it inherit it); restored afterwards."""
    previous = os.environ.get(TEXT_PROGRESS_VARIABLE)
    os.environ[TEXT_PROGRESS_VARIABLE] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(TEXT_PROGRESS_VARIABLE, None)
        else:
            os.environ[TEXT_PROGRESS_VARIABLE] = previous


def progress_bar(iterable: Iterable | None = None, **options: Any) -> text_tqdm:
    """A tqdm bar over ``iterable`` with tqdm's keyword ``options`` (``desc``, ``total``, ``leave``, ``disable``...).

    A text bar (``tqdm.std.tqdm``) when ``text_progress_requested()``, with ``TEXT_DEFAULTS`` for the options
    not given and stdout as its file; else ``tqdm.auto.tqdm``. Both are ``tqdm.std.tqdm`` instances.
    """
    if text_progress_requested():
        return text_tqdm(iterable, **{**TEXT_DEFAULTS, "file": sys.stdout, **options})
    return auto_tqdm(iterable, **options)
