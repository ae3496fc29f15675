# genpipe: `make run` rebuilds every result, `make test` runs the test suite.
# Both set up .venv first and reuse it while requirements.txt and pyproject.toml are unchanged.
PYTHON ?= python3.11
VENV   := .venv
STAMP  := $(VENV)/.installed
APT_STAMP := $(VENV)/.apt-lists
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup run test test-unit test-e2e lint readme dag clean-results

setup: $(STAMP) $(APT_STAMP) .dvc/config

$(STAMP): requirements.txt pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -r requirements.txt
	$(VENV)/bin/python -m pip install --quiet --no-deps -e .
	@touch $@

# Fashion-MNIST's package mirror is a Debian package: `apt-get download` needs package lists.
$(APT_STAMP):
	@if apt-cache show dataset-fashion-mnist >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq; \
	else echo "note: no Debian package lists; run 'sudo apt-get update' so Fashion-MNIST can fall back to its Debian package"; fi
	@mkdir -p $(VENV) && touch $@

.dvc/config:
	dvc init --quiet && dvc config core.analytics false

run: setup
	snakemake --cores all

test: setup
	pytest -q tests

test-unit: setup
	pytest -q tests/unit

test-e2e: setup
	pytest -q tests/e2e

lint: setup
	snakemake --lint

# Copy the results table of results/report/report.md into README.md.
readme: setup
	python -m genpipe.pipeline.report README.md results/report/report.md

dag: setup
	snakemake --rulegraph | dot -Tsvg > docs/rulegraph.svg
