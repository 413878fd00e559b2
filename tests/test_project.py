"""Project conventions: environment files agree, notebooks are thin and stripped, modules declare __all__."""

import ast
import importlib
import json
import pkgutil
import subprocess
import sys

import nbformat
import pytest
import yaml

import nbhelpers
from nbhelpers.reporting.reports import read_summary, update_summary, write_index
from nbhelpers.reporting.notebook_parameters import PROFILES, profile_parameters
from nbhelpers.utils.atomic import atomic_path, atomic_write_json
from tests.conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MODULES = [m.name for m in pkgutil.walk_packages(nbhelpers.__path__, "nbhelpers.")]


def test_environment_yml_matches_requirements():
    requirements = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    assert [entry for entry in pip_section if entry != "-e ."] == requirements
    assert "torch==2.14.1" in requirements and "torchvision==0.29.1" in requirements


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_are_stripped_and_parameterised(path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
    for line in code[0].source.splitlines():
        assert ": " in line and " = " in line and "  # " in line, f"parameter line without type or comment: {line}"
    for cell in code[1:]:
        tree = ast.parse("\n".join(l for l in cell.source.splitlines() if not l.lstrip().startswith(("%", "!"))))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                assert node.end_lineno - node.lineno < 6, f"{path.name}: function {node.name} belongs in nbhelpers"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_profiles_only_set_declared_parameters(path):
    import papermill

    declared = papermill.inspect_notebook(str(path))
    for profile in PROFILES:
        assert set(profile_parameters(path.stem, profile)) <= set(declared)
    assert all(declared[name]["help"] for name in declared), "every parameter has a comment"
    lines = [line for line in nbformat.read(path, as_version=4).cells[1].source.splitlines() if line.strip()]
    assert len(declared) == len(lines), "papermill could not parse every parameter line"
    for name, value in profile_parameters(path.stem, "default").items():
        if name != "PROFILE":
            assert ast.literal_eval(declared[name]["default"]) == value, f"{name}: notebook default differs from profiles.py"


@pytest.mark.parametrize("module", MODULES)
def test_modules_declare_all_and_stay_small(module):
    imported = importlib.import_module(module)
    assert hasattr(imported, "__all__") and imported.__doc__
    source = importlib.util.find_spec(module).origin
    assert sum(1 for _ in open(source)) < 300
    functions = [node for node in ast.walk(ast.parse(open(source).read()))
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    assert [node.name for node in functions if node.end_lineno - node.lineno >= 50] == []  # functions under 50 lines


def test_import_has_no_side_effects(tmp_path):
    code = "import os, nbhelpers, nbhelpers.data.datasets, nbhelpers.reporting.run_notebooks; print(sorted(os.listdir('.')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "summary.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_text("{half")
            raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"a": 1} and list(tmp_path.iterdir()) == [target]


def test_summary_merges_sections_and_index_lists_runs(tmp_path):
    update_summary(tmp_path, "03_resnet9", {"test_accuracy": 0.9})
    update_summary(tmp_path, "03_resnet9", {"epochs": 8})
    update_summary(tmp_path, "01_download", {"kept": 10})
    assert read_summary(tmp_path) == {"03_resnet9": {"test_accuracy": 0.9, "epochs": 8}, "01_download": {"kept": 10}}
    runs = [{"notebook": "01_download", "status": "ok", "html": "01_download.html", "error": "", "seconds": 3.0},
            {"notebook": "02_augment", "status": "failed", "html": "", "error": "ValueError: <bad>", "seconds": 1.0}]
    page = write_index(tmp_path, runs, "smoke").read_text()
    assert '<a href="01_download.html">01_download</a>' in page and "ValueError: &lt;bad&gt;" in page
    assert "test_accuracy" in page


def test_corrupt_summary_names_the_file(tmp_path):
    (tmp_path / "summary.json").write_text("{oops")
    with pytest.raises(ValueError, match="summary.json: not valid JSON"):
        read_summary(tmp_path)


def test_unknown_profile():
    with pytest.raises(KeyError, match="unknown profile 'huge'"):
        profile_parameters("01_download", "huge")


def test_parameterized_copy_injects_values_and_rejects_unknown_names(tmp_path):
    from nbhelpers.predict.web_page import parameterized_copy

    copy = parameterized_copy(ROOT / "notebooks" / "08_predict.ipynb", {"WIDE_FACES": 7, "MODEL": "resnet18"},
                              tmp_path / "08.ipynb")
    cells = nbformat.read(copy, as_version=4).cells
    injected = next(cell for cell in cells if "injected-parameters" in cell.metadata.get("tags", []))
    assert "WIDE_FACES = 7" in injected.source and 'MODEL = "resnet18"' in injected.source
    assert cells.index(injected) == next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])) + 1
    with pytest.raises(KeyError, match="EPOCHS"):
        parameterized_copy(ROOT / "notebooks" / "08_predict.ipynb", {"EPOCHS": 3}, tmp_path / "x.ipynb")


def test_the_web_page_runs_the_upload_app_only(tmp_path):
    from nbhelpers.predict.web_page import REPORT_ONLY_TAG, page_notebook

    def report_only(cell) -> bool:
        return REPORT_ONLY_TAG in cell.metadata.get("tags", [])

    source = nbformat.read(ROOT / "notebooks" / "08_predict.ipynb", as_version=4).cells
    first = next(index for index, cell in enumerate(source) if report_only(cell))
    assert all(report_only(cell) for cell in source[first:])  # the upload app first, then the report-only sections
    page = nbformat.read(page_notebook(ROOT / "notebooks" / "08_predict.ipynb", {"MODEL": "resnet18"},
                                       tmp_path / "page.ipynb"), as_version=4).cells
    assert len(page) == first + 1 and not any(report_only(cell) for cell in page)  # + the injected parameters
    code = "\n".join(cell.source for cell in page if cell.cell_type == "code" and not
                     {"parameters", "injected-parameters"} & set(cell.metadata.get("tags", [])))
    injected = next(cell for cell in page if "injected-parameters" in cell.metadata.get("tags", []))
    assert "UploadApp(" in code and "app.widget" in code and 'MODEL = "resnet18"' in injected.source
    assert "REPORTS_DIR" not in code and "PHOTOS_DIR" not in code  # a visit reads and writes no report
    assert "Real photos" not in "\n".join(cell.source for cell in page)
