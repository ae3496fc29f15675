# genpipe: `make run` rebuilds every result, `make test` runs the test suite.
# Both set up .venv first and reuse it while requirements.txt and pyproject.toml are unchanged.
PYTHON ?= python3.11
VENV   := .venv
STAMP  := $(VENV)/.installed
APT_STAMP := $(VENV)/.apt-lists
CLUSTER_STAMP := $(VENV)/.cluster-deps
# Debian packages of the daemons the e2e tests start (tests/e2e/conftest.py): a single-node Slurm and sshd.
CLUSTER_PACKAGES := slurmctld slurmd slurm-client munge openssh-server openssh-client
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup cluster-deps run test test-unit test-e2e test-params test-run report-html lint readme dag deps clean-results

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
	@# Graphviz (2.4 MB) only adds docs/rulegraph.svg to `make dag`; best effort, never fatal.
	@command -v dot >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends graphviz >/dev/null 2>&1; } || true
	@mkdir -p $(VENV) && touch $@

.dvc/config:
	dvc init --quiet && dvc config core.analytics false

# The cluster and remote tests need root and these packages; without them they fail, naming what is missing.
cluster-deps: $(CLUSTER_STAMP)

$(CLUSTER_STAMP): $(APT_STAMP)
	@if dpkg -s $(CLUSTER_PACKAGES) >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(CLUSTER_PACKAGES) >/dev/null \
	  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(CLUSTER_PACKAGES) >/dev/null; }; \
	else echo "error: the Slurm and SSH tests need Debian's $(CLUSTER_PACKAGES): run 'sudo make cluster-deps'" >&2; exit 1; fi
	@touch $@

run: setup
	snakemake --cores all

test: setup cluster-deps
	pytest -q tests --durations=15

test-unit: setup
	pytest -q tests/unit

test-e2e: setup cluster-deps
	pytest -q tests/e2e

lint: setup
	snakemake --lint

# The test profile: the whole DAG with the tiny params of tests/e2e, in .test/ (its own params.yaml,
# results, logs and DVC project; workflow/profiles/test/config.yaml).
test-params: setup
	python -m genpipe.pipeline.testprofile --write

test-run: test-params
	snakemake --profile workflow/profiles/test

# Snakemake's self-contained HTML report of the outputs marked report() (beside results/report/report.md).
report-html: setup
	snakemake --report results/report.html

# Rewrite dvc.yaml's code deps from the scripts' imports (tests/unit/test_codedeps.py fails when stale).
deps: setup
	python -m genpipe.pipeline.codedeps --write

# Copy the results table of results/report/report.md into README.md.
readme: setup
	python -m genpipe.pipeline.report README.md results/report/report.md

# The rule graph as mermaid (no Graphviz needed) in docs/rulegraph.mmd and README.md; with Graphviz's
# `dot`, also docs/rulegraph.svg (same transitively reduced graph, via `tred`).
dag: setup
	snakemake --rulegraph mermaid-js > docs/rulegraph.mmd.tmp
	python -m genpipe.pipeline.rulegraph docs/rulegraph.mmd README.md < docs/rulegraph.mmd.tmp && rm docs/rulegraph.mmd.tmp
	@if command -v dot >/dev/null 2>&1; then snakemake --rulegraph dot 2>/dev/null > docs/rulegraph.dot.tmp && tred docs/rulegraph.dot.tmp | dot -Tsvg > docs/rulegraph.svg.tmp && mv docs/rulegraph.svg.tmp docs/rulegraph.svg && rm docs/rulegraph.dot.tmp && echo "wrote docs/rulegraph.svg"; \
	else echo "note: no Graphviz 'dot' (apt-get install graphviz): docs/rulegraph.svg not drawn, docs/rulegraph.mmd is"; fi
