"""Progress bars in executed notebooks, as a report should show them.

``tqdm.auto`` draws ipywidgets in a kernel; an executed notebook stores each bar as a widget view whose
plain-text fallback is the bar's *first* frame (``validate utkface: 0%| 0/23708``), and that fallback is
what an HTML report shows. ``finish_progress_bars`` rewrites every bar from the widget state saved at the
end of the run: a bar still shown becomes one line with its final count, a bar its loop hid when it
finished (``leave=False``) is removed, as in the live notebook.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from nbformat.v4 import new_output

from nbhelpers.utils.atomic import atomic_write_text

__all__ = ["finish_progress_bars", "finish_notebook_progress", "progress_line"]

_VIEW = "application/vnd.jupyter.widget-view+json"
_STATE = "application/vnd.jupyter.widget-state+json"


def _model(state: dict[str, Any], reference: str) -> dict[str, Any]:
    return state.get(reference.replace("IPY_MODEL_", ""), {})


def progress_line(state: dict[str, Any], model_id: str, width: int = 10) -> str | None:
    """The final line of the tqdm bar ``model_id`` ('' when it was hidden), or None if it is not a tqdm bar."""
    box = state.get(model_id, {})
    children = [_model(state, child) for child in box.get("state", {}).get("children", [])]
    if box.get("model_name") != "HBoxModel" or [c.get("model_name") for c in children] != \
            ["HTMLModel", "FloatProgressModel", "HTMLModel"]:
        return None
    if _model(state, box["state"].get("layout", "")).get("state", {}).get("visibility") == "hidden":
        return ""
    text = [html.unescape(children[i]["state"].get("value", "")).replace("\u2007", " ") for i in (0, 2)]
    description = re.sub(r"\s*\d+%\s*$", "", text[0]).rstrip(": ")
    done, total = children[1]["state"].get("value") or 0, children[1]["state"].get("max") or 0
    filled = int(width * done / total) if total else 0
    counts = f"{done:.0f}/{total:.0f}" if total else f"{done:.0f}"
    elapsed = re.search(r"\[(\d[\d:]*)", text[1])
    line = f"{description}: {100 * done / total:3.0f}%|{'█' * filled}{' ' * (width - filled)}| {counts}" if total \
        else f"{description}: {counts}"
    return line + (f" [{elapsed.group(1)}]" if elapsed and text[1].strip().startswith(counts) else "")


def finish_progress_bars(notebook: Any) -> int:
    """Replace every tqdm widget output of an executed ``notebook`` by its final line (or drop a hidden one);
    return how many bars were rewritten. Other widgets are left as they are."""
    state = notebook.metadata.get("widgets", {}).get(_STATE, {}).get("state", {})
    rewritten = 0
    for cell in notebook.cells:
        kept = []
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(_VIEW)
            line = progress_line(state, view["model_id"]) if view else None
            if line is None:
                kept.append(output)
                continue
            rewritten += 1
            if line:
                kept.append(new_output("stream", name="stderr", text=line + "\n"))
        if "outputs" in cell:
            cell["outputs"] = kept
    return rewritten


def finish_notebook_progress(path: str | Path) -> int:
    """``finish_progress_bars`` on the executed notebook at ``path``, rewritten atomically."""
    import nbformat

    notebook = nbformat.read(str(path), as_version=4)
    rewritten = finish_progress_bars(notebook)
    if rewritten:
        atomic_write_text(path, nbformat.writes(notebook))
    return rewritten
