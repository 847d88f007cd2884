# Two commands do all the set-up on a fresh machine (Debian, Python 3.11):
#   make demo   - create .venv if missing, install, run the main job
#   make test   - create .venv if missing, install with dev/train extras, run every test
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_ARGS ?= --parts 20 --seed 1 --summary runs/demo_summary.json --say "20:put all scratched parts in the rework bin"

.PHONY: demo test install install-dev lint clean build-colcon bench bench-quick

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed-runtime: $(VENV)/bin/python setup.py setup.cfg package.xml
	$(PY) -m pip install --quiet -e '.[ros]'
	touch $@

$(VENV)/.installed-dev: $(VENV)/bin/python setup.py setup.cfg package.xml
	$(PY) -m pip install --quiet -e '.[ros,train,dev]'
	touch $@ $(VENV)/.installed-runtime

install: $(VENV)/.installed-runtime
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed-runtime
	mkdir -p runs
	$(VENV)/bin/lepton-robot sim $(DEMO_ARGS)

test: $(VENV)/.installed-dev
	$(PY) -m pytest -q $(PYTEST_ARGS)

# every benchmark side by side: benchmarks/results/latest.{json,md,png} and the README table
BENCH_ARGS ?=
bench: $(VENV)/.installed-dev
	$(PY) benchmarks/run_all.py --readme $(BENCH_ARGS)

bench-quick: $(VENV)/.installed-dev
	$(PY) benchmarks/run_all.py --quick --readme $(BENCH_ARGS)

lint: $(VENV)/.installed-dev
	$(PY) -m pytest -q -m linter

clean:
	rm -rf build install log .pytest_cache
