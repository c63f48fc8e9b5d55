# ViT-Adapter suite: every target installs what it needs first (idempotent).
#   make test          install (if needed) and run the test suite
#   make ablation-N    install, run the N grid on the default profile, build tables and figures
SHELL := /bin/bash
PYTHON_SYS ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Folders searched for a prebuilt mmcv wheel (first hit wins); falls back to a source build.
WHEELHOUSE ?= ../shared/wheels
STAMP := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml 2>/dev/null | md5sum | cut -c1-12)
PROFILE ?= tiny
CLUSTER ?= local
SEEDS ?= 1
LAUNCH_ARGS ?=
# Run directories: $(RUNS_ROOT)/<profile>/<grid>/<run>/seed<k>/ (read by the launcher and the analysis).
RUNS_ROOT ?= runs
export RUNS_ROOT

.PHONY: install install-cuda test ablation-N ablation-components ablation-attention ablation-pretrain \
        main-det main-seg tables figures summary bench-ops bench-adapter data-synthetic slurm-up slurm-down clean-venv

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml tools/install.sh
	@WHEELHOUSE="$(WHEELHOUSE)" PYTHON_SYS="$(PYTHON_SYS)" VENV="$(VENV)" bash tools/install.sh
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

# For cluster users: a CUDA torch + mmcv (with CUDA ops) + this suite's CUDA kernel, built from source.
# Set TORCH_CUDA_ARCH_LIST (e.g. "8.0;9.0") and have nvcc on PATH.
install-cuda:
	@CUDA=1 WHEELHOUSE="" PYTHON_SYS="$(PYTHON_SYS)" VENV="$(VENV)" bash tools/install.sh

# pytest exits 5 when it collects no test: reported, not hidden behind make's generic error.
PYTEST_ARGS ?=
test: install
	@rc=0; $(PY) -m pytest -q -ra --durations=15 tests $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests (exit 5)"; exit 0; fi; exit $$rc

# Each grid target runs its grid, then its tables and figures. Grid name: the target without 'ablation-'.
ablation-N ablation-components ablation-attention ablation-pretrain main-det main-seg: install
	$(PY) -m experiments.launch $(subst ablation-,,$@) --profile $(PROFILE) --cluster $(CLUSTER) --seeds $(SEEDS) $(LAUNCH_ARGS)
	$(PY) -m analysis.tables $(subst ablation-,,$@) --profile $(PROFILE)
	$(PY) -m analysis.figures $(subst ablation-,,$@) --profile $(PROFILE)

tables: install
	$(PY) -m analysis.tables all --profile $(PROFILE)

figures: install
	$(PY) -m analysis.figures all --profile $(PROFILE)

# #Param and FLOPs of every paper config beside the paper's numbers (analysis/summary.py).
summary: install
	$(PY) -m analysis.summary

data-synthetic: install
	$(PY) -m experiments.synthetic --out data/synthetic

bench-ops: install
	$(PY) -m ops.bench

bench-adapter: install
	$(PY) -m adapter.bench

slurm-up:
	bash tools/slurm_local.sh start

slurm-down:
	bash tools/slurm_local.sh stop

clean-venv:
	rm -rf $(VENV)
