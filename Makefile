# Every target creates (once) and reuses a local virtual environment in .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
DEMO_DIR ?= $(CURDIR)/demo_project

.PHONY: install demo ui test test-slow bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

demo: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(PY) -m ace_assets.demo --out $(DEMO_DIR)

ui: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	ACE_PROJECT_PATH=$${ACE_PROJECT_PATH:-$(DEMO_DIR)/project} \
	ACE_DATA_PATH=$${ACE_DATA_PATH:-$(DEMO_DIR)/data} \
	ACE_STORAGE_ROOT=$${ACE_STORAGE_ROOT:-$(DEMO_DIR)/storage} \
	$(VENV)/bin/dagster dev -w workspace.yaml

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) -m bench.run_all

clean:
	rm -rf $(VENV) $(DAGSTER_HOME) $(DEMO_DIR)
