# Two commands on a fresh machine:  make reports   (all notebooks -> reports/)   and   make test
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= ../shared/data/UTKFace.tar.gz
PROFILE ?= default
DATASET ?= utkface
PHOTOS ?= ../shared/data/fairface-dev
PARAMETERS ?=  # notebook parameters over the profile's, e.g. PARAMETERS="TRANSFER_SEEDS=2"
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: install browser reports test bench clean-reports serve serve-api

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -e .
	touch $@

reports: install
	$(PY) -m nbhelpers.reporting.run_notebooks --profile $(PROFILE) --dataset $(DATASET) --data $(DATA) \
	    --photos $(PHOTOS) --reports reports --data-dir data $(foreach setting,$(PARAMETERS),--set $(setting))

# Debian's Chromium and ChromeDriver for the browser test of the Voila page (skipped, with the reason, if absent)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1; } || \
	  echo "chromium not installed (needs root and Debian's apt): the browser test will be skipped"

test: install browser
	$(PY) -m pytest -q

# notebook 08 as a web page on http://localhost:8866: the upload form only (its report-only cells run in make reports);
# photos up to 30 MB each, at most 64 MiB per choice of files in all (Voila's websocket message limit, raised from 10 MiB)
serve: install
	$(PY) -m nbhelpers.predict.web_page notebooks/08_predict.ipynb --port 8866

# the HTTP API on http://127.0.0.1:8000 (docs: /docs); CHECKPOINT=data/checkpoints/<run>/model.pt
CHECKPOINT ?= $(shell $(PY) -c "from nbhelpers.training.runs import read_index, find_run; runs = read_index('data/checkpoints'); print(find_run('data/checkpoints', run_id=runs[-1]['run_id'])['checkpoint'] if runs else '')" 2>/dev/null)
serve-api: install
	@test -n "$(CHECKPOINT)" || { echo "no trained run in data/checkpoints: train one or set CHECKPOINT=path/to/model.pt"; exit 2; }
	$(PY) -m nbhelpers.serve --checkpoint $(CHECKPOINT)

bench: install
	$(PY) benchmarks/bench_loader.py --data $(DATA)

clean-reports:
	rm -rf reports/*.ipynb reports/*.html reports/summary.json
