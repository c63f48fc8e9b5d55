#!/usr/bin/env bash
# Installs the locked stack (requirements.lock) into $VENV. Called by `make install`; safe to run again.
#   RESOLVE=1 (what `make lock` uses, on a scratch venv): install the declared dependencies ([project] dependencies of
#             pyproject.toml + requirements.txt) with pip's resolver instead of the lock; tools/lock.py then freezes it.
#   CUDA=1    (`make install-cuda`): CUDA torch + mmcv built with CUDA ops; the rest from the lock (tools/lock.py --cuda).
set -euo pipefail
PYTHON_SYS=${PYTHON_SYS:-python3.11}
VENV=${VENV:-.venv}
WHEELHOUSE=${WHEELHOUSE:-../shared/wheels}
LOCK=${LOCK:-requirements.lock}
RESOLVE=${RESOLVE:-0}
TORCH_VERSION=2.13.0
MMCV_VERSION=2.1.0
# Where the CPU torch wheel (a +cpu local version, as pinned in the lock) comes from when no local wheel has it.
TORCH_CPU_INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}
say() { printf '[install] %s\n' "$*"; }

C=()  # pip's constraints: the lock (CPU), the lock without torch/CUDA packages/mmcv (CUDA), none (RESOLVE=1)
if [ "$RESOLVE" != "1" ]; then
  "$PYTHON_SYS" tools/lock.py stale --lock "$LOCK"
  if [ "${CUDA:-0}" = "1" ]; then
    mkdir -p "$VENV"
    "$PYTHON_SYS" tools/lock.py constraints --cuda --lock "$LOCK" > "$VENV/.lock-cuda.txt"
    C=(-c "$VENV/.lock-cuda.txt")
  else
    C=(-c "$LOCK")
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV with $PYTHON_SYS"
  "$PYTHON_SYS" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP="$PY -m pip"
have() { "$PY" - "$1" "$2" <<'PYEOF' 2>/dev/null
import sys, importlib.metadata as m
try: sys.exit(0 if m.version(sys.argv[1]) == sys.argv[2] else 1)
except m.PackageNotFoundError: sys.exit(1)
PYEOF
}

say "build tools"
$PIP install -q "${C[@]}" "setuptools>=77.0.3,<81" wheel ninja

if [ "${CUDA:-0}" = "1" ]; then
  say "CUDA install: torch==$TORCH_VERSION from the CUDA index of your site (set PIP_INDEX_URL if needed)"
  have torch $TORCH_VERSION || $PIP install "torch==$TORCH_VERSION"
  $PIP install -q "setuptools<70"
  say "building mmcv==$MMCV_VERSION with CUDA ops (MMCV_WITH_OPS=1 FORCE_CUDA=1; about 20-40 min)"
  have mmcv $MMCV_VERSION || MMCV_WITH_OPS=1 FORCE_CUDA=1 $PIP install --no-build-isolation --no-binary mmcv "mmcv==$MMCV_VERSION"
else
  say "torch==$TORCH_VERSION (CPU wheel${C:+, as locked})"
  $PIP install -q "${C[@]}" "torch==$TORCH_VERSION" 2>/dev/null || {
    say "no locked CPU torch on the configured indexes: trying $TORCH_CPU_INDEX"
    $PIP install -q "${C[@]}" --extra-index-url "$TORCH_CPU_INDEX" "torch==$TORCH_VERSION"; }
  if have mmcv $MMCV_VERSION; then say "mmcv $MMCV_VERSION present"; else
    wheel=""
    for d in ${WHEELHOUSE//:/ }; do
      f=$(ls "$d"/mmcv-$MMCV_VERSION-*.whl 2>/dev/null | head -n1 || true)
      if [ -n "$f" ]; then wheel=$f; break; fi
    done
    if [ -n "$wheel" ]; then
      say "installing mmcv from prebuilt wheel $wheel"
      $PIP install -q --no-deps "$wheel"  # its dependencies come with the lock (or the resolve) below
    else
      say "no mmcv wheel in WHEELHOUSE=$WHEELHOUSE: building mmcv==$MMCV_VERSION with ops from source (about 16 min on 2 cores)"
      # mmcv 2.1's setup.py needs setuptools<70 (pkg_resources API); the requirements step below restores
      # the version torch asks for.
      $PIP install -q "setuptools<70"
      MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} $PIP install --no-build-isolation "mmcv==$MMCV_VERSION"
    fi
  fi
fi

if [ "$RESOLVE" = "1" ]; then
  say "resolving the declared dependencies (pyproject.toml [project] dependencies + requirements.txt)"
  $PIP install -q --no-build-isolation -e . -r requirements.txt
else
  say "installing the locked stack ($LOCK)"
  if [ "${CUDA:-0}" = "1" ]; then $PIP install -q -r "$VENV/.lock-cuda.txt"; else $PIP install -q -r "$LOCK"; fi
  say "installing this suite in editable mode"
  $PIP install -q --no-build-isolation --no-deps -e .
  "$PY" tools/lock.py check --python "$PY" --lock "$LOCK" --allow-extra $([ "${CUDA:-0}" = "1" ] && echo --cuda)
fi
"$PY" -c "import torch, mmcv, mmcv.ops, mmdet, mmseg, mmengine; print('[install] ok: torch', torch.__version__, 'mmcv', mmcv.__version__, '(ops compiled)', 'mmdet', mmdet.__version__, 'mmseg', mmseg.__version__, 'mmengine', mmengine.__version__)"
if [ "${CUDA:-0}" = "1" ]; then
  "$PY" -c "import torch, mmcv.ops; print('[install] CUDA: torch.version.cuda', torch.version.cuda, '| mmcv ops compiled with CUDA', mmcv.ops.get_compiling_cuda_version())"
  export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-8.0;9.0}"
  say "prebuilding the suite's MSDeformAttn CUDA kernel for TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST"
  "$PY" -c "from ops._build import load_extension; m = load_extension('cuda'); print('[install] kernel', m.__name__)" \
    || say "warning: the CUDA kernel did not build now (it builds on first use; see ops/README.md)"
fi
