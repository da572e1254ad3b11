# Two commands on a fresh machine:
#   make demo   set up .venv, run the whole pipeline on the embedded synthetic cohort, write results/report.html
#   make test   set up .venv and run the test suite (unit + integration, < 10 min on 2 cores)
#   make validate  the positive control (config/validate.yaml, docs/validation.md) in validation/ (target: < 45 min on 2 cores)
# Also: make e2e (slow end-to-end tests), make bench (benchmarks -> results/bench/), make gpu-check, make lint.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.rgenima-installed
CORES ?= all
# --rerun-incomplete: after a killed run, redo the jobs it left half-done instead of stopping.
SNAKEMAKE_DEMO := $(BIN)/snakemake --cores $(CORES) --configfile config/demo.yaml --workflow-profile none --rerun-incomplete

# Rules call the `rgenima` console script: the venv's bin must be on PATH.
export PATH := $(abspath $(BIN)):$(PATH)
# Nothing is ever downloaded at run time (docs/design.md, "No downloads").
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup demo validate test e2e bench gpu-check lint plink2 clean-results

setup: $(STAMP) plink2

# torch first, pinned to the CPU build: an unpinned torch would pull several GB of CUDA.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

plink2:
	@if command -v plink2 >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "plink2 not found: installing Debian's plink2 package"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq plink2 >/dev/null; \
	else \
		echo "error: plink2 (PLINK 2) is not on PATH. Install it with 'sudo apt-get install plink2' (Debian/Ubuntu)," >&2; \
		echo "       'conda install -c bioconda plink2', or from https://www.cog-genomics.org/plink/2.0/, then rerun." >&2; \
		exit 1; \
	fi

# The run, then the self-contained HTML report of everything it made (captions, tables, figures).
demo: setup
	$(SNAKEMAKE_DEMO) all
	$(SNAKEMAKE_DEMO) --report results/report.html
	@echo "report: results/report.html"

# The positive control in its own work folder (config and envs linked in), so that the demo's results/ stay.
validate: setup
	mkdir -p validation
	ln -sfn ../config validation/config
	ln -sfn ../envs validation/envs
	$(BIN)/snakemake -s workflow/Snakefile -d validation --cores $(CORES) --configfile config/validate.yaml \
		--workflow-profile none --rerun-incomplete validate
	@echo "recovery: validation/results/attribution/*/image_gene/recovery.md"

test: setup
	$(BIN)/pytest -q

e2e: setup
	$(BIN)/pytest -q -m "e2e or slow"

bench: setup
	$(BIN)/python -m rgenima_lib.bench --out results/bench --docs docs/benchmarks.md

# On one CUDA GPU (< 5 min): ZeRO-3 fine-tuning steps and a rollout pass at 7B width, measured next to `rgenima plan`.
gpu-check: setup
	$(BIN)/python -m rgenima_lib.bench.gpu_check --out results/bench/gpu.json

lint: setup
	$(BIN)/snakemake --lint --configfile config/demo.yaml --workflow-profile none

clean-results:
	rm -rf results/*/ .snakemake
