# Two commands on a fresh machine:  make reports   (all notebooks -> reports/)   and   make test
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= ../shared/data/UTKFace.tar.gz
PROFILE ?= default
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: install reports test bench clean-reports

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -e .
	touch $@

reports: install
	$(PY) -m nbhelpers.run_notebooks --profile $(PROFILE) --data $(DATA) --reports reports --data-dir data

test: install
	$(PY) -m pytest -q

bench: install
	$(PY) benchmarks/bench_loader.py --data $(DATA)

clean-reports:
	rm -rf reports/*.ipynb reports/*.html reports/summary.json
