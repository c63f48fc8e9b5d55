# ViT-Adapter suite: every target installs what it needs first (idempotent).
#   make install       the locked environment (requirements.lock) in .venv
#   make lock          resolve the declared dependencies again and rewrite requirements.lock (commit it)
#   make test          install (if needed) and run the test suite
#   make ablation-N    install, run the N grid on the default profile, build tables and figures
#   make export        install, export the backbone (torch.export .pt2 and ONNX) into exports/
SHELL := /bin/bash
PYTHON_SYS ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Folders searched for a prebuilt mmcv wheel (first hit wins); falls back to a source build.
WHEELHOUSE ?= ../shared/wheels
STAMP := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml requirements.lock 2>/dev/null | md5sum | cut -c1-12)
PROFILE ?= tiny
CLUSTER ?= local
SEEDS ?= 1
LAUNCH_ARGS ?=
# Run directories: $(RUNS_ROOT)/<profile>/<grid>/<run>/seed<k>/ (read by the launcher and the analysis).
RUNS_ROOT ?= runs
export RUNS_ROOT

.PHONY: install install-cuda lock test ablation-N ablation-components ablation-attention ablation-pretrain \
        main-det main-seg det-frameworks sota tables figures summary bench-ops bench-adapter bench-launches data-synthetic \
        slurm-up slurm-down clean-venv \
        gpu-check smoke-gpu export

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml requirements.lock tools/install.sh tools/lock.py
	@WHEELHOUSE="$(WHEELHOUSE)" PYTHON_SYS="$(PYTHON_SYS)" VENV="$(VENV)" bash tools/install.sh
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

# requirements.lock, the exact package set `make install` installs: tools/install.sh RESOLVE=1 resolves the declared
# dependencies ([project] dependencies of pyproject.toml + requirements.txt; CPU torch 2.13.0, mmcv from WHEELHOUSE)
# in a scratch venv, then tools/lock.py writes what pip freeze shows there (minus pip and the suite). A few minutes
# (pip's cache helps); run it after changing a declared dependency (`make install` refuses a stale lock), commit it.
lock:
	@scratch=$$(mktemp -d "$${TMPDIR:-/tmp}/vit-adapter-lock.XXXXXX"); \
	RESOLVE=1 WHEELHOUSE="$(WHEELHOUSE)" PYTHON_SYS="$(PYTHON_SYS)" VENV="$$scratch/venv" bash tools/install.sh \
	  && $(PYTHON_SYS) tools/lock.py write "$$scratch/venv/bin/python" --out requirements.lock; \
	rc=$$?; rm -rf "$$scratch"; exit $$rc

# For cluster users: a CUDA torch + mmcv (with CUDA ops) + this suite's CUDA kernel, built from source.
# Set TORCH_CUDA_ARCH_LIST (e.g. "8.0;9.0") and have nvcc on PATH.
# Produces (checked at the end of tools/install.sh, which prints the versions): torch 2.13.0 with the CUDA of the
# index it comes from (PyPI's default Linux wheel, or e.g. PIP_INDEX_URL=https://download.pytorch.org/whl/cu130
# for 2.13.0+cu130), mmcv 2.1.0 built here against that torch with CUDA ops (MMCV_WITH_OPS=1 FORCE_CUDA=1, the
# local nvcc; 20-40 min), mmdet 3.3.0, mmseg 1.2.2, mmengine 0.10.7 and the rest of requirements.txt, this suite
# editable, and the suite's MSDeformAttn CUDA kernel prebuilt for TORCH_CUDA_ARCH_LIST (default "8.0;9.0") in
# $${VIT_ADAPTER_OPS_CACHE:-~/.cache/vit_adapter/ops}. It also marks the venv installed, so `make smoke-gpu` etc.
# do not reinstall the CPU stack over it.
install-cuda:
	@CUDA=1 WHEELHOUSE="" PYTHON_SYS="$(PYTHON_SYS)" VENV="$(VENV)" bash tools/install.sh
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

# pytest exits 5 when it collects no test: reported, not hidden behind make's generic error.
PYTEST_ARGS ?=
test: install
	@rc=0; $(PY) -m pytest -q -ra --durations=15 tests $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests (exit 5)"; exit 0; fi; exit $$rc

# Each grid target runs its grid, then its tables and figures. Grid name: the target without 'ablation-'.
ablation-N ablation-components ablation-attention ablation-pretrain main-det main-seg det-frameworks sota: install
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

# ATen calls per training step (forward+backward, bf16 autocast), plain ViT vs ViT-Adapter (adapter/launches.py)
bench-launches: install
	$(PY) -m adapter.launches --save

# The backbone through torch.export (.pt2, the registered op kept) and to ONNX (deformable attention as GridSample,
# run by ONNX Runtime), each checked against eager (adapter/README.md "Export").  EXPORT_ARGS: e.g.
#   make export EXPORT_ARGS="--arch S --size 800 1344 --window-attn --weights backbone.pth --dynamic-batch"
EXPORT_ARGS ?=
export: install
	$(PY) -m adapter.export $(EXPORT_ARGS)

slurm-up:
	bash tools/slurm_local.sh start

slurm-down:
	bash tools/slurm_local.sh stop

clean-venv:
	rm -rf $(VENV)

# ---------------------------------------------------------------------------------------------------------------
# GPU proof (tools/gpu_check.py): builds the op (sm_90 + TORCH_CUDA_ARCH_LIST), `pytest -m cuda tests/ops`, the op
# benchmark (every backend, fp32/bf16, S/B/L shapes at 1024, ratio to the memory floor) and the backbone benchmark
# (ViT vs ViT-Adapter T/S/B/L, 1024, batch 2, bf16). No venv, no pip, no mmcv/mmdet/mmseg: it runs on whatever python
# has a CUDA torch (CHECK_PY: PY if given on the command line, else the venv's python if there is one, else python3).
#   make gpu-check PY=python3                 # on the GPU machine (about 3-5 min on an H200)
#   make gpu-check DEVICE=cpu                 # the same driver on a CPU, small shapes (about 20 s)
DEVICE ?= cuda
CHECK_PY = $(if $(filter command line environment,$(origin PY)),$(PY),$(if $(wildcard $(VENV)/bin/python),$(VENV)/bin/python,python3))
gpu-check:
	DEVICE=$(DEVICE) $(CHECK_PY) tools/gpu_check.py

# One training and one validation step of each paper config family (Mask R-CNN 1x at 1344x800, UperNet and Semantic
# FPN at 512x512) on one device with synthetic COCO/ADE data (experiments/smoke.py). Needs mmdet/mmseg (after
# `make install` or `make install-cuda`).  DEVICE=cpu runs it on the CPU (slowly).  SMOKE_ARGS: e.g. --arch B.
SMOKE_ARGS ?=
smoke-gpu: install
	$(PY) -m experiments.smoke --device $(DEVICE) $(SMOKE_ARGS)
