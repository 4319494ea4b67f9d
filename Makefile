# Every target creates (once) and reuses a local virtual environment in .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# minisim (the independent simulator of the realistic benchmark) pins zarr<3: it lives in its own
# virtual environment, never in .venv.
MINISIM_VENV := .venv-minisim
MINISIM_PY := $(MINISIM_VENV)/bin/python
MINISIM_STAMP := $(MINISIM_VENV)/.installed
MINISIM_VERSION := 1.0.3
FIXTURE_TMP := bench/results/minisim_fixture_tmp
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
DEMO_DIR ?= $(CURDIR)/demo_project

.PHONY: install demo ui test test-slow bench bench-hour bench-realistic minisim-fixture clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: deploy/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp deploy/dagster.yaml $(DAGSTER_HOME)/dagster.yaml

demo: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(PY) -m ace_assets.demo --out $(DEMO_DIR)

# `dagster dev` warns that `dg dev` supersedes it; dg is a separate CLI this project does not install,
# so the warning is silenced rather than shown to someone who cannot act on it.
ui: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	ACE_PROJECT_PATH=$${ACE_PROJECT_PATH:-$(DEMO_DIR)/project} \
	ACE_DATA_PATH=$${ACE_DATA_PATH:-$(DEMO_DIR)/data} \
	ACE_STORAGE_ROOT=$${ACE_STORAGE_ROOT:-$(DEMO_DIR)/storage} \
	PYTHONWARNINGS='ignore:Function `dev_command` is superseded' $(VENV)/bin/dagster dev -w workspace.yaml

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP) $(MINISIM_STAMP)
	$(PY) -m bench.run_all

# one hour of the whole V4 sensor (72,000 frames of 608x608) through the lab's CLI; hours, and ~150 GiB of disk
bench-hour: $(STAMP) $(MINISIM_STAMP)
	$(PY) -m bench.bench_end_to_end --hour

# The same backfill on one Celery worker, then two (PostgreSQL, Redis and the workers on loopback;
# needs postgresql, redis-server and the cluster extra): docs/deploy.md.
bench-scale-out: $(STAMP)
	$(PY) -m pip install --quiet -e '.[cluster]'
	$(PY) -m bench.scale_out $(ARGS)

$(MINISIM_STAMP):
	$(PYTHON) -m venv $(MINISIM_VENV)
	$(MINISIM_PY) -m pip install --quiet minisim==$(MINISIM_VERSION)
	touch $(MINISIM_STAMP)

# The lab's front end on minisim recordings, scored with minisim's metrics (default subset;
# ARGS=--all for every recording, ARGS='--only NAME' for one).
bench-realistic: $(STAMP) $(MINISIM_STAMP)
	$(PY) -m bench.realistic $(ARGS)

# Regenerates tests/data/minisim_small (the regression test's recording): minisim side, then the
# V4 DAQ folder and the CSVs written with ace_neuro's writer.
minisim-fixture: $(STAMP) $(MINISIM_STAMP)
	rm -rf $(FIXTURE_TMP)
	$(MINISIM_PY) -m bench.realistic.make_fixture --out $(FIXTURE_TMP)
	$(PY) -m bench.realistic.fixture_session --src $(FIXTURE_TMP) --dest tests/data/minisim_small
	rm -rf $(FIXTURE_TMP)

clean:
	rm -rf $(VENV) $(MINISIM_VENV) $(DAGSTER_HOME) $(DEMO_DIR)
