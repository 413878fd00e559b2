"""Reports: ``reports/summary.json`` (key figures each notebook adds), HTML renderings of executed
notebooks, and ``reports/index.html`` linking them with status and run time. All writes are atomic.

The HTML shows stream outputs as a live notebook does: nbconvert's ``CoalesceStreamsPreprocessor`` merges
consecutive stream outputs and keeps the last of the ``\r``-separated frames of a line, so a text progress
bar (``nbhelpers.utils.progress``) shows its final state; a stream left blank (a bar hidden when its loop
ended) is dropped.
"""

from __future__ import annotations

import html
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nbhelpers.utils.atomic import atomic_write_json, atomic_write_text

__all__ = ["read_summary", "update_summary", "collapse_streams", "notebook_to_html", "write_index"]


def read_summary(reports_dir: str | Path) -> dict[str, Any]:
    """The current ``summary.json`` (empty if there is none yet)."""
    path = Path(reports_dir) / "summary.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error}); delete it to start a new summary") from None


def update_summary(reports_dir: str | Path, section: str, values: dict[str, Any]) -> dict[str, Any]:
    """Merge ``values`` into ``summary[section]``, write the summary atomically, return that section."""
    summary = read_summary(reports_dir)
    summary.setdefault(section, {}).update(values)
    atomic_write_json(Path(reports_dir) / "summary.json", summary)
    return summary[section]


def collapse_streams(notebook: Any) -> Any:
    """The ``nbformat`` notebook with consecutive stream outputs merged and ``\r`` frames collapsed to the last
    (nbconvert's ``CoalesceStreamsPreprocessor``), and blank stream outputs dropped; changed in place and returned."""
    from nbconvert.preprocessors import CoalesceStreamsPreprocessor

    notebook, _ = CoalesceStreamsPreprocessor(enabled=True).preprocess(notebook, {})
    for cell in notebook.cells:
        if "outputs" in cell:
            cell.outputs = [output for output in cell.outputs
                            if output.get("output_type") != "stream" or output.get("text", "").strip()]
    return notebook


def notebook_to_html(notebook_path: str | Path, html_path: str | Path) -> Path:
    """Render an executed notebook to a standalone HTML file (atomically), its streams collapsed (``collapse_streams``)."""
    import nbformat
    from nbconvert import HTMLExporter

    notebook = collapse_streams(nbformat.read(str(notebook_path), as_version=4))
    body, _ = HTMLExporter().from_notebook_node(notebook)
    return atomic_write_text(html_path, body)


def _row(run: dict[str, Any]) -> str:
    name = html.escape(run["notebook"])
    link = f'<a href="{html.escape(run["html"])}">{name}</a>' if run.get("html") else name
    error = f'<br><small>{html.escape(run["error"])}</small>' if run.get("error") else ""
    colour = "#1a7f37" if run["status"] == "ok" else "#cf222e"
    return (f'<tr><td>{link}</td><td style="color:{colour}">{html.escape(run["status"])}{error}</td>'
            f'<td>{run["seconds"]:.1f} s</td></tr>')


def write_index(reports_dir: str | Path, runs: list[dict[str, Any]], profile: str) -> Path:
    """Write ``index.html``: one row per notebook (link, status, run time) and the summary figures."""
    reports_dir = Path(reports_dir)
    summary = json.dumps(read_summary(reports_dir), indent=2, sort_keys=True)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Face-gender suite reports</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:4px 12px;border-bottom:1px solid #ddd;text-align:left}}</style>
</head><body>
<h1>Face-gender suite reports</h1>
<p>Profile <b>{html.escape(profile)}</b>, run {stamp}; total {sum(r["seconds"] for r in runs):.0f} s.</p>
<table><tr><th>Notebook</th><th>Status</th><th>Run time</th></tr>
{"".join(_row(run) for run in runs)}
</table>
{'<p><a href="model_card.md">Model card</a> (intended use, limits, accuracy in-domain and on real photos)</p>'
 if (reports_dir / "model_card.md").is_file() else ""}
<h2>Key figures (summary.json)</h2><pre>{html.escape(summary)}</pre>
</body></html>
"""
    return atomic_write_text(reports_dir / "index.html", page)
