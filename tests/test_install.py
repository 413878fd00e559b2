"""The package as users install it: pyproject.toml's ranges and requirements.txt's exact pins agree, every
import of ``nbhelpers`` is declared, the notebooks' Colab install cell, and a wheel installed with its
dependency resolution into a clean virtual environment."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import shutil
import site
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import nbformat
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def declared() -> dict[str, list[Requirement]]:
    """{"runtime": [...], extra: [...]} from pyproject.toml, without the ``all`` extra's references to the others."""
    groups = {"runtime": [Requirement(text) for text in PROJECT["dependencies"]]}
    for extra, texts in PROJECT["optional-dependencies"].items():
        groups[extra] = [Requirement(text) for text in texts if Requirement(text).name != PROJECT["name"]]
    return groups


def pins() -> dict[str, Requirement]:
    """requirements.txt's pins by canonical name."""
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    requirements = [Requirement(line) for line in lines if line and not line.startswith("#")]
    return {canonicalize_name(requirement.name): requirement for requirement in requirements}


DECLARED = [requirement for group in declared().values() for requirement in group]


def test_requirements_pin_exactly_what_pyproject_declares():
    for requirement in pins().values():
        operators = [spec.operator for spec in requirement.specifier]
        assert operators == ["=="], f"requirements.txt: {requirement} is not an exact pin"
    assert set(pins()) == {canonicalize_name(requirement.name) for requirement in DECLARED}
    assert str(pins()["torch"].specifier) == "==2.14.1" and str(pins()["torchvision"].specifier) == "==0.29.1"


@pytest.mark.parametrize("requirement", DECLARED, ids=str)
def test_pin_satisfies_declared_range(requirement):
    pinned = next(iter(pins()[canonicalize_name(requirement.name)].specifier)).version
    assert requirement.specifier.contains(pinned, prereleases=True), f"requirements.txt's {pinned}: not {requirement}"


def test_all_extra_is_every_other_extra():
    [requirement] = [Requirement(text) for text in PROJECT["optional-dependencies"]["all"]]
    assert requirement.name == PROJECT["name"] and not requirement.specifier
    assert requirement.extras == set(PROJECT["optional-dependencies"]) - {"all"}


def _imported(nodes) -> set[str]:
    """Top-level names of the absolute imports among ``nodes``, and of ``import_module("x")`` and
    ``resources.files("x")`` calls with a literal name (how the package reaches data-only packages)."""
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name) and node.args
              and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "files")
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            names.add(node.args[0].value)
    return {name.split(".")[0] for name in names}


def imported_names(path: Path) -> tuple[set[str], set[str]]:
    """(names imported at module level, names imported only inside functions, try blocks or calls)."""
    tree = ast.parse(path.read_text(), str(path))
    module_level = _imported(tree.body)
    return module_level, _imported(ast.walk(tree)) - module_level


def module_owners() -> dict[str, set[str]]:
    """Top-level module name -> canonical names of the installed distributions that provide it (from each one's
    file list as well as top_level.txt: dlib-bin's top_level.txt names only its extension module)."""
    owners: dict[str, set[str]] = {}
    for module, names in importlib.metadata.packages_distributions().items():
        owners.setdefault(module, set()).update(canonicalize_name(name) for name in names)
    for distribution in importlib.metadata.distributions():
        name = canonicalize_name(distribution.metadata["Name"])
        for module in {file.parts[0].split(".")[0] for file in distribution.files or []}:
            owners.setdefault(module, set()).add(name)
    return owners


def test_every_import_of_the_package_is_declared():
    """Module-level imports need a runtime dependency; imports inside functions a runtime one or an extra."""
    distributions = module_owners()
    runtime = {canonicalize_name(requirement.name) for requirement in declared()["runtime"]}
    everything = {canonicalize_name(requirement.name) for requirement in DECLARED}
    local = set(sys.stdlib_module_names) | {"nbhelpers", "__future__"}
    problems = []
    for path in sorted((ROOT / "nbhelpers").rglob("*.py")):
        for names, allowed, where in zip(imported_names(path), (runtime, everything), ("runtime", "any")):
            for name in sorted(names - local):
                owners = distributions.get(name, set())
                if not owners & allowed:
                    provider = owners or "not installed"
                    problems.append(f"{path.relative_to(ROOT)}: {name} ({provider}) not in {where} dependencies")
    assert not problems, "\n".join(problems)


def install_cell(path: Path) -> nbformat.NotebookNode:
    """The cell after the parameters: it installs the package in Colab."""
    cells = nbformat.read(path, as_version=4).cells
    assert "parameters" in cells[1].metadata.get("tags", []) and "Colab only" in cells[2].source
    return cells[2]


def test_install_cell_and_package_source_are_the_same_in_every_notebook():
    assert len({install_cell(path).source for path in NOTEBOOKS}) == 1
    lines = {line for path in NOTEBOOKS for line in nbformat.read(path, as_version=4).cells[1].source.splitlines()
             if line.startswith("PACKAGE_SOURCE")}
    assert len(lines) == 1 and lines.pop().startswith('PACKAGE_SOURCE: str = ""  #')


class FakeShell:
    """Records the line magics a cell runs."""

    def __init__(self) -> None:
        self.magics: list[tuple[str, str]] = []

    def run_line_magic(self, name: str, line: str) -> None:
        self.magics.append((name, line))


def run_install_cell(package_source: str, cwd: Path, monkeypatch) -> list[tuple[str, str]]:
    shell = FakeShell()
    monkeypatch.chdir(cwd)
    exec(install_cell(NOTEBOOKS[0]).source, {"PACKAGE_SOURCE": package_source, "get_ipython": lambda: shell})
    return shell.magics


def test_install_cell_does_nothing_outside_colab(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert run_install_cell("", tmp_path, monkeypatch) == []
    assert run_install_cell("git+https://example.org/you/repo.git", ROOT / "notebooks", monkeypatch) == []


def test_install_cell_in_colab(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    checkout = tmp_path / "my copy"
    (checkout / "notebooks").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text('[project]\nname = "nbhelpers"\n')
    assert run_install_cell("", checkout / "notebooks", monkeypatch) == [("pip", f"install -q -e '{checkout}'")]
    url = "git+https://github.com/you/repo.git"
    assert run_install_cell(url, tmp_path, monkeypatch) == [("pip", f"install -q {url}")]
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "other"\n')
    with pytest.raises(RuntimeError, match="set PACKAGE_SOURCE to the git URL of your copy of this repository"):
        run_install_cell("", tmp_path / "elsewhere", monkeypatch)


def clean_environment() -> dict[str, str]:
    """os.environ without anything that points Python or pip elsewhere (PYTHONPATH, pip's config files)."""
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV", "CONDA"))}
    return {**environment, "PYTHONNOUSERSITE": "1", "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INPUT": "1"}


def run(command: list, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run([str(part) for part in command], cwd=cwd, env=clean_environment(), capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(map(str, command))}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def build_wheel(tmp_path: Path) -> Path:
    """A wheel of a copy of the package's sources (the checkout stays free of build folders), built offline."""
    pytest.importorskip("setuptools", minversion="68", reason="building the wheel offline needs setuptools>=68")
    source = tmp_path / "source"
    shutil.copytree(ROOT / "nbhelpers", source / "nbhelpers", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "--disable-pip-version-check", "-w", tmp_path / "wheels", source], tmp_path)
    return next((tmp_path / "wheels").glob("nbhelpers-*.whl"))


def expose_installed_packages(venv: Path, tmp_path: Path) -> None:
    """Make this interpreter's installed packages importable in ``venv`` without copying them: a folder of links
    to each site-packages entry except nbhelpers' own (the editable install), listed in a .pth file."""
    python = venv / "bin" / "python"
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path).stdout.strip()
    folders = []
    for index, site_packages in enumerate(Path(folder) for folder in site.getsitepackages()):
        if not site_packages.is_dir():
            continue
        links = tmp_path / f"visible-{index}"
        links.mkdir()
        for entry in site_packages.iterdir():
            if not entry.name.lower().startswith(("nbhelpers", "__editable__")):
                (links / entry.name).symlink_to(entry)
        folders.append(str(links))
    (Path(purelib) / "installed-packages.pth").write_text("\n".join(folders) + "\n")


def test_wheel_installs_into_a_clean_environment(tmp_path):
    """pip resolves every declared dependency (extras included) from what is installed, without an index; each
    module then imports from the new environment, not from the checkout, and the prediction CLI starts."""
    wheel = build_wheel(tmp_path)
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path)
    expose_installed_packages(venv, tmp_path)
    python, workdir = venv / "bin" / "python", tmp_path / "work"
    workdir.mkdir()
    run([python, "-m", "pip", "install", "--no-index", "--no-cache-dir", "--disable-pip-version-check", "-q",
         f"{wheel}[all]"], workdir)
    code = ("import importlib, json, pkgutil, nbhelpers\n"
            "names = [m.name for m in pkgutil.walk_packages(nbhelpers.__path__, 'nbhelpers.')\n"
            "         if m.name.split('.')[-1] != '__main__']\n"
            "modules = [importlib.import_module(name) for name in names]\n"
            "print(json.dumps({'names': names, 'files': [m.__file__ for m in [nbhelpers, *modules]]}))")
    imported = json.loads(run([python, "-c", code], workdir).stdout.splitlines()[-1])
    source_modules = {".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                      for path in (ROOT / "nbhelpers").rglob("*.py") if path.stem != "__main__"}
    assert set(imported["names"]) == source_modules - {"nbhelpers"}, "the wheel lacks modules of the source tree"
    assert all(Path(file).is_relative_to(venv) for file in imported["files"]), imported["files"][:3]
    usage = run([python, "-m", "nbhelpers.predict", "--help"], workdir).stdout
    assert usage.startswith("usage:") and "--checkpoint" in usage
