#!/usr/bin/env bash
# Installs the pinned stack into $VENV. Called by `make install`; safe to run again.
set -euo pipefail
PYTHON_SYS=${PYTHON_SYS:-python3.11}
VENV=${VENV:-.venv}
WHEELHOUSE=${WHEELHOUSE:-../shared/wheels}
TORCH_VERSION=2.13.0
MMCV_VERSION=2.1.0
say() { printf '[install] %s\n' "$*"; }

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
$PIP install -q "setuptools>=77.0.3,<81" wheel ninja

if [ "${CUDA:-0}" = "1" ]; then
  say "CUDA install: torch==$TORCH_VERSION from the CUDA index of your site (set PIP_INDEX_URL if needed)"
  have torch $TORCH_VERSION || $PIP install "torch==$TORCH_VERSION"
  $PIP install -q "setuptools<70"
  say "building mmcv==$MMCV_VERSION with CUDA ops (MMCV_WITH_OPS=1 FORCE_CUDA=1; about 20-40 min)"
  have mmcv $MMCV_VERSION || MMCV_WITH_OPS=1 FORCE_CUDA=1 $PIP install --no-build-isolation --no-binary mmcv "mmcv==$MMCV_VERSION"
else
  if have torch $TORCH_VERSION; then say "torch $TORCH_VERSION present"; else
    say "installing torch==$TORCH_VERSION (CPU wheel)"; $PIP install -q "torch==$TORCH_VERSION"; fi
  if have mmcv $MMCV_VERSION; then say "mmcv $MMCV_VERSION present"; else
    wheel=""
    for d in ${WHEELHOUSE//:/ }; do
      f=$(ls "$d"/mmcv-$MMCV_VERSION-*.whl 2>/dev/null | head -n1 || true)
      if [ -n "$f" ]; then wheel=$f; break; fi
    done
    if [ -n "$wheel" ]; then
      say "installing mmcv from prebuilt wheel $wheel"
      $PIP install -q --no-deps "$wheel"
      $PIP install -q addict numpy packaging Pillow pyyaml yapf opencv-python
    else
      say "no mmcv wheel in WHEELHOUSE=$WHEELHOUSE: building mmcv==$MMCV_VERSION with ops from source (about 16 min on 2 cores)"
      # mmcv 2.1's setup.py needs setuptools<70 (pkg_resources API); the requirements step below restores
      # the version torch asks for.
      $PIP install -q "setuptools<70"
      MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} $PIP install --no-build-isolation "mmcv==$MMCV_VERSION"
    fi
  fi
fi

say "installing the pinned stack (requirements.txt)"
$PIP install -q -r requirements.txt "torch==$TORCH_VERSION" "mmcv==$MMCV_VERSION"
say "installing this suite in editable mode"
$PIP install -q --no-build-isolation --no-deps -e .
"$PY" -c "import torch, mmcv, mmcv.ops, mmdet, mmseg, mmengine; print('[install] ok: torch', torch.__version__, 'mmcv', mmcv.__version__, '(ops compiled)', 'mmdet', mmdet.__version__, 'mmseg', mmseg.__version__, 'mmengine', mmengine.__version__)"
if [ "${CUDA:-0}" = "1" ]; then
  "$PY" -c "import torch, mmcv.ops; print('[install] CUDA: torch.version.cuda', torch.version.cuda, '| mmcv ops compiled with CUDA', mmcv.ops.get_compiling_cuda_version())"
  export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-8.0;9.0}"
  say "prebuilding the suite's MSDeformAttn CUDA kernel for TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST"
  "$PY" -c "from ops._build import load_extension; m = load_extension('cuda'); print('[install] kernel', m.__name__)" \
    || say "warning: the CUDA kernel did not build now (it builds on first use; see ops/README.md)"
fi
