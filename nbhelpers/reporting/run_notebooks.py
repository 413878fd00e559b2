"""Run every numbered notebook in order with papermill and write the reports.

    python -m nbhelpers.reporting.run_notebooks --profile default --data ../shared/data/UTKFace.tar.gz
    python -m nbhelpers.reporting.run_notebooks --set TRANSFER_SEEDS=2   # make reports PARAMETERS="TRANSFER_SEEDS=2"

Each executed notebook goes to ``reports/NN_name.ipynb`` and ``reports/NN_name.html``;
``reports/index.html`` links them with status and run time. A failing notebook is reported and
the run goes on with the next one; the exit code is 1 when any notebook failed.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import time
from pathlib import Path

from nbhelpers.reporting.model_card import write_model_card
from nbhelpers.reporting.reports import notebook_to_html, write_index
from nbhelpers.reporting.notebook_parameters import profile_parameters
from nbhelpers.utils.progress import text_progress_bars

__all__ = ["numbered_notebooks", "run_notebook", "run_all", "parse_settings", "main"]


def numbered_notebooks(notebooks_dir: str | Path) -> list[Path]:
    """The notebooks named ``NN_*.ipynb``, in order."""
    return sorted(path for path in Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb"))


def run_notebook(notebook: Path, reports_dir: Path, profile: str, overrides: dict[str, object]) -> dict:
    """Execute one notebook with its profile parameters; render HTML; return status and run time."""
    import papermill

    declared = papermill.inspect_notebook(str(notebook))
    parameters = {**profile_parameters(notebook.stem, profile), **overrides}
    parameters = {key: value for key, value in parameters.items() if key in declared}
    output = reports_dir / notebook.name
    run = {"notebook": notebook.stem, "status": "ok", "html": f"{notebook.stem}.html", "error": ""}
    start = time.perf_counter()
    try:
        with text_progress_bars():  # the kernel inherits it: text bars, whose last frame the report shows
            papermill.execute_notebook(str(notebook), str(output), parameters=parameters, cwd=str(notebook.parent),
                                       kernel_name="python3", progress_bar=False)
    except Exception as error:  # a failed notebook is reported, and the run goes on
        run.update(status="failed", error=f"{type(error).__name__}: {str(error).strip().splitlines()[-1][:300]}")
    run["seconds"] = time.perf_counter() - start
    if output.is_file():
        notebook_to_html(output, reports_dir / f"{notebook.stem}.html")
    else:
        run["html"] = ""
    return run


def run_all(notebooks_dir: str | Path, reports_dir: str | Path, profile: str, overrides: dict[str, object],
            only: list[str] | None = None) -> list[dict]:
    """Run the numbered notebooks (or those whose names start with an entry of ``only``)."""
    reports_dir = Path(reports_dir).resolve()
    reports_dir.mkdir(parents=True, exist_ok=True)
    if "inline" not in os.environ.get("MPLBACKEND", "inline"):
        os.environ.pop("MPLBACKEND")  # kernels inherit it; Agg would keep every figure out of the reports
    runs = []
    for notebook in numbered_notebooks(notebooks_dir):
        if only and not any(notebook.stem.startswith(prefix) for prefix in only):
            continue
        print(f"[run_notebooks] {notebook.name} ({profile})", file=sys.stderr, flush=True)
        runs.append(run_notebook(notebook.resolve(), reports_dir, profile, overrides))
        print(f"[run_notebooks] {notebook.name}: {runs[-1]['status']} in {runs[-1]['seconds']:.1f} s "
              f"{runs[-1]['error']}", file=sys.stderr, flush=True)
        write_index(reports_dir, runs, profile)
    if runs:
        write_model_card(reports_dir)
        write_index(reports_dir, runs, profile)
    return runs


def parse_settings(settings: list[str], notebooks_dir: str | Path) -> dict[str, object]:
    """``NAME=VALUE`` texts (``--set``) -> parameters for every notebook that declares ``NAME``: the value as a
    Python literal (``2``, ``0.5``, ``True``, ``'text'``), else as text; the last of a repeated name wins;
    values are split on whitespace by ``make``'s ``PARAMETERS``, so pass a value with spaces with ``--set``. Raises ``ValueError`` for a text
    without ``=`` or a name no numbered notebook of ``notebooks_dir`` declares (naming the known ones)."""
    if not settings:
        return {}
    import papermill

    declared = {name for notebook in numbered_notebooks(notebooks_dir)
                for name in papermill.inspect_notebook(str(notebook))}
    parameters: dict[str, object] = {}
    for setting in settings:
        name, equals, text = setting.partition("=")
        if not equals or not name.strip():
            raise ValueError(f"--set {setting!r}: expected NAME=VALUE, e.g. TRANSFER_SEEDS=2")
        if name.strip() not in declared:
            raise ValueError(f"--set {setting!r}: no notebook in {notebooks_dir} has a parameter {name.strip()!r} "
                             f"(known: {', '.join(sorted(declared))})")
        try:
            parameters[name.strip()] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            parameters[name.strip()] = text.strip()
    return parameters


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="default", help="smoke, default or full")
    parser.add_argument("--data", default=None, help="dataset folder or archive (DATA_PATH)")
    parser.add_argument("--dataset", default=None, help="utkface, celeba, fairface or folder")
    parser.add_argument("--data-dir", default="data", help="where manifests and caches go")
    parser.add_argument("--reports", default="reports", help="where executed notebooks and HTML go")
    parser.add_argument("--photos", default=None, help="labelled real photos for notebook 08 (PHOTOS_DIR)")
    parser.add_argument("--notebooks", default="notebooks", help="folder of the numbered notebooks")
    parser.add_argument("--only", nargs="*", help="notebook name prefixes, e.g. 01 02")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a notebook parameter for every notebook that has it, over the profile's, e.g. "
                             "TRANSFER_SEEDS=2 (repeatable)")
    args = parser.parse_args(argv)
    overrides: dict[str, object] = {"DATA_DIR": str(Path(args.data_dir).resolve()),
                                    "REPORTS_DIR": str(Path(args.reports).resolve())}
    if args.data:
        overrides["DATA_PATH"] = str(Path(args.data).resolve())
    if args.dataset:
        overrides["DATASET"] = args.dataset
    if args.photos:
        overrides["PHOTOS_DIR"] = str(Path(args.photos).resolve())
    try:
        settings = parse_settings(args.set, args.notebooks)
    except ValueError as error:
        print(f"[run_notebooks] {error}", file=sys.stderr)
        return 2
    runs = run_all(args.notebooks, args.reports, args.profile, {**overrides, **settings}, args.only)
    failed = [run["notebook"] for run in runs if run["status"] != "ok"]
    print(f"[run_notebooks] {len(runs) - len(failed)} ok, {len(failed)} failed {failed or ''}", file=sys.stderr)
    return 1 if failed or not runs else 0


if __name__ == "__main__":
    sys.exit(main())
