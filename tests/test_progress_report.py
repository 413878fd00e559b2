"""Reports show finished progress bars: the tqdm widget outputs of an executed notebook become final lines."""

import nbformat

from nbhelpers.reporting.progress import finish_progress_bars

VIEW, STATE = "application/vnd.jupyter.widget-view+json", "application/vnd.jupyter.widget-state+json"


def tqdm_bar(state: dict, key: str, description: str, done: int, total: int, right: str, hidden: bool) -> dict:
    """Widget state of one tqdm.notebook bar (as ipywidgets saves it) and the output that shows it."""
    state[f"{key}-layout"] = {"model_name": "LayoutModel", "state": {"visibility": "hidden" if hidden else None}}
    state[f"{key}-left"] = {"model_name": "HTMLModel", "state": {"value": f"{description}:\u2007\u200790%"}}
    state[f"{key}-bar"] = {"model_name": "FloatProgressModel", "state": {"value": float(done), "max": float(total)}}
    state[f"{key}-right"] = {"model_name": "HTMLModel", "state": {"value": right.replace(" ", "\u2007").replace("<", "&lt;")}}
    state[key] = {"model_name": "HBoxModel", "state": {
        "children": [f"IPY_MODEL_{key}-left", f"IPY_MODEL_{key}-bar", f"IPY_MODEL_{key}-right"],
        "layout": f"IPY_MODEL_{key}-layout"}}
    return {"output_type": "display_data", "metadata": {},
            "data": {VIEW: {"model_id": key, "version_major": 2, "version_minor": 0},
                     "text/plain": f"{description}:   0%|          | 0/{total} [00:00<?, ?it/s]"}}


def test_bars_show_their_final_state_and_hidden_ones_go():
    state: dict = {}
    kept = tqdm_bar(state, "a", "validate utkface", 23708, 23708, " 23708/23708 [01:02<00:00, 380.1it/s]", False)
    hidden = tqdm_bar(state, "b", "epoch 0", 143, 143, " 143/143 [00:40<00:00]", True)
    other = {"output_type": "display_data", "metadata": {}, "data": {VIEW: {"model_id": "slider"}, "text/plain": "x"}}
    state["slider"] = {"model_name": "IntSliderModel", "state": {"value": 3}}
    cell = nbformat.v4.new_code_cell("run()")
    cell.outputs = [nbformat.from_dict(output) for output in (kept, hidden, other)]
    notebook = nbformat.v4.new_notebook(cells=[cell], metadata={"widgets": {STATE: {"state": state}}})
    assert finish_progress_bars(notebook) == 2
    first, second = notebook.cells[0].outputs
    assert first["text"] == "validate utkface: 100%|██████████| 23708/23708 [01:02]\n"
    assert second["data"]["text/plain"] == "x"  # other widgets are left alone
    assert "0/23708" not in nbformat.writes(notebook)  # the first frame is gone from the saved notebook
