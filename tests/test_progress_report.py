"""Reports show finished progress bars: headless runs draw text bars, whose collapsed frames end in the final state."""

import os
import re

import nbformat
import pytest
from tqdm.std import tqdm as text_tqdm

from nbhelpers.reporting.reports import collapse_streams
from nbhelpers.reporting.run_notebooks import run_all
from nbhelpers.utils.progress import TEXT_PROGRESS_VARIABLE, progress_bar, text_progress_bars

CARRIAGE_RETURN = re.compile(r".*\r(?=[^\n])")  # nbconvert's CoalesceStreamsPreprocessor: a line keeps its last frame

CELLS = [
    "import time\nfrom nbhelpers.utils.progress import progress_bar",
    # nested bars, the inner one hidden when it ends, and a line printed after each epoch (as fit_one_cycle does)
    "for epoch in progress_bar(range(3), desc='epochs', mininterval=0):\n"
    "    for step in progress_bar(range(20), desc=f'epoch {epoch}', leave=False, mininterval=0):\n"
    "        time.sleep(0.002)\n"
    "    print(f'epoch {epoch} done')",
    # a hidden bar, then a display, then a bar that stays
    "for step in progress_bar(range(10), desc='predict', leave=False, mininterval=0):\n    time.sleep(0.002)\n"
    "display({'text/plain': 'a figure'}, raw=True)\n"
    "for step in progress_bar(range(50), desc='validate', mininterval=0):\n    time.sleep(0.002)",
]


def test_text_bars_only_when_requested(monkeypatch, capsys):
    monkeypatch.delenv(TEXT_PROGRESS_VARIABLE, raising=False)
    with progress_bar(range(3), disable=True) as automatic:
        assert isinstance(automatic, text_tqdm)
    with text_progress_bars():
        assert os.environ[TEXT_PROGRESS_VARIABLE] == "1"
        with progress_bar(range(3), desc="count") as text:
            assert type(text) is text_tqdm
            for _ in text:
                pass
    assert TEXT_PROGRESS_VARIABLE not in os.environ  # restored
    drawn = capsys.readouterr()
    assert drawn.out.startswith("\rcount:   0%|          | 0/3 [")
    assert re.fullmatch(r"count: 100%\|█{10}\| 3/3 \[[^\]]+\]\n", CARRIAGE_RETURN.sub("", drawn.out))
    assert drawn.err == ""  # text bars go to stdout, with the lines the loops print
    monkeypatch.setenv(TEXT_PROGRESS_VARIABLE, "0")
    with text_progress_bars():
        pass
    assert os.environ[TEXT_PROGRESS_VARIABLE] == "0"


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_executed_notebook_and_reports_show_final_bars(tmp_path):
    notebooks, reports = tmp_path / "notebooks", tmp_path / "reports"
    notebooks.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in CELLS]),
                   notebooks / "01_bars.ipynb")
    (run,) = run_all(notebooks, reports, "smoke", {})
    assert run["status"] == "ok", run["error"]
    executed = nbformat.read(reports / "01_bars.ipynb", as_version=4)
    training = executed.cells[-2]
    stdout = "".join(output.text for output in training.outputs if output.get("name") == "stdout")
    assert "\r" in stdout and "0/3" in stdout  # text frames, not a widget
    collapsed = CARRIAGE_RETURN.sub("", stdout)
    assert collapsed.splitlines() == ["epoch 0 done", "epoch 1 done", "epoch 2 done",
                                      collapsed.splitlines()[-1]]
    assert re.fullmatch(r"epochs: 100%\|█{10}\| 3/3 \[[^\]]+\]", collapsed.splitlines()[-1])
    assert not any("application/vnd.jupyter.widget-view+json" in output.get("data", {})
                   for cell in executed.cells for output in cell.get("outputs", []))
    shown = collapse_streams(executed).cells[-1].outputs
    assert [output.output_type for output in shown] == ["display_data", "stream"]  # the hidden bar left nothing
    assert re.fullmatch(r"validate: 100%\|█{10}\| 50/50 \[[^\]]+\]\n", shown[1].text)
    page = (reports / "01_bars.html").read_text()
    assert "epochs: 100%|██████████| 3/3" in page and "validate: 100%|██████████| 50/50" in page
    assert "| 0/3 [" not in page and "| 0/50 [" not in page and "epoch 1:" not in page  # no earlier frame is shown
    assert 'href="01_bars.html"' in (reports / "index.html").read_text()
